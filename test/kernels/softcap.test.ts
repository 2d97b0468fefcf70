import fc from 'fast-check'
import { describe, it } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import { expectArrayClose, expectScalarClose } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'
import type { KernelKind } from './local.js'
import { compute, expectFiniteDifferenceGradient, expectLossesMatch, type Problem, scalarLossOf } from './runners.js'

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

type SoftcapProblem = Problem & { softcap: number; z_loss: number }

/**
 * Problems for the softcap: rows up to 90 wide (the vector loops and their tails), logits from
 * well inside the cap (the kernel's polynomial) to far past it (its exp), and masked ones.
 */
const softcapArb = (maxVocab: number): fc.Arbitrary<SoftcapProblem> =>
  fc
    .record({ rows: fc.integer({ min: 1, max: 4 }), vocab: fc.integer({ min: 2, max: maxVocab }) })
    .chain(({ rows, vocab }) =>
      fc.record({
        logits: fc.array(
          fc.array(
            fc.oneof(
              { weight: 8, arbitrary: fc.integer({ min: -400, max: 400 }).map((k) => k / 16) },
              { weight: 2, arbitrary: fc.integer({ min: -3000, max: 3000 }).map((k) => k / 8) }
            ),
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
        softcap: fc.constantFrom(1, 5, 30, 100),
        z_loss: fc.constantFrom(0, 0.01)
      })
    )

const reference = (problem: SoftcapProblem, logits = problem.logits) =>
  referenceCrossEntropy({
    ...problem,
    logits,
    ignoreIndex: problem.ignore_index,
    labelSmoothing: problem.label_smoothing,
    zLoss: problem.z_loss,
    softcap: problem.softcap
  })

describe.each(KERNELS)('softcap (%s kernel)', (_name, kind) => {
  it('gives the loss of the soft-capped logits, with the gradient asked for or not', async () => {
    await fc.assert(
      fc.asyncProperty(softcapArb(90), fc.boolean(), async (problem, gradients) => {
        const outputs = gradients ? ['token_losses', 'gradients'] : ['token_losses']
        const result = await compute(problem, kind, undefined, outputs)
        expectLossesMatch(result, reference(problem), problem.reduction)
      }),
      { numRuns: 300 }
    )
  })

  it('lets the gradient flow through the tanh (central finite differences)', async () => {
    await fc.assert(
      fc.asyncProperty(softcapArb(12), async (problem) => {
        // Finite differences need logits where the loss is smooth at h = 1e-4: inside the cap.
        const tame = { ...problem, logits: problem.logits.map((row) => row.map((x) => Math.max(-25, Math.min(25, x)))) }
        const result = await compute(tame, kind)
        const scalarLoss = (logits: number[][]) => scalarLossOf(reference(tame, logits).loss)
        if (Number.isNaN(scalarLoss(tame.logits))) return
        expectFiniteDifferenceGradient(tame.logits, scalarLoss, result.gradients)
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
    const capped = await compute({ ...problem, softcap: 1000 } as Problem, kind)
    const plain = await compute(problem, kind)
    expectScalarClose(capped.loss, plain.loss, 'loss')
  })
})

describe('softcap: the WebAssembly SIMD kernel against the TypeScript one', () => {
  it('agrees on wide rows, inside and past the cap, losses and gradients', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1000, max: 5000 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.constantFrom(5, 30, 50),
        fc.constantFrom(4, 40, 400),
        fc.boolean(),
        async (vocab, seed, softcap, spread, gradients) => {
          let state = seed
          const random = () => {
            state = (state * 1103515245 + 12345) % 2147483648
            return state / 2147483648
          }
          const problem = {
            logits: Array.from({ length: 3 }, () => Array.from({ length: vocab }, () => (random() * 2 - 1) * spread)),
            targets: [0, vocab - 1, Math.floor(random() * vocab)],
            ignore_index: -100,
            label_smoothing: 0,
            reduction: 'mean' as const,
            softcap
          } as Problem
          const outputs = gradients ? ['token_losses', 'gradients'] : ['token_losses']
          const [simd, plain] = await Promise.all([
            compute(problem, 'wasm', undefined, outputs),
            compute(problem, 'oracle', undefined, outputs)
          ])
          expectArrayClose(Array.from(simd.tokenLoss), Array.from(plain.tokenLoss), 'tokenLoss')
          expectArrayClose(Array.from(simd.gradients), Array.from(plain.gradients), 'gradients')
        }
      ),
      { numRuns: 30 }
    )
  })
})
