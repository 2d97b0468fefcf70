import { request as httpRequest } from 'node:http'
import { describe, expect, it } from 'vitest'
import { Barrier, eventually, faultsByRequestId } from '../faults.js'
import { build, metricValue } from '../helper.js'

const batch = (rows: number) => ({
  logits: Array.from({ length: rows }, (_, r) => [r % 3, 1, 2, 3]),
  targets: Array.from({ length: rows }, (_, r) => r % 4),
  outputs: ['gradients']
})

const post = (body: unknown, requestId?: string) => ({
  method: 'POST' as const,
  url: '/v1/cross-entropy',
  headers: requestId === undefined ? {} : { 'x-request-id': requestId },
  payload: body as Record<string, unknown>
})

describe('a worker that fails fails only its own request', () => {
  it.each([
    ['throws', 'throw'],
    ['exits', 'exit'],
    ['runs out of memory (resourceLimits)', 'oom']
  ] as const)('when it %s: 500 XENT_WORKER_FAILED, then the pool serves on', async (_what, kind) => {
    const faults = faultsByRequestId()
    faults.set('the-failing-one', { kind })
    const app = await build({ POOL_THREADS: 1, WORKER_MAX_OLD_GENERATION_MB: 32 }, { faults: faults.source })
    // A request beside the failing one, on the same single worker, is not touched by it.
    const bystander = app.inject(post(batch(4))).then((res) => res)
    const failed = await app.inject(post(batch(4), 'the-failing-one'))
    expect(failed.statusCode).toBe(500)
    expect(failed.json()).toMatchObject({ statusCode: 500, code: 'XENT_WORKER_FAILED' })
    expect(failed.json().message).toBe(
      'The worker computing this request failed and was replaced; the request id is the-failing-one'
    )
    expect(failed.body).not.toContain('injected')
    expect((await bystander).statusCode).toBe(200)
    // The pool is whole again and serves the next requests.
    await eventually(() => app.engine.stats().workers === 1, 'the worker is replaced')
    // A task that throws leaves its worker alive; one that dies is replaced, and counted.
    const started = kind === 'throw' ? 1 : 2
    await eventually(
      async () => (await metricValue(app, 'xent_pool_workers_started')) === started,
      `${started} workers started`
    )
    for (let i = 0; i < 3; i++) expect((await app.inject(post(batch(4)))).statusCode).toBe(200)
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})

describe('a client that hangs up cancels its work', () => {
  /** Sends a request over a real socket; returns a function that hangs up. */
  function send(url: string, body: unknown, requestId: string): () => void {
    const payload = JSON.stringify(body)
    const req = httpRequest(`${url}/v1/cross-entropy`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'x-request-id': requestId
      }
    })
    req.on('error', () => {})
    req.end(payload)
    return () => req.destroy()
  }

  it('stops running work part-way, and serves the next request', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    // The task runs 10 of its 50 rows, then waits at the barrier while its client hangs up.
    faults.set('leaves', barrier.hold(10))
    const app = await build({ POOL_THREADS: 1 }, { faults: faults.source })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const hangUp = send(url, batch(50), 'leaves')
    await barrier.arrived()
    hangUp()
    await eventually(
      async () => (await metricValue(app, 'xent_cancelled_tasks_total{stage="running"}')) === 1,
      'the running task is cancelled'
    )
    barrier.release()
    await eventually(() => app.engine.stats().running === 0 && app.engine.arena.usedBytes === 0, 'its memory is freed')
    expect(await metricValue(app, 'xent_elements_processed_total')).toBe(0)
    const next = await app.inject(post(batch(4)))
    expect(next.statusCode).toBe(200)
    expect(await metricValue(app, 'xent_elements_processed_total')).toBe(16)
  })

  it('drops queued work before it runs', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    faults.set('holds-the-worker', barrier.hold())
    const app = await build({ POOL_THREADS: 1 }, { faults: faults.source })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const holder = app.inject(post(batch(10), 'holds-the-worker')).then((res) => res)
    await barrier.arrived()
    const hangUp = send(url, batch(10), 'waits')
    await eventually(() => app.engine.stats().queued === 1, 'the second request waits in the queue')
    hangUp()
    await eventually(
      async () => (await metricValue(app, 'xent_cancelled_tasks_total{stage="queued"}')) === 1,
      'the queued task is cancelled'
    )
    barrier.release()
    expect((await holder).statusCode).toBe(200)
    expect((await app.inject(post(batch(4)))).statusCode).toBe(200)
    expect(await metricValue(app, 'xent_cancelled_tasks_total{stage="running"}')).toBe(0)
    await eventually(() => app.engine.arena.usedBytes === 0, 'every request’s memory is freed')
  })
})

describe('a hang-up never costs a worker', () => {
  it('keeps the pool’s threads through a burst of clients that hang up mid-request', async () => {
    // piscina terminates a worker when a task it has handed over is aborted; the engine hands a
    // task over only to a free worker, and never aborts it afterwards (its control word stops it).
    // Clients leaving in a burst, as a load generator's do when it stops, meet every stage of
    // their requests: waiting, just handed over, running.
    const app = await build({ POOL_THREADS: 2, MAX_QUEUE: 64 })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const payload = JSON.stringify(batch(20_000))
    expect(await metricValue(app, 'xent_pool_workers_started')).toBe(2)
    for (let round = 0; round < 5; round++) {
      const requests = Array.from({ length: 24 }, () => {
        const req = httpRequest(`${url}/v1/cross-entropy`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
        })
        const answered = new Promise<void>((resolve) => {
          req.on('response', (res) => res.resume().on('end', resolve))
          req.on('error', () => resolve())
          req.on('close', () => resolve())
        })
        req.end(payload)
        return { req, answered }
      })
      // Once the first is answered the pool is busy with the others: they all hang up at once.
      await Promise.race(requests.map(({ answered }) => answered))
      for (const { req } of requests) req.destroy()
      await eventually(() => app.engine.arena.usedBytes === 0, 'every request’s memory is freed')
    }
    expect(await metricValue(app, 'xent_pool_workers_started')).toBe(2)
    expect((await app.inject(post(batch(4)))).statusCode).toBe(200)
    expect(await metricValue(app, 'xent_cancelled_tasks_total{stage="running"}')).toBeGreaterThan(0)
  })
})
