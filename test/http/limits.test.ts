import { describe, expect, it } from 'vitest'
import { Barrier, eventually, faultsByRequestId, ManualDeadlines } from '../faults.js'
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
    expect(app.engine.arena.usedBytes).toBe(0)
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
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})

describe('MAX_QUEUE', () => {
  it('answers 503 with Retry-After once the queue is full, and serves again after', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    faults.set('holds-the-worker', barrier.hold())
    const app = await build({ POOL_THREADS: 1, MAX_QUEUE: 1 }, { faults: faults.source })
    // One request holds the only worker, a second waits in the queue's only place.
    // inject() starts a request only once it is awaited or then()ed.
    const running = app.inject(post(batch(10, 8), { 'x-request-id': 'holds-the-worker' })).then((res) => res)
    await barrier.arrived()
    const queued = app.inject(post(batch(10, 8))).then((res) => res)
    await eventually(() => app.engine.stats().queued === 1, 'the second request waits in the queue')
    const refused = await app.inject(post(batch(2, 8)))
    expect(app.engine.stats()).toMatchObject({ running: 1, queued: 1 })
    expect(refused.statusCode).toBe(503)
    expect(refused.headers['retry-after']).toBe('1')
    expect(refused.json()).toMatchObject({ code: 'XENT_QUEUE_FULL' })
    barrier.release()
    expect((await running).statusCode).toBe(200)
    expect((await queued).statusCode).toBe(200)
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
    expect(app.engine.arena.usedBytes).toBe(0)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toContain('xent_rejections_total{reason="queue_full"} 1')
  })
})

describe('REQUEST_TIMEOUT_MS', () => {
  it('answers 503 XENT_TIMEOUT, stops the work part-way, and serves the next request', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    // The task runs 5 of its 40 rows, and its time runs out while it waits at the barrier.
    faults.set('runs-late', barrier.hold(5))
    const deadlines = new ManualDeadlines()
    const app = await build(
      { POOL_THREADS: 1, REQUEST_TIMEOUT_MS: 300 },
      { faults: faults.source, deadlineTimer: deadlines.timer }
    )
    const answer = app.inject(post(batch(40, 8), { 'x-request-id': 'runs-late' })).then((res) => res)
    await barrier.arrived()
    deadlines.expireAll()
    barrier.release()
    const res = await answer
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBeDefined()
    expect(res.json()).toMatchObject({
      code: 'XENT_TIMEOUT',
      message: 'The request took longer than REQUEST_TIMEOUT_MS (300 ms) and was cancelled; retry later or send less'
    })
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toContain('xent_cancelled_tasks_total{stage="running"} 1')
    expect(metrics).toContain('xent_rejections_total{reason="timeout"} 1')
    expect(metrics).toContain('xent_elements_processed_total 0')
    // The worker stopped part-way (above: cancelled while running) and is free again.
    const next = await app.inject(post(batch(2, 8)))
    expect(next.statusCode).toBe(200)
    expect(app.engine.arena.usedBytes).toBe(0)
    expect(deadlines.running).toBe(0)
  })
})

describe('under-pressure', () => {
  /** Readings the test sets, in place of under-pressure's samples of this very process. */
  function readings() {
    const current = { eventLoopDelay: 0, heapUsed: 0 }
    return { current, read: () => current }
  }

  it('answers 503 XENT_UNDER_PRESSURE past MAX_HEAP_USED_MB, while the probes still answer', async () => {
    const main = readings()
    const app = await build({ MAX_HEAP_USED_MB: 512 }, { pressureReadings: main.read })
    main.current.heapUsed = 511 * 2 ** 20
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
    main.current.heapUsed = 600 * 2 ** 20
    const res = await app.inject(post(batch(2, 8)))
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(res.json()).toMatchObject({ code: 'XENT_UNDER_PRESSURE' })
    expect(res.json().message).toBe('The service is overloaded (heap in use 600 MB); retry shortly')
    for (const url of ['/healthz', '/readyz', '/metrics']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200)
    }
    main.current.heapUsed = 100 * 2 ** 20
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
  })

  it('answers 503 past MAX_EVENT_LOOP_DELAY_MS, and serves again once the delay is back under it', async () => {
    const main = readings()
    const app = await build({ MAX_EVENT_LOOP_DELAY_MS: 20 }, { pressureReadings: main.read })
    main.current.eventLoopDelay = 19.6
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
    main.current.eventLoopDelay = 640
    const res = await app.inject(post(batch(2, 8)))
    expect(res.statusCode).toBe(503)
    expect(res.json().message).toBe('The service is overloaded (event-loop delay 640 ms); retry shortly')
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
    main.current.eventLoopDelay = 3
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
  })

  it('judges by under-pressure’s own samples when nothing is injected', async () => {
    // Limits no process can be under: whatever the samples say, requests are served.
    const app = await build({ MAX_EVENT_LOOP_DELAY_MS: 60_000, MAX_HEAP_USED_MB: 1_000_000 })
    expect(app.memoryUsage()).toMatchObject({ eventLoopDelay: expect.any(Number), heapUsed: expect.any(Number) })
    expect((await app.inject(post(batch(2, 8)))).statusCode).toBe(200)
  })
})
