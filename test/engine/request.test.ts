import { describe, expect, it } from 'vitest'
import type { CrossEntropyRequest } from '../../schemas/cross-entropy.js'
import { RequestClosedError } from '../../src/engine/errors.js'
import { KernelArena } from '../../src/engine/memory.js'
import { u8 } from '../../src/engine/plan.js'
import { RequestMemory } from '../../src/engine/request.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { Barrier } from '../faults.js'
import { testEngine } from '../helper.js'

const request = (rows: number, vocab: number, shift: number): CrossEntropyRequest => ({
  logits: Array.from({ length: rows }, (_, r) =>
    Array.from({ length: vocab }, (_, c) => ((r * 7 + c + shift) % 11) - 5)
  ),
  targets: Array.from({ length: rows }, (_, r) => r % vocab),
  outputs: ['gradients']
})

/** The byte ranges of a job's allocations, as [start, end) pairs. */
const spans = (views: Record<string, ArrayBufferView | null>) =>
  Object.values(views)
    .filter((view): view is ArrayBufferView => view !== null)
    .map((view) => [view.byteOffset, view.byteOffset + view.byteLength] as const)

describe('a request’s kernel memory', () => {
  it('outlives its request while a task of it still runs: a new request never gets its bytes', async () => {
    const barrier = new Barrier()
    const engine = testEngine({ faults: (requestId) => (requestId === 'leaves' ? barrier.hold(3) : undefined) })
    await engine.start()

    // The first request's task runs 3 of its 8 rows and waits at the barrier, still running.
    const leaving = engine.openRequest()
    const job = decodeCrossEntropyJson(request(8, 64, 0), leaving, engine)
    const client = new AbortController()
    const computation = computeCrossEntropy(engine, job, { signal: client.signal, requestId: 'leaves' })
    const settled = computation.then(
      () => 'resolved',
      (error: unknown) => error
    )
    await barrier.arrived()
    const heldBytes = engine.arena.usedBytes

    // Its client leaves: the work is cancelled and the request lets go of its memory, as the
    // socket's close does. The memory stays held, because the task is still inside it.
    client.abort(new Error('the client left'))
    leaving.release()
    expect(leaving.released).toBe(true)
    expect(leaving.freed).toBe(false)
    expect(engine.arena.usedBytes).toBe(heldBytes)

    // A new request of the same size is given other bytes.
    const next = engine.openRequest()
    const nextJob = decodeCrossEntropyJson(request(8, 64, 5), next, engine)
    for (const [start, end] of spans(nextJob.views)) {
      for (const [heldStart, heldEnd] of spans(job.views)) {
        expect(end <= heldStart || start >= heldEnd, `[${start}, ${end}) overlaps [${heldStart}, ${heldEnd})`).toBe(
          true
        )
      }
    }

    // Once the task stops (at its next row, seeing the cancellation), the memory is freed.
    barrier.release()
    expect(await settled).toBeInstanceOf(Error)
    expect(leaving.freed).toBe(true)
    expect(engine.arena.usedBytes).toBe(heldBytes)
    await computeCrossEntropy(engine, nextJob)
    next.release()
    expect(engine.arena.usedBytes).toBe(0)
  })

  it('refuses allocations once released, and frees once, however many times it is released', () => {
    const engine = testEngine()
    const memory = engine.openRequest()
    memory.bytes(1000)
    expect(engine.arena.usedBytes).toBeGreaterThan(0)
    memory.release()
    memory.release()
    expect(memory.freed).toBe(true)
    expect(engine.arena.usedBytes).toBe(0)
    expect(() => memory.bytes(10)).toThrow(/released/)
  })

  it('gives back what it allocated since a mark, and the rest with the request', () => {
    const arena = new KernelArena(4)
    const memory = new RequestMemory(arena)
    const body = memory.allocate({ body: u8(1000) }).body
    const held = arena.usedBytes
    const mark = memory.mark()
    memory.allocate({ text: u8(50_000), more: u8(70_000) })
    expect(arena.usedBytes).toBeGreaterThan(held + 120_000)
    memory.freeAfter(mark)
    expect(arena.usedBytes).toBe(held)
    // What came before the mark is still held, and the memory serves on.
    expect(body.length).toBe(1000)
    const later = memory.allocate({ text: u8(70_000) }).text
    expect(later.byteOffset).not.toBe(body.byteOffset)
    memory.freeAfter(memory.mark())
    expect(arena.usedBytes).toBeGreaterThan(held + 60_000)
    memory.release()
    expect(arena.usedBytes).toBe(0)
    expect(() => memory.mark()).toThrow(RequestClosedError)
  })
})
