import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ShuttingDownError } from '../../src/engine/errors.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { TEST_CONFIG } from '../helper.js'

const vocab = 4096
/** A computation on the app's engine, as the route starts one. */
const computeOn = async (app: Awaited<ReturnType<typeof buildApp>>) => {
  const memory = app.engine.openRequest()
  try {
    return await computeCrossEntropy(app.engine, decodeCrossEntropyJson(request, memory, app.engine))
  } finally {
    memory.release()
  }
}
const request = {
  logits: Array.from({ length: 64 }, (_, r) => Array.from({ length: vocab }, (_, c) => ((r + c) % 11) - 5)),
  targets: Array.from({ length: 64 }, (_, r) => r),
  outputs: ['gradients' as const]
}

describe('the engine plugin at shutdown', () => {
  it('finishes every computation already started, queued ones included', async () => {
    const app = await buildApp({ ...TEST_CONFIG, POOL_THREADS: 1 })
    await app.ready()
    // One worker: the first computation runs, the others wait in piscina's queue.
    const computations = Array.from({ length: 4 }, () => computeOn(app))
    await app.close()
    const results = await Promise.allSettled(computations)
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'])
  })

  it('tells a computation that starts after the pool closed to go elsewhere (503 XENT_SHUTTING_DOWN)', async () => {
    const app = await buildApp({ ...TEST_CONFIG, POOL_THREADS: 1 })
    await app.ready()
    await app.close()
    await expect(computeOn(app)).rejects.toBeInstanceOf(ShuttingDownError)
  })

  it('answers requests caught by shutdown with 200 or 503, never 500', async () => {
    const app = await buildApp({ ...TEST_CONFIG, POOL_THREADS: 1 })
    await app.ready()
    // Injected requests hold no socket, so closing the server does not wait for them.
    const requests = Array.from({ length: 4 }, () =>
      app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: request })
    )
    const closing = app.close()
    const responses = await Promise.all(requests)
    await closing
    for (const res of responses) {
      expect([200, 503]).toContain(res.statusCode)
      if (res.statusCode === 503) expect(res.json().code).toBe('XENT_SHUTTING_DOWN')
    }
  })
})
