import fc from 'fast-check'
import { describe, it } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import { referenceCrossEntropy } from '../oracles/reference.js'
import type { KernelKind } from './local.js'
import { compute, expectFiniteDifferenceGradient, expectLossesMatch, type Problem, scalarLossOf } from './runners.js'

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

/** Problems with a z-loss coefficient, weights and smoothing now and then, ignored rows. */
const zProblemArb: fc.Arbitrary<Problem & { z_loss: number }> = fc
  .record({ rows: fc.integer({ min: 1, max: 5 }), vocab: fc.integer({ min: 2, max: 20 }) })
  .chain(({ rows, vocab }) =>
    fc.record({
      logits: fc.array(
        fc.array(
          fc.integer({ min: -96, max: 96 }).map((k) => k / 16),
          { minLength: vocab, maxLength: vocab }
        ),
        { minLength: rows, maxLength: rows }
      ),
      targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
        minLength: rows,
        maxLength: rows
      }),
      weight: fc.option(
        fc.array(
          fc.integer({ min: 1, max: 64 }).map((k) => k / 32),
          { minLength: vocab, maxLength: vocab }
        ),
        { nil: undefined }
      ),
      ignore_index: fc.constant(-100),
      label_smoothing: fc.constantFrom(0, 0.125),
      reduction: fc.constantFrom<Reduction>('mean', 'sum', 'none'),
      z_loss: fc.integer({ min: 1, max: 64 }).map((k) => k / 256)
    })
  )

const reference = (problem: Problem & { z_loss: number }, logits = problem.logits) =>
  referenceCrossEntropy({
    ...problem,
    logits,
    ignoreIndex: problem.ignore_index,
    labelSmoothing: problem.label_smoothing,
    zLoss: problem.z_loss
  })

describe.each(KERNELS)('%s kernel with z-loss', (_name, run) => {
  it('adds z·lse² to each counted token loss, and to the loss (÷ count under mean)', async () => {
    await fc.assert(
      fc.asyncProperty(zProblemArb, async (problem) => {
        const result = await compute(problem, run)
        expectLossesMatch(result, reference(problem), problem.reduction)
      }),
      { numRuns: 200 }
    )
  })

  it('gives the gradient of that loss (central finite differences)', async () => {
    await fc.assert(
      fc.asyncProperty(zProblemArb, async (problem) => {
        const result = await compute(problem, run)
        const scalarLoss = (logits: number[][]) => scalarLossOf(reference(problem, logits).loss)
        if (Number.isNaN(scalarLoss(problem.logits))) return
        expectFiniteDifferenceGradient(problem.logits, scalarLoss, result.gradients)
      }),
      { numRuns: 100 }
    )
  })
})
