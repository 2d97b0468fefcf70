import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeJsonRequest } from '../../src/codec/json.js'
import { instantiateKernel } from '../../src/kernel/wasm.js'
import { computeCrossEntropy, MIN_ELEMENTS_PER_TASK, partitionRows, type TaskRunner } from '../../src/pool/compute.js'
import { buildForFile } from '../helper.js'

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

describe('the worker pool', async () => {
  const app = await buildForFile({ POOL_THREADS: 2 })
  // The same kernel on this thread, over the same shared memory as the pool's workers.
  const kernel = instantiateKernel(app.kernelArena.memory)
  const direct: TaskRunner = (task) => Promise.resolve(kernel(task))
  /** Runs a request through `run`, copies the results out of shared memory, frees the batch. */
  const computeWith = async (request: Parameters<typeof decodeJsonRequest>[0], run?: TaskRunner) => {
    const batch = decodeJsonRequest(request, app.kernelArena)
    try {
      const result = run === undefined ? await app.crossEntropy(batch) : await computeCrossEntropy(batch, run, 1)
      return { ...result, tokenLoss: result.tokenLoss.slice(), gradients: result.gradients?.slice() ?? null }
    } finally {
      batch.memory.release()
    }
  }

  it('gives the same bits as the kernel on this thread, for a batch split across workers', async () => {
    const rows = 96
    const vocab = 3000
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => Math.cos(r * 3.3 + c * 0.7) * 8)
    )
    const targets = Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -100 : (r * 977) % vocab))
    const request = {
      logits,
      targets,
      label_smoothing: 0.1,
      weight: Array.from({ length: vocab }, (_, c) => 0.5 + (c % 3)),
      outputs: ['token_losses' as const, 'gradients' as const]
    }
    expect(partitionRows(rows, vocab, 2).length).toBe(2)

    const pooled = await computeWith(request)
    const local = await computeWith(request, direct)
    expect(Object.is(pooled.loss, local.loss)).toBe(true)
    expect(Object.is(pooled.perplexity, local.perplexity)).toBe(true)
    expect(pooled.count).toBe(local.count)
    expect(Buffer.compare(Buffer.from(pooled.tokenLoss.buffer), Buffer.from(local.tokenLoss.buffer))).toBe(0)
    const pooledGrad = pooled.gradients as Float32Array
    const localGrad = local.gradients as Float32Array
    expect(Buffer.compare(Buffer.from(pooledGrad.buffer), Buffer.from(localGrad.buffer))).toBe(0)
    // The workers really wrote into shared memory: the gradients are not left as zeros.
    expect(pooledGrad.some((g) => g !== 0)).toBe(true)
  })

  it('equals the kernel on this thread for random small batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }).chain((vocab) =>
          fc.record({
            logits: fc.array(
              fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: vocab, maxLength: vocab }),
              {
                minLength: 1,
                maxLength: 5
              }
            ),
            vocab: fc.constant(vocab)
          })
        ),
        async ({ logits, vocab }) => {
          const request = {
            logits,
            targets: logits.map((_, r) => r % vocab),
            outputs: ['token_losses' as const, 'gradients' as const]
          }
          const pooled = await computeWith(request)
          const local = await computeWith(request, direct)
          expect(Object.is(pooled.loss, local.loss)).toBe(true)
          expect(Array.from(pooled.gradients as Float32Array)).toEqual(Array.from(local.gradients as Float32Array))
        }
      ),
      { numRuns: 40 }
    )
  })
})
