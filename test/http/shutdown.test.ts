import { describe, expect, it } from 'vitest'
import { build } from '../helper.js'

const post = { method: 'POST' as const, url: '/v1/cross-entropy', payload: { logits: [[1, 2, 3]], targets: [2] } }

describe('graceful shutdown', () => {
  it('turns /readyz 503 at once, serves through SHUTDOWN_DELAY_MS, then closes', async () => {
    const app = await build()
    await app.listen({ host: '127.0.0.1', port: 0 })
    // The delay is held until the test lets it end, instead of racing a real timer.
    let endDelay = () => {}
    const delays: number[] = []
    const closing = app.shutdown({
      delayMs: 5000,
      sleep: (ms) => {
        delays.push(ms)
        return new Promise<void>((resolve) => {
          endDelay = resolve
        })
      }
    })
    expect(delays).toEqual([5000])
    const probe = await app.inject({ method: 'GET', url: '/readyz' })
    expect(probe.statusCode).toBe(503)
    expect(probe.json()).toEqual({ status: 'shutting_down' })
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
    const served = await app.inject(post)
    expect(served.statusCode).toBe(200)
    expect(served.headers.connection).not.toBe('close')
    expect(app.server.listening).toBe(true)

    endDelay()
    await closing
    expect(app.server.listening).toBe(false)
  })

  it('closes at once without a delay', async () => {
    const app = await build()
    await app.listen({ host: '127.0.0.1', port: 0 })
    await app.shutdown({ delayMs: 0, sleep: () => Promise.reject(new Error('no delay was asked for')) })
    expect(app.server.listening).toBe(false)
    expect(app.engine.isReady()).toBe(false)
  })
})
