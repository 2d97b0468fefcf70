import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ANALYTICS_OUTPUTS } from '../../schemas/cross-entropy.js'
import type { Analytics } from '../../src/ops/cross-entropy/analytics.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { expectArrayClose, expectScalarClose } from '../helper.js'
import { referenceAnalytics } from '../oracles/reference.js'
import { type KernelKind, localEngine, openMemory, splitInto } from './local.js'

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

/**
 * (B, T, V) problems with ties (logits are multiples of 1/4), masked −Inf logits away from the
 * target, ignored rows, and rows wide enough (up to 40) for the kernel's vector loops.
 */
const problemArb = fc
  .record({
    batches: fc.integer({ min: 1, max: 3 }),
    steps: fc.integer({ min: 1, max: 4 }),
    vocab: fc.integer({ min: 1, max: 40 })
  })
  .chain(({ batches, steps, vocab }) => {
    const rows = batches * steps
    return fc.record({
      batches: fc.constant(batches),
      steps: fc.constant(steps),
      logits: fc.array(
        fc.array(
          fc.oneof(
            { weight: 10, arbitrary: fc.integer({ min: -40, max: 40 }).map((k) => k / 4) },
            { weight: 1, arbitrary: fc.constant(Number.NEGATIVE_INFINITY) }
          ),
          { minLength: vocab, maxLength: vocab }
        ),
        { minLength: rows, maxLength: rows }
      ),
      targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
        minLength: rows,
        maxLength: rows
      })
    })
  })
  .map((problem) => {
    // Keep each counted row's target finite (a −Inf there is refused), and a row not all −Inf.
    const logits = problem.logits.map((row, r) =>
      row.map((x, c) => (c === problem.targets[r] || (c === 0 && problem.targets[r] === -100) ? Math.max(x, -5) : x))
    )
    return { ...problem, logits }
  })

async function analyticsOf(
  problem: { batches: number; steps: number; logits: number[][]; targets: number[] },
  run: KernelKind
) {
  const { batches, steps } = problem
  const nest = <T>(flat: T[]) => Array.from({ length: batches }, (_, b) => flat.slice(b * steps, (b + 1) * steps))
  // JSON cannot carry −Inf: decode finite stand-ins, then write the real logits in place.
  const body = {
    logits: nest(problem.logits.map((row) => row.map(() => 0))),
    targets: nest(problem.targets),
    outputs: [...ANALYTICS_OUTPUTS]
  }
  const memory = openMemory()
  try {
    // Two ranges, so that a sequence may span both.
    const engine = localEngine(run, 1, splitInto(Math.min(2, problem.logits.length)))
    const job = decodeCrossEntropyJson(body as never, memory, engine)
    ;(job.logits as Float32Array).set(problem.logits.flat())
    const result = await computeCrossEntropy(engine, job)
    const analytics = result.analytics as Analytics
    return {
      ...analytics,
      entropy: Array.from(analytics.entropy),
      targetLogprobs: Array.from(analytics.targetLogprobs),
      predictions: Array.from(analytics.predictions),
      sequenceLosses: Array.from(analytics.sequenceLosses),
      sequencePerplexities: Array.from(analytics.sequencePerplexities)
    }
  } finally {
    memory.release()
  }
}

const orNull = (x: number) => (Number.isFinite(x) ? x : null)

/** Element by element at the fixtures' tolerance, NaN and ±Inf standing for null. */
function expectNullableClose(actual: number[], expected: number[], what: string): void {
  expect(actual.length).toBe(expected.length)
  for (const [i, value] of actual.entries()) expectScalarClose(orNull(value), orNull(expected[i]), `${what}[${i}]`)
}

describe.each(KERNELS)('%s kernel: analytics outputs against a float64 reference', (_name, run) => {
  it('entropy, target log-probs, predictions, accuracy, sequence losses, bits per token, z-loss', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const actual = await analyticsOf(problem, run)
        const expected = referenceAnalytics(problem.logits, problem.targets, -100, problem.steps)
        expectArrayClose(actual.entropy, expected.entropy, 'entropy')
        expectArrayClose(actual.targetLogprobs, expected.targetLogprobs, 'target_logprobs')
        expect(actual.predictions).toEqual(expected.predictions)
        expectScalarClose(orNull(actual.accuracy), orNull(expected.accuracy), 'accuracy')
        expectNullableClose(actual.sequenceLosses, expected.sequenceLosses, 'sequence_losses')
        expectNullableClose(actual.sequencePerplexities, expected.sequencePerplexities, 'sequence_perplexities')
        expectScalarClose(orNull(actual.bitsPerToken), orNull(expected.bitsPerToken), 'bits_per_token')
        expectScalarClose(orNull(actual.zLoss), orNull(expected.zLoss), 'z_loss')
      }),
      { numRuns: 300 }
    )
  })

  it('gives log V of entropy and the lowest index for a uniform row', async () => {
    const vocab = 37
    const actual = await analyticsOf({ batches: 1, steps: 1, logits: [Array(vocab).fill(2.5)], targets: [5] }, run)
    expectScalarClose(actual.entropy[0], Math.log(vocab), 'entropy')
    expect(actual.predictions).toEqual([0])
    expect(actual.accuracy).toBe(0)
  })
})
