import { describe, expect, it } from 'vitest'
import { build, safetensorsFile } from '../helper.js'

/** A batch of `rows` rows over `vocab` classes, with gradients asked for. */
function batch(rows: number, vocab: number) {
  return {
    logits: Array.from({ length: rows }, (_, r) => Array.from({ length: vocab }, (_, c) => ((r + c) % 7) - 3)),
    targets: Array.from({ length: rows }, (_, r) => r % vocab),
    outputs: ['gradients']
  }
}

const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url: '/v1/cross-entropy',
  headers,
  payload: body as Record<string, unknown>
})

describe('MAX_ELEMENTS', () => {
  it('refuses a JSON batch past it with 413, giving the limit and the size', async () => {
    const app = await build({ MAX_ELEMENTS: 1000 })
    const res = await app.inject(post({ ...batch(2, 600), outputs: ['token_losses'] }))
    expect(res.statusCode).toBe(413)
    expect(res.json()).toMatchObject({
      code: 'XENT_TOO_MANY_ELEMENTS',
      message: 'logits [2,600] hold 1200 elements; MAX_ELEMENTS allows 1000'
    })
    expect(app.kernelArena.usedBytes).toBe(0)
    expect((await app.inject(post(batch(1, 600)))).statusCode).toBe(200)
  })

  it('refuses a safetensors batch past it with 413', async () => {
    const app = await build({ MAX_ELEMENTS: 1000 })
    const body = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [3, 2, 200], data: new Float32Array(1200) },
      { name: 'targets', dtype: 'I32', shape: [3, 2], data: new Int32Array(6) }
    ])
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': 'application/octet-stream' },
      payload: body
    })
    expect(res.statusCode).toBe(413)
    expect(res.json().message).toBe('logits [3,2,200] hold 1200 elements; MAX_ELEMENTS allows 1000')
    expect(app.kernelArena.usedBytes).toBe(0)
  })
})

describe('MAX_QUEUE', () => {
  it('answers 503 with Retry-After once the queue is full, and serves again after', async () => {
    const app = await build({ POOL_THREADS: 1, MAX_QUEUE: 1 }, { injectFaults: true })
    // One slow request holds the only worker, a second waits in the queue's only place.
    const slow = batch(10, 8)
    // inject() starts a request only once it is awaited or then()ed.
    const running = app.inject(post(slow, { 'x-xent-fault': 'slow' })).then((res) => res)
    await waitFor(() => app.poolStats().running === 1)
    const queued = app.inject(post(slow, { 'x-xent-fault': 'slow' })).then((res) => res)
    await waitFor(() => app.poolStats().queued === 1)
    const refused = await app.inject(post(batch(2, 8)))
    expect(app.poolStats()).toMatchObject({ running: 1, queued: 1 })
    expect(refused.json()).toMatchObject({ code: 'XENT_QUEUE_FULL' })
    expect(refused.statusCode).toBe(503)
    expect(refused.headers['retry-after']).toBe('1')
    expect(refused.json()).toMatchObject({ code: 'XENT_QUEUE_FULL' })
    expect((await running).statusCode).toBe(200)
    expect((await queued).statusCode).toBe(200)
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
    expect(app.kernelArena.usedBytes).toBe(0)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toContain('xent_rejections_total{reason="queue_full"} 1')
  })
})

describe('REQUEST_TIMEOUT_MS', () => {
  it('answers 503 XENT_TIMEOUT, stops the work part-way, and serves the next request', async () => {
    const app = await build({ POOL_THREADS: 1, REQUEST_TIMEOUT_MS: 300 }, { injectFaults: true })
    // 40 rows at 20 ms each would take 800 ms.
    const res = await app.inject(post(batch(40, 8), { 'x-xent-fault': 'slow' }))
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBeDefined()
    expect(res.json()).toMatchObject({
      code: 'XENT_TIMEOUT',
      message: 'The request took longer than REQUEST_TIMEOUT_MS (300 ms) and was cancelled; retry later or send less'
    })
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toContain('xent_cancelled_tasks_total{stage="running"} 1')
    expect(metrics).toContain('xent_rejections_total{reason="timeout"} 1')
    // The worker stopped part-way (above: cancelled while running) and is free again.
    const next = await app.inject(post(batch(2, 8)))
    expect(next.statusCode).toBe(200)
    expect(app.kernelArena.usedBytes).toBe(0)
  })
})

describe('under-pressure', () => {
  it('answers 503 XENT_UNDER_PRESSURE past MAX_HEAP_USED_MB, while the probes still answer', async () => {
    const app = await build({ MAX_HEAP_USED_MB: 1, MAX_EVENT_LOOP_DELAY_MS: 0 }, { pressureSampleIntervalMs: 10 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const res = await app.inject(post(batch(2, 8)))
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(res.json()).toMatchObject({ code: 'XENT_UNDER_PRESSURE' })
    expect(res.json().message).toMatch(/^The service is overloaded \(heap in use \d+ MB\); retry shortly$/)
    for (const url of ['/healthz', '/readyz', '/metrics']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200)
    }
  })

  it('answers 503 past MAX_EVENT_LOOP_DELAY_MS once the main thread has been blocked', async () => {
    const app = await build({ MAX_EVENT_LOOP_DELAY_MS: 20 }, { pressureSampleIntervalMs: 200 })
    await new Promise((resolve) => setTimeout(resolve, 250))
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
    // Block the event loop, as a huge synchronous parse would; a measurement soon after sees it.
    const until = Date.now() + 600
    while (Date.now() < until) {}
    let res = await app.inject(post(batch(2, 8)))
    for (let tries = 0; res.statusCode === 200 && tries < 25; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      res = await app.inject(post(batch(2, 8)))
    }
    expect(res.statusCode).toBe(503)
    expect(res.json().message).toMatch(/event-loop delay \d+ ms/)
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  })
})

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
