import { describe, expect, it } from 'vitest'
import { type CrossEntropyRequest, OUTPUT_NAMES, type OutputName } from '../../schemas/cross-entropy.js'
import { ArenaFullError } from '../../src/engine/memory.js'
import { planBytes } from '../../src/engine/plan.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { optionsFromBody } from '../../src/ops/cross-entropy/options.js'
import { crossEntropyPlan } from '../../src/ops/cross-entropy/plan.js'
import { Barrier, faultsByRequestId } from '../faults.js'
import { build, safetensorsFile, testEngine } from '../helper.js'

// Admission and compute share one plan: a request that can never fit in KERNEL_MEMORY_MB is
// refused with 413 whatever it asks for, and one that fits an idle server runs there; only one
// that fits but finds the memory held by others gets 503 (and can retry).

/** N rows over a one-word vocabulary: the most rows, so the per-row allocations (stats among them) dominate. */
function oneWordBody(rows: number, outputs: OutputName[]) {
  return { logits: Array.from({ length: rows }, () => [0]), targets: new Array(rows).fill(0), outputs }
}

/** The most rows of `outputs` whose plan fits `capacity` bytes, by the service's own plan. */
function mostRowsThatFit(capacity: number, outputs: OutputName[]): number {
  const bytes = (rows: number) =>
    planBytes(
      0,
      crossEntropyPlan(
        { rows, vocab: 1, logitsShape: [rows, 1], targetsShape: [rows] },
        optionsFromBody({ logits: [], targets: [], outputs }),
        { format: 'json', softTargets: false, weight: false }
      )
    )
  let [low, high] = [1, 1]
  while (bytes(high) <= capacity) [low, high] = [high, high * 2]
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2)
    if (bytes(middle) <= capacity) low = middle
    else high = middle
  }
  return low
}

const post = (body: unknown, requestId?: string) => ({
  method: 'POST' as const,
  url: '/v1/cross-entropy',
  headers: requestId === undefined ? {} : { 'x-request-id': requestId },
  payload: body as Record<string, unknown>
})

describe('admission by the plan', () => {
  // 16 MiB holds every request of up to this many elements (the boot check makes sure of it).
  const MAX_ELEMENTS = 200_000
  const small = { KERNEL_MEMORY_MB: 16, MAX_ELEMENTS, BODY_LIMIT_MB: 16 }

  it('answers 413, never 503, for 420 000 × 1 with entropy in 16 MiB of kernel memory', async () => {
    const app = await build(small)
    const res = await app.inject(post(oneWordBody(420_000, ['entropy'])))
    expect(res.statusCode).toBe(413)
    expect(res.json().code).toBe('XENT_TOO_MANY_ELEMENTS')
    expect(app.engine.arena.usedBytes).toBe(0)

    const file = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [420_000, 1], data: new Float32Array(420_000) },
      { name: 'targets', dtype: 'I32', shape: [420_000], data: new Int32Array(420_000) }
    ])
    const binary = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?outputs=entropy',
      headers: { 'content-type': 'application/octet-stream' },
      payload: file
    })
    expect(binary.statusCode).toBe(413)
    expect(binary.json().code).toBe('XENT_TOO_MANY_ELEMENTS')
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('runs the largest request MAX_ELEMENTS allows on an idle server, with every output', async () => {
    const app = await build(small)
    const res = await app.inject(post(oneWordBody(MAX_ELEMENTS, [...OUTPUT_NAMES])))
    expect(res.statusCode, res.body.slice(0, 200)).toBe(200)
    expect(res.json().count).toBe(MAX_ELEMENTS)
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('refuses, before allocating, exactly the requests whose plan is larger than the whole memory, whatever the outputs', async () => {
    // An engine with no element limit of its own: only the plan decides.
    const engine = testEngine({ maxElements: 2 ** 31 })
    await engine.start()
    const choices: OutputName[][] = [[], ['entropy'], ['gradients'], ['token_losses', 'predictions', 'accuracy']]
    for (const outputs of choices) {
      const rows = mostRowsThatFit(engine.arena.capacity, outputs)
      const fits = engine.openRequest()
      try {
        const job = decodeCrossEntropyJson(oneWordBody(rows, outputs) as CrossEntropyRequest, fits, engine)
        expect((await computeCrossEntropy(engine, job)).count).toBe(rows)
      } finally {
        fits.release()
      }
      const over = engine.openRequest()
      try {
        let refused: unknown
        try {
          decodeCrossEntropyJson(oneWordBody(rows + 1, outputs) as CrossEntropyRequest, over, engine)
        } catch (error) {
          refused = error
        }
        // More than the whole memory: the error handler's 413 XENT_TOO_LARGE, never a 503.
        expect(refused).toBeInstanceOf(ArenaFullError)
        expect((refused as ArenaFullError).bytes).toBeGreaterThan(engine.arena.capacity)
        expect(engine.arena.usedBytes).toBe(0)
      } finally {
        over.release()
      }
    }
  })

  it('answers 503 XENT_MEMORY_BUSY with Retry-After to a request that fits but finds the memory held', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    faults.set('holds-memory', barrier.hold())
    const app = await build(small, { faults: faults.source })
    const rows = mostRowsThatFit(app.engine.arena.capacity, ['entropy'])
    const holdRows = Math.min(MAX_ELEMENTS, Math.floor((rows * 2) / 3))
    const busyRows = Math.min(MAX_ELEMENTS, rows - holdRows + 1000)
    // The first holds its memory at the barrier (and, computing, every worker); the second would
    // fit an idle server, not this one. It is safetensors, which admission weighs on this thread:
    // a JSON body's numbers are read by the workers, which the first holds.
    const holding = app.inject(post(oneWordBody(holdRows, ['entropy']), 'holds-memory')).then((r) => r)
    await barrier.arrived()
    const busyFile = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [busyRows, 1], data: new Float32Array(busyRows) },
      { name: 'targets', dtype: 'I32', shape: [busyRows], data: new Int32Array(busyRows) }
    ])
    const busyRequest = {
      method: 'POST' as const,
      url: '/v1/cross-entropy?outputs=entropy',
      headers: { 'content-type': 'application/octet-stream' },
      payload: busyFile
    }
    const busy = await app.inject(busyRequest)
    expect(busy.statusCode).toBe(503)
    expect(busy.json().code).toBe('XENT_MEMORY_BUSY')
    expect(busy.headers['retry-after']).toBe('1')
    barrier.release()
    expect((await holding).statusCode).toBe(200)
    expect((await app.inject(busyRequest)).statusCode).toBe(200)
    expect((await app.inject(post(oneWordBody(busyRows, ['entropy'])))).statusCode).toBe(200)
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})
