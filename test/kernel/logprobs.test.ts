import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LOGPROB_ROWS_VALID, logprobRows } from '../../src/kernel/logprobs.js'
import { referenceLogprobs } from '../../src/kernel/reference.js'
import { expectArrayClose } from '../helper.js'

/** Rows with ties (multiples of 1/4), masked −Inf logits (never a whole row), options. */
const problemArb = fc
  .record({ rows: fc.integer({ min: 1, max: 5 }), vocab: fc.integer({ min: 1, max: 30 }) })
  .chain(({ rows, vocab }) =>
    fc.record({
      logits: fc.array(
        fc.array(
          fc.oneof(
            { weight: 10, arbitrary: fc.integer({ min: -60, max: 60 }).map((k) => k / 4) },
            { weight: 1, arbitrary: fc.constant(Number.NEGATIVE_INFINITY) }
          ),
          { minLength: vocab, maxLength: vocab }
        ),
        { minLength: rows, maxLength: rows }
      ),
      targets: fc.option(
        fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
          minLength: rows,
          maxLength: rows
        }),
        { nil: null }
      ),
      softcap: fc.constantFrom(0, 2, 30),
      temperature: fc.constantFrom(1, 0.5, 1.7),
      topK: fc.integer({ min: 1, max: vocab })
    })
  )
  .map((problem) => ({
    ...problem,
    // A target's own logit stays finite, and so does each row's first.
    logits: problem.logits.map((row, r) =>
      row.map((x, c) => (c === 0 || c === problem.targets?.[r] ? Math.max(x, -3) : x))
    )
  }))

describe('logprobs rows against a float64 reference', () => {
  it('target log-probs, top k (ids and values, ties to the lower id) and entropy, after softcap and temperature', () => {
    fc.assert(
      fc.property(problemArb, ({ logits, targets, softcap, temperature, topK }) => {
        const rows = logits.length
        const vocab = logits[0].length
        const out = {
          targetLogprobs: targets === null ? null : new Float64Array(rows),
          topIds: new Int32Array(rows * topK),
          topLogprobs: new Float64Array(rows * topK),
          entropy: new Float64Array(rows)
        }
        const verdict = logprobRows(
          Float32Array.from(logits.flat()),
          targets === null ? null : Int32Array.from(targets),
          { vocab, logitsDtype: 0, softcap, temperature, ignoreIndex: -100, topK },
          0,
          rows,
          out
        )
        expect(verdict).toBe(LOGPROB_ROWS_VALID)
        const expected = referenceLogprobs(logits, targets, { softcap, temperature, topK, ignoreIndex: -100 })
        if (targets !== null) expectArrayClose(Array.from(out.targetLogprobs ?? []), expected.targetLogprobs, 'target')
        expect(Array.from(out.topIds)).toEqual(expected.topIds.flat())
        // A masked token in the top k has log-probability −Inf on both sides.
        const finite = (values: number[]) => values.map((x) => (x === Number.NEGATIVE_INFINITY ? -1e300 : x))
        expectArrayClose(finite(Array.from(out.topLogprobs)), finite(expected.topLogprobs.flat()), 'top_k logprobs')
        expectArrayClose(Array.from(out.entropy), expected.entropy, 'entropy')
      }),
      { numRuns: 300 }
    )
  })

  it('names the first row it cannot take', () => {
    const out = { targetLogprobs: new Float64Array(3), topIds: null, topLogprobs: null, entropy: null }
    const params = { vocab: 2, logitsDtype: 0, softcap: 0, temperature: 1, ignoreIndex: -100, topK: 0 }
    const run = (logits: number[], targets: number[]) =>
      logprobRows(Float32Array.from(logits), Int32Array.from(targets), params, 0, targets.length, out)
    expect(run([1, 2, 3, Number.NaN, 0, 0], [0, 1, 0])).toBe(1)
    expect(run([1, 2, 3, 4, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY], [0, 1, -100])).toBe(2)
    expect(run([1, 2, Number.NEGATIVE_INFINITY, 4, 0, 0], [0, 0, 1])).toBe(1)
    expect(run([1, 2, Number.NEGATIVE_INFINITY, 4, 0, 0], [0, 1, 1])).toBe(LOGPROB_ROWS_VALID)
  })
})
