import { describe, expect, it } from 'vitest'
import { build } from '../helper.js'

describe('probes', () => {
  it('/healthz answers 200 while the process lives', async () => {
    const app = await build()
    const res = await app.inject({ method: 'GET', url: '/healthz' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ status: 'ok' })
  })

  it('/readyz answers 200 once the pool is up and 503 from the start of shutdown', async () => {
    const app = await build()
    const ready = await app.inject({ method: 'GET', url: '/readyz' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toEqual({ status: 'ready' })
    expect(app.engine.isReady()).toBe(true)

    const closing = app.close()
    await new Promise((resolve) => setImmediate(resolve))
    expect(app.engine.isReady()).toBe(false)
    await closing
  })
})
