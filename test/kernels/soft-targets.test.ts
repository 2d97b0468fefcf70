import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import { expectArrayClose, expectScalarClose } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'
import type { KernelKind } from './local.js'
import { compute, expectFiniteDifferenceGradient, type Problem, scalarLossOf } from './runners.js'

// Class probabilities instead of class indices, as PyTorch's probability targets.

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

interface SoftProblem {
  logits: number[][]
  soft_targets: number[][]
  weight?: number[]
  label_smoothing: number
  reduction: Reduction
  z_loss: number
  softcap?: number
}

/** Rows up to `maxVocab` wide: past 16, the kernel's vector loops and their tails. */
const softArb = (maxVocab: number): fc.Arbitrary<SoftProblem> =>
  fc
    .record({ rows: fc.integer({ min: 1, max: 4 }), vocab: fc.integer({ min: 1, max: maxVocab }) })
    .chain(({ rows, vocab }) =>
      fc.record({
        logits: fc.array(
          fc.array(
            fc.integer({ min: -96, max: 96 }).map((k) => k / 16),
            { minLength: vocab, maxLength: vocab }
          ),
          { minLength: rows, maxLength: rows }
        ),
        // Probabilities as float32, each row normalized (some classes 0).
        soft_targets: fc.array(
          fc
            .array(fc.integer({ min: 0, max: 8 }), { minLength: vocab, maxLength: vocab })
            .map((counts) => (counts.every((k) => k === 0) ? counts.map((_, i) => (i === 0 ? 1 : 0)) : counts))
            .map((counts) => {
              const total = counts.reduce((a, b) => a + b, 0)
              return counts.map((k) => Math.fround(k / total))
            }),
          { minLength: rows, maxLength: rows }
        ),
        weight: fc.option(
          fc.array(
            fc.integer({ min: 1, max: 64 }).map((k) => k / 32),
            { minLength: vocab, maxLength: vocab }
          ),
          { nil: undefined }
        ),
        label_smoothing: fc.constantFrom(0, 0.2),
        reduction: fc.constantFrom<Reduction>('mean', 'sum', 'none'),
        z_loss: fc.constantFrom(0, 0.02),
        softcap: fc.constantFrom(undefined, 3)
      })
    )

const reference = (problem: SoftProblem, logits = problem.logits) =>
  referenceCrossEntropy({
    logits,
    targets: [],
    weight: problem.weight,
    ignoreIndex: -100,
    labelSmoothing: problem.label_smoothing,
    reduction: problem.reduction,
    zLoss: problem.z_loss,
    softcap: problem.softcap,
    softTargets: problem.soft_targets
  })

describe.each(KERNELS)('soft targets (%s kernel)', (_name, kind) => {
  const run = (problem: SoftProblem, outputs?: string[]) =>
    compute(problem as unknown as Problem, kind, undefined, outputs)

  it('gives PyTorch’s loss for class probabilities, mean over rows, with the gradient asked for or not', async () => {
    await fc.assert(
      fc.asyncProperty(softArb(70), fc.boolean(), async (problem, gradients) => {
        const result = await run(problem, gradients ? ['token_losses', 'gradients'] : ['token_losses'])
        const expected = reference(problem)
        expectArrayClose(Array.from(result.tokenLoss), expected.tokenLoss, 'token losses')
        if (problem.reduction !== 'none') expectScalarClose(result.loss, expected.loss as number, 'loss')
        expectScalarClose(result.perplexity, expected.perplexity, 'perplexity')
        expect(result.count).toBe(problem.logits.length)
      }),
      { numRuns: 200 }
    )
  })

  it('gives the gradient of that loss (central finite differences)', async () => {
    await fc.assert(
      fc.asyncProperty(softArb(10), async (problem) => {
        const result = await run(problem)
        const scalarLoss = (logits: number[][]) => scalarLossOf(reference(problem, logits).loss)
        expectFiniteDifferenceGradient(problem.logits, scalarLoss, result.gradients)
      }),
      { numRuns: 100 }
    )
  })

  it('equals class-index targets when the probabilities are one-hot', async () => {
    const logits = [
      [1, 2, 0.5],
      [0, -1, 3]
    ]
    const options = { logits, label_smoothing: 0.1, reduction: 'mean' as const }
    const hard = await compute({ ...options, targets: [1, 2], ignore_index: -100 }, kind)
    const soft = await compute(
      {
        ...options,
        soft_targets: [
          [0, 1, 0],
          [0, 0, 1]
        ]
      } as unknown as Problem,
      kind
    )
    expectScalarClose(soft.loss, hard.loss, 'loss')
    expectArrayClose(Array.from(soft.gradients), Array.from(hard.gradients), 'gradients')
  })
})
