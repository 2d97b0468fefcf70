import { request as httpRequest } from 'node:http'
import { describe, expect, it } from 'vitest'
import type { Fault } from '../../src/pool/faults.js'
import { build } from '../helper.js'

const batch = (rows: number) => ({
  logits: Array.from({ length: rows }, (_, r) => [r % 3, 1, 2, 3]),
  targets: Array.from({ length: rows }, (_, r) => r % 4),
  outputs: ['gradients']
})

const post = (body: unknown, fault?: Fault) => ({
  method: 'POST' as const,
  url: '/v1/cross-entropy',
  headers: fault === undefined ? {} : { 'x-xent-fault': fault },
  payload: body as Record<string, unknown>
})

async function waitFor(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const metric = async (app: Awaited<ReturnType<typeof build>>, name: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

describe('a worker that fails fails only its own request', () => {
  it.each([
    ['throws', 'throw'],
    ['exits', 'exit'],
    ['runs out of memory (resourceLimits)', 'oom']
  ] as const)('when it %s: 500 XENT_WORKER_FAILED, then the pool serves on', async (_what, fault) => {
    const app = await build({ POOL_THREADS: 1, WORKER_MAX_OLD_GENERATION_MB: 32 }, { injectFaults: true })
    // A request beside the failing one, on the same single worker, is not touched by it.
    const bystander = app.inject(post(batch(4))).then((res) => res)
    const failed = await app.inject(post(batch(4), fault))
    expect(failed.statusCode).toBe(500)
    expect(failed.json()).toMatchObject({ statusCode: 500, code: 'XENT_WORKER_FAILED' })
    expect(failed.json().message).toBe(
      `The worker computing this request failed and was replaced; the request id is ${failed.headers['x-request-id']}`
    )
    expect(failed.body).not.toContain('injected')
    expect((await bystander).statusCode).toBe(200)
    // The pool is whole again and serves the next requests.
    await waitFor(() => app.poolStats().workers === 1)
    for (let i = 0; i < 3; i++) expect((await app.inject(post(batch(4)))).statusCode).toBe(200)
    expect(app.kernelArena.usedBytes).toBe(0)
  })
})

describe('a client that hangs up cancels its work', () => {
  /** Sends a request over a real socket and hangs up `afterMs` later. */
  function hangUp(url: string, body: unknown, fault: Fault, afterMs: number): Promise<void> {
    return new Promise((resolve) => {
      const payload = JSON.stringify(body)
      const req = httpRequest(`${url}/v1/cross-entropy`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          'x-xent-fault': fault
        }
      })
      req.on('error', () => resolve())
      req.end(payload)
      setTimeout(() => {
        req.destroy()
        resolve()
      }, afterMs)
    })
  }

  it('stops running work part-way, and serves the next request', async () => {
    const app = await build({ POOL_THREADS: 1 }, { injectFaults: true })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    // 50 rows at 20 ms each would hold the worker for a second.
    await hangUp(url, batch(50), 'slow', 150)
    await waitFor(async () => (await metric(app, 'xent_cancelled_tasks_total{stage="running"}')) === 1)
    await waitFor(() => app.poolStats().running === 0 && app.kernelArena.usedBytes === 0)
    expect(await metric(app, 'xent_elements_processed_total')).toBe(0)
    const next = await app.inject(post(batch(4)))
    expect(next.statusCode).toBe(200)
    expect(await metric(app, 'xent_elements_processed_total')).toBe(16)
  })

  it('drops queued work before it runs', async () => {
    const app = await build({ POOL_THREADS: 1 }, { injectFaults: true })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const holder = app.inject(post(batch(10), 'slow')).then((res) => res)
    await waitFor(() => app.poolStats().running === 1)
    await hangUp(url, batch(10), 'slow', 50)
    await waitFor(async () => (await metric(app, 'xent_cancelled_tasks_total{stage="queued"}')) === 1)
    expect((await holder).statusCode).toBe(200)
    expect((await app.inject(post(batch(4)))).statusCode).toBe(200)
    expect(await metric(app, 'xent_cancelled_tasks_total{stage="running"}')).toBe(0)
    await waitFor(() => app.kernelArena.usedBytes === 0)
  })
})
