import fc from 'fast-check'
import { describe, it } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import { referenceCrossEntropy } from '../../src/kernel/reference.js'
import { expectScalarClose } from '../helper.js'
import {
  compute,
  expectFiniteDifferenceGradient,
  expectLossesMatch,
  type Problem,
  referenceRunner,
  scalarLossOf
} from './runners.js'

// The service runs softcapped batches on the plain kernel (the SIMD one has no tanh).

const softcapArb: fc.Arbitrary<Problem & { softcap: number; z_loss: number }> = fc
  .record({ rows: fc.integer({ min: 1, max: 4 }), vocab: fc.integer({ min: 2, max: 12 }) })
  .chain(({ rows, vocab }) =>
    fc.record({
      logits: fc.array(
        fc.array(
          fc.integer({ min: -400, max: 400 }).map((k) => k / 16),
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
      label_smoothing: fc.constantFrom(0, 0.1),
      reduction: fc.constantFrom<Reduction>('mean', 'sum', 'none'),
      softcap: fc.constantFrom(1, 5, 30),
      z_loss: fc.constantFrom(0, 0.01)
    })
  )

const reference = (problem: Problem & { softcap: number; z_loss: number }, logits = problem.logits) =>
  referenceCrossEntropy({
    ...problem,
    logits,
    ignoreIndex: problem.ignore_index,
    labelSmoothing: problem.label_smoothing,
    zLoss: problem.z_loss,
    softcap: problem.softcap
  })

describe('softcap (plain kernel)', () => {
  it('gives the loss of the soft-capped logits', async () => {
    await fc.assert(
      fc.asyncProperty(softcapArb, async (problem) => {
        const result = await compute(problem, referenceRunner)
        expectLossesMatch(result, reference(problem), problem.reduction)
      }),
      { numRuns: 200 }
    )
  })

  it('lets the gradient flow through the tanh (central finite differences)', async () => {
    await fc.assert(
      fc.asyncProperty(softcapArb, async (problem) => {
        const result = await compute(problem, referenceRunner)
        const scalarLoss = (logits: number[][]) => scalarLossOf(reference(problem, logits).loss)
        if (Number.isNaN(scalarLoss(problem.logits))) return
        expectFiniteDifferenceGradient(problem.logits, scalarLoss, result.gradients)
      }),
      { numRuns: 100 }
    )
  })

  it('changes nothing for logits far inside the cap', async () => {
    const problem = {
      logits: [[0.001, -0.002, 0.0005]],
      targets: [1],
      ignore_index: -100,
      label_smoothing: 0,
      reduction: 'sum' as const
    }
    const capped = await compute({ ...problem, softcap: 1000 } as Problem, referenceRunner)
    const plain = await compute(problem, referenceRunner)
    expectScalarClose(capped.loss, plain.loss, 'loss')
  })
})
