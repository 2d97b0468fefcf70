import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import type { Analytics } from '../../src/ops/cross-entropy/analytics.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { computeLogprobs } from '../../src/ops/logprobs/compute.js'
import { decodeLogprobsJson } from '../../src/ops/logprobs/json.js'
import { expectArrayClose } from '../helper.js'
import { referenceAnalytics, referenceCrossEntropy, referenceLogprobs } from '../oracles/reference.js'
import { type KernelKind, localEngine, openMemory } from './local.js'
import { expectLossesMatch } from './runners.js'

// Logits of any float32 magnitude, up to its largest finite value (3.4e38): the loss is formed as
// log Σ − (x[target] − max), never (max + log Σ) − x[target], which would lose log Σ beside a
// large max. Every output is held to the float64 reference at the fixtures' tolerance.

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]
const FLOAT32_MAX = 3.4028234663852886e38

/** Rows of float32 logits spread over [−M, M], for M up to float32's largest; many share the max. */
const extremeArb = fc
  .record({
    rows: fc.integer({ min: 1, max: 4 }),
    vocab: fc.integer({ min: 2, max: 40 }),
    magnitude: fc.constantFrom(1e6, 1e12, 1e20, 1e30, 1e37, FLOAT32_MAX)
  })
  .chain(({ rows, vocab, magnitude }) =>
    fc.record({
      logits: fc.array(
        fc.array(
          fc.oneof(
            { weight: 3, arbitrary: fc.constant(1) },
            { weight: 1, arbitrary: fc.constant(0) },
            { weight: 4, arbitrary: fc.integer({ min: -64, max: 64 }).map((k) => k / 64) }
          ),
          { minLength: vocab, maxLength: vocab }
        ),
        { minLength: rows, maxLength: rows }
      ),
      magnitude: fc.constant(magnitude),
      targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
        minLength: rows,
        maxLength: rows
      }),
      label_smoothing: fc.constantFrom(0, 0.1),
      z_loss: fc.constantFrom(0, 1e-4),
      softcap: fc.constantFrom(0, 30),
      reduction: fc.constantFrom<Reduction>('mean', 'sum', 'none')
    })
  )
  .map(({ logits, magnitude, ...rest }) => ({
    ...rest,
    logits: logits.map((row) => row.map((u) => Math.fround(u * magnitude)))
  }))

describe.each(KERNELS)('%s kernel at float32’s extremes', (_name, kind) => {
  it('gives log 2 and the gradient [−½, ½, 0] for [M, M, 0] with target 0, for every M', async () => {
    for (const M of [1e12, 1e20, 1e30, 1e38, FLOAT32_MAX]) {
      const memory = openMemory()
      try {
        const engine = localEngine(kind)
        const job = decodeCrossEntropyJson(
          { logits: [[M, M, 0]], targets: [0], outputs: ['gradients', 'entropy', 'target_logprobs'] },
          memory,
          engine
        )
        const result = await computeCrossEntropy(engine, job)
        expect(result.loss, `M = ${M}`).toBeCloseTo(Math.LN2, 12)
        expect(Array.from(result.gradients as Float32Array)).toEqual([-0.5, 0.5, 0])
        const analytics = result.analytics as Analytics
        expect(analytics.entropy[0]).toBeCloseTo(Math.LN2, 12)
        expect(analytics.targetLogprobs[0]).toBeCloseTo(-Math.LN2, 12)
      } finally {
        memory.release()
      }
    }
  })

  it('agrees with the reference: losses, smoothing, z-loss, softcap; finite gradients, rows summing to 0', async () => {
    await fc.assert(
      fc.asyncProperty(extremeArb, async (problem) => {
        const memory = openMemory()
        try {
          const engine = localEngine(kind)
          const job = decodeCrossEntropyJson(
            {
              logits: problem.logits,
              targets: problem.targets,
              label_smoothing: problem.label_smoothing,
              z_loss: problem.z_loss,
              ...(problem.softcap > 0 ? { softcap: problem.softcap } : {}),
              reduction: problem.reduction,
              outputs: ['token_losses', 'gradients', 'entropy', 'target_logprobs']
            },
            memory,
            engine
          )
          const result = await computeCrossEntropy(engine, job)
          const expected = referenceCrossEntropy({
            ...problem,
            ignoreIndex: -100,
            labelSmoothing: problem.label_smoothing,
            zLoss: problem.z_loss,
            softcap: problem.softcap
          })
          expectLossesMatch(
            { ...result, tokenLoss: result.tokenLoss, gradients: result.gradients as Float32Array },
            expected,
            problem.reduction
          )
          const vocab = problem.logits[0].length
          const gradients = result.gradients as Float32Array
          expect(gradients.every(Number.isFinite)).toBe(true)
          // z-loss adds 2z·lse·p_c, which sums to 2z·lse, and the softcap's slope differs from
          // class to class: only without them does a gradient row sum to 0.
          const sumsToZero = problem.z_loss === 0 && problem.softcap === 0
          for (let r = 0; r < problem.logits.length && sumsToZero; r++) {
            let sum = 0
            for (let c = 0; c < vocab; c++) sum += gradients[r * vocab + c]
            expect(Math.abs(sum)).toBeLessThan(1e-5)
          }
          const capped =
            problem.softcap > 0
              ? problem.logits.map((row) => row.map((x) => problem.softcap * Math.tanh(x / problem.softcap)))
              : problem.logits
          const analytics = result.analytics as Analytics
          const reference = referenceAnalytics(capped, problem.targets, -100, problem.targets.length)
          expectArrayClose(Array.from(analytics.entropy), reference.entropy, 'entropy')
          expectArrayClose(Array.from(analytics.targetLogprobs), reference.targetLogprobs, 'target_logprobs')
        } finally {
          memory.release()
        }
      }),
      { numRuns: 300 }
    )
  })

  it('agrees with the reference with soft targets (class probabilities)', async () => {
    await fc.assert(
      fc.asyncProperty(extremeArb, fc.integer({ min: 1, max: 1000 }), async (problem, seed) => {
        const vocab = problem.logits[0].length
        // A distribution per row, some classes 0.
        const softTargets = problem.logits.map((row, r) => {
          const raw = row.map((_, c) => ((c * 7 + r * 3 + seed) % 5) / 4)
          const total = raw.reduce((a, b) => a + b, 0) || 1
          return raw.map((x, c) =>
            total === 1 && raw.every((y) => y === 0) ? (c === 0 ? 1 : 0) : Math.fround(x / total)
          )
        })
        const memory = openMemory()
        try {
          const engine = localEngine(kind)
          const job = decodeCrossEntropyJson(
            {
              logits: problem.logits,
              soft_targets: softTargets,
              label_smoothing: problem.label_smoothing,
              ...(problem.softcap > 0 ? { softcap: problem.softcap } : {}),
              reduction: problem.reduction,
              outputs: ['token_losses', 'gradients']
            },
            memory,
            engine
          )
          const result = await computeCrossEntropy(engine, job)
          const expected = referenceCrossEntropy({
            logits: problem.logits,
            targets: problem.logits.map(() => 0),
            softTargets,
            ignoreIndex: -100,
            labelSmoothing: problem.label_smoothing,
            reduction: problem.reduction,
            softcap: problem.softcap
          })
          expectLossesMatch({ ...result, gradients: result.gradients as Float32Array }, expected, problem.reduction)
          expect((result.gradients as Float32Array).every(Number.isFinite)).toBe(true)
          expect(vocab).toBeGreaterThan(1)
        } finally {
          memory.release()
        }
      }),
      { numRuns: 300 }
    )
  })

  it('agrees with the reference on logprobs: targets, top k and entropy', async () => {
    await fc.assert(
      fc.asyncProperty(extremeArb, fc.constantFrom(1, 0.5, 2), async (problem, temperature) => {
        const memory = openMemory()
        try {
          const engine = localEngine(kind)
          const topK = Math.min(4, problem.logits[0].length)
          const job = decodeLogprobsJson(
            {
              logits: problem.logits,
              targets: problem.targets,
              ...(problem.softcap > 0 ? { softcap: problem.softcap } : {}),
              temperature,
              top_k: topK,
              outputs: ['entropy']
            },
            memory,
            engine
          )
          const result = await computeLogprobs(engine, job)
          const expected = referenceLogprobs(problem.logits, problem.targets, {
            softcap: problem.softcap,
            temperature,
            topK,
            ignoreIndex: -100
          })
          expectArrayClose(Array.from(result.targetLogprobs ?? []), expected.targetLogprobs, 'target')
          expectArrayClose(Array.from(result.topLogprobs ?? []), expected.topLogprobs.flat(), 'top_k logprobs')
          expectArrayClose(Array.from(result.entropy ?? []), expected.entropy, 'entropy')
        } finally {
          memory.release()
        }
      }),
      { numRuns: 300 }
    )
  })

  it('agrees with the reference for any softcap in [1e-30, 1e30] and temperature in [0.3, 1e30]', async () => {
    const scaleArb = fc
      .integer({ min: -30, max: 30 })
      .chain((exponent) => fc.constantFrom(1, 3, 7).map((mantissa) => Number(`${mantissa}e${exponent}`)))
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(
            fc.integer({ min: -200, max: 200 }).map((k) => k / 4),
            { minLength: 6, maxLength: 6 }
          ),
          {
            minLength: 1,
            maxLength: 3
          }
        ),
        scaleArb.filter((x) => x <= 1e30),
        // At 0.1 and below a temperature magnifies float32's rounding of the capped logits (tenfold
        // and more) to the fixtures' tolerance and past it (as it does PyTorch's): at 0.1, softcap
        // 100 and logits [0, 22.75, 0, 23, 0, 0] the entropy differs from the float64 reference by
        // 1.5e-5 of itself. Those temperatures are held to finite answers next.
        scaleArb.filter((x) => x >= 0.3 && x <= 1e30),
        async (logits, softcap, temperature) => {
          const targets = logits.map((_, r) => r % 6)
          const memory = openMemory()
          try {
            const engine = localEngine(kind)
            const job = decodeLogprobsJson(
              { logits, targets, softcap, temperature, top_k: 3, outputs: ['entropy'] },
              memory,
              engine
            )
            const result = await computeLogprobs(engine, job)
            const expected = referenceLogprobs(logits, targets, { softcap, temperature, topK: 3, ignoreIndex: -100 })
            expect(Array.from(result.topIds ?? [])).toEqual(expected.topIds.flat())
            expectArrayClose(Array.from(result.targetLogprobs ?? []), expected.targetLogprobs, 'target')
            expectArrayClose(Array.from(result.entropy ?? []), expected.entropy, 'entropy')
          } finally {
            memory.release()
          }
          const ceMemory = openMemory()
          try {
            const engine = localEngine(kind)
            const job = decodeCrossEntropyJson(
              { logits, targets, softcap, outputs: ['token_losses', 'gradients'] },
              ceMemory,
              engine
            )
            const result = await computeCrossEntropy(engine, job)
            const expected = referenceCrossEntropy({
              logits,
              targets,
              ignoreIndex: -100,
              labelSmoothing: 0,
              reduction: 'mean',
              softcap
            })
            expectLossesMatch({ ...result, gradients: result.gradients as Float32Array }, expected, 'mean')
            expect((result.gradients as Float32Array).every(Number.isFinite)).toBe(true)
          } finally {
            ceMemory.release()
          }
        }
      ),
      { numRuns: 400 }
    )
  })

  it('answers finite numbers for any temperature down to 1e-30, however far apart the logits', async () => {
    await fc.assert(
      fc.asyncProperty(
        extremeArb,
        fc.integer({ min: -30, max: -1 }).map((exponent) => Number(`1e${exponent}`)),
        async (problem, temperature) => {
          const memory = openMemory()
          try {
            const engine = localEngine(kind)
            const topK = Math.min(4, problem.logits[0].length)
            const job = decodeLogprobsJson(
              { logits: problem.logits, targets: problem.targets, temperature, top_k: topK, outputs: ['entropy'] },
              memory,
              engine
            )
            const result = await computeLogprobs(engine, job)
            for (const values of [result.targetLogprobs, result.topLogprobs, result.entropy]) {
              expect(Array.from(values ?? []).every(Number.isFinite)).toBe(true)
            }
          } finally {
            memory.release()
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})
