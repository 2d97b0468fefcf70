import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { CrossEntropyRequest } from '../../schemas/cross-entropy.js'
import type { Engine } from '../../src/engine/engine.js'
import { MIN_ELEMENTS_PER_TASK, partitionRows } from '../../src/engine/ranges.js'
import type { RequestMemory } from '../../src/engine/request.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { buildForFile } from '../helper.js'
import { type LocalEngine, localEngine, openMemory } from '../kernels/local.js'

describe('partitionRows', () => {
  it('covers every row once, in order, with at most maxTasks near-equal ranges', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 70_000 }),
        fc.integer({ min: 1, max: 16 }),
        (rows, vocab, maxTasks) => {
          const ranges = partitionRows(rows, vocab, maxTasks)
          expect(ranges.length).toBeGreaterThanOrEqual(1)
          expect(ranges.length).toBeLessThanOrEqual(maxTasks)
          expect(ranges[0][0]).toBe(0)
          expect(ranges.at(-1)?.[1]).toBe(rows)
          for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).toBe(ranges[i - 1][1])
          const sizes = ranges.map(([start, end]) => end - start)
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
          if (ranges.length > 1) expect(Math.min(...sizes) * vocab).toBeGreaterThanOrEqual(MIN_ELEMENTS_PER_TASK / 2)
        }
      )
    )
  })

  it('keeps a small batch in one task and spreads a large one over every worker', () => {
    expect(partitionRows(6, 5, 2)).toEqual([[0, 6]])
    expect(partitionRows(2048, 32_000, 2)).toEqual([
      [0, 1024],
      [1024, 2048]
    ])
  })
})

describe('the engine’s worker pool', async () => {
  const app = await buildForFile({ POOL_THREADS: 2 })
  /** Runs a request on `engine` (the pool, or the kernel on this thread), copies the results out, frees. */
  const computeWith = async (request: CrossEntropyRequest, engine: Engine | LocalEngine, memory: RequestMemory) => {
    try {
      const job = decodeCrossEntropyJson(request, memory, engine)
      const result = await computeCrossEntropy(engine, job)
      return { ...result, tokenLoss: result.tokenLoss.slice(), gradients: result.gradients?.slice() ?? null }
    } finally {
      memory.release()
    }
  }
  const pooled = (request: CrossEntropyRequest) => computeWith(request, app.engine, app.engine.openRequest())
  const local = (request: CrossEntropyRequest) => computeWith(request, localEngine('wasm'), openMemory())

  it('gives the same bits as the kernel on this thread, for a batch split across workers', async () => {
    const rows = 96
    const vocab = 3000
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => Math.cos(r * 3.3 + c * 0.7) * 8)
    )
    const targets = Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -100 : (r * 977) % vocab))
    const request: CrossEntropyRequest = {
      logits,
      targets,
      label_smoothing: 0.1,
      weight: Array.from({ length: vocab }, (_, c) => 0.5 + (c % 3)),
      outputs: ['token_losses', 'gradients']
    }
    expect(partitionRows(rows, vocab, 2).length).toBe(2)

    const [inPool, onThread] = [await pooled(request), await local(request)]
    expect(Object.is(inPool.loss, onThread.loss)).toBe(true)
    expect(Object.is(inPool.perplexity, onThread.perplexity)).toBe(true)
    expect(inPool.count).toBe(onThread.count)
    expect(Buffer.compare(Buffer.from(inPool.tokenLoss.buffer), Buffer.from(onThread.tokenLoss.buffer))).toBe(0)
    const pooledGrad = inPool.gradients as Float32Array
    const localGrad = onThread.gradients as Float32Array
    expect(Buffer.compare(Buffer.from(pooledGrad.buffer), Buffer.from(localGrad.buffer))).toBe(0)
    // The workers really wrote into shared memory: the gradients are not left as zeros.
    expect(pooledGrad.some((g) => g !== 0)).toBe(true)
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('equals the kernel on this thread for random small batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }).chain((vocab) =>
          fc.record({
            logits: fc.array(
              fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: vocab, maxLength: vocab }),
              { minLength: 1, maxLength: 5 }
            ),
            vocab: fc.constant(vocab)
          })
        ),
        async ({ logits, vocab }) => {
          const request: CrossEntropyRequest = {
            logits,
            targets: logits.map((_, r) => r % vocab),
            outputs: ['token_losses', 'gradients']
          }
          const [inPool, onThread] = [await pooled(request), await local(request)]
          expect(Object.is(inPool.loss, onThread.loss)).toBe(true)
          expect(Array.from(inPool.gradients as Float32Array)).toEqual(Array.from(onThread.gradients as Float32Array))
        }
      ),
      { numRuns: 40 }
    )
  })
})
