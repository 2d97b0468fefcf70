import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { LogprobsRequest } from '../../schemas/logprobs.js'
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../../src/kernels/half.js'
import { computeLogprobs } from '../../src/ops/logprobs/compute.js'
import { decodeLogprobsJson } from '../../src/ops/logprobs/json.js'
import { decodeLogprobsSafetensors } from '../../src/ops/logprobs/safetensors.js'
import { expectArrayClose, safetensorsFile } from '../helper.js'
import { referenceLogprobs } from '../oracles/reference.js'
import { type KernelKind, localEngine, openMemory } from './local.js'

const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

interface LogprobsProblem {
  logits: number[][]
  targets: number[] | null
  softcap: number
  temperature: number
  topK: number
}

/**
 * Rows with ties (multiples of 1/4), masked −Inf logits (never a whole row), options; rows up to
 * `maxVocab` wide, past 16 for the vector loops, where the top k are found.
 */
const problemArb = (maxVocab: number): fc.Arbitrary<LogprobsProblem> =>
  fc
    .record({ rows: fc.integer({ min: 1, max: 5 }), vocab: fc.integer({ min: 1, max: maxVocab }) })
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
        topK: fc.integer({ min: 1, max: Math.min(vocab, 64) })
      })
    )
    .map((problem) => ({
      ...problem,
      // A target's own logit stays finite, and so does each row's first.
      logits: problem.logits.map((row, r) =>
        row.map((x, c) => (c === 0 || c === problem.targets?.[r] ? Math.max(x, -3) : x))
      )
    }))

/** Decodes with finite stand-ins (JSON has no −Inf), writes the real logits, computes with `kind`, copies out. */
async function logprobsOf(problem: LogprobsProblem, kind: KernelKind) {
  const { logits, targets, softcap, temperature, topK } = problem
  const memory = openMemory()
  try {
    const engine = localEngine(kind)
    const body: LogprobsRequest = {
      logits: logits.map((row) => row.map(() => 0)),
      ...(targets === null ? {} : { targets }),
      ...(softcap > 0 ? { softcap } : {}),
      temperature,
      top_k: topK,
      outputs: ['entropy']
    }
    const job = decodeLogprobsJson(body, memory, engine)
    ;(job.logits as Float32Array).set(logits.flat())
    const result = await computeLogprobs(engine, job)
    return {
      targetLogprobs: result.targetLogprobs === null ? null : Array.from(result.targetLogprobs),
      topIds: Array.from(result.topIds ?? []),
      topLogprobs: Array.from(result.topLogprobs ?? []),
      entropy: Array.from(result.entropy ?? [])
    }
  } finally {
    memory.release()
  }
}

/** A masked token in the top k has log-probability −Inf on both sides. */
const finite = (values: number[]) => values.map((x) => (x === Number.NEGATIVE_INFINITY ? -1e300 : x))

describe.each(KERNELS)('logprobs (%s kernel) against a float64 reference', (_name, kind) => {
  it('target log-probs, top k (ids and values, ties to the lower id) and entropy, after softcap and temperature', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb(80), async (problem) => {
        const out = await logprobsOf(problem, kind)
        const expected = referenceLogprobs(problem.logits, problem.targets, { ...problem, ignoreIndex: -100 })
        if (problem.targets !== null) expectArrayClose(out.targetLogprobs, expected.targetLogprobs, 'target')
        expect(out.topIds).toEqual(expected.topIds.flat())
        expectArrayClose(finite(out.topLogprobs), finite(expected.topLogprobs.flat()), 'top_k logprobs')
        expectArrayClose(out.entropy, expected.entropy, 'entropy')
      }),
      { numRuns: 300 }
    )
  })

  it('names the first row it cannot take', async () => {
    const run = async (logits: number[], targets: number[]) => {
      const memory = openMemory()
      try {
        const engine = localEngine(kind)
        const job = decodeLogprobsJson(
          {
            logits: [
              [0, 0],
              [0, 0],
              [0, 0]
            ],
            targets
          },
          memory,
          engine
        )
        ;(job.logits as Float32Array).set(logits)
        return await computeLogprobs(engine, job).then(
          () => 'valid',
          (error: Error) => error.message
        )
      } finally {
        memory.release()
      }
    }
    expect(await run([1, 2, 3, Number.NaN, 0, 0], [0, 1, 0])).toBe(
      'logits[1][1] is NaN; logits must be finite or −Inf (masked)'
    )
    expect(await run([1, 2, 3, 4, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY], [0, 1, -100])).toBe(
      'logits[2] is −Inf everywhere (every class masked)'
    )
    expect(await run([1, 2, Number.NEGATIVE_INFINITY, 4, 0, 0], [0, 0, 1])).toBe(
      "logits[1] has −Inf at the target's own class"
    )
    expect(await run([1, 2, Number.NEGATIVE_INFINITY, 4, 0, 0], [0, 1, 1])).toBe('valid')
  })
})

describe('logprobs on F16 and BF16 logits (WebAssembly SIMD kernel)', () => {
  it.each([
    ['F16', floatToF16, f16ToFloat],
    ['BF16', floatToBf16, bf16ToFloat]
  ] as const)('%s, against float64 on the rounded logits', async (dtype, encode, decode) => {
    await fc.assert(
      fc.asyncProperty(problemArb(80), async (problem) => {
        const { logits, targets, softcap, temperature, topK } = problem
        const rows = logits.length
        const vocab = logits[0].length
        const words = Uint16Array.from(logits.flat(), encode)
        const rounded = logits.map((row, r) => row.map((_, c) => decode(words[r * vocab + c])))
        const file = safetensorsFile([
          { name: 'logits', dtype, shape: [rows, vocab], data: words },
          ...(targets === null
            ? []
            : [{ name: 'targets', dtype: 'I32' as const, shape: [rows], data: Int32Array.from(targets) }])
        ])
        const memory = openMemory()
        try {
          const bytes = memory.bytes(file.byteLength)
          bytes.set(file)
          const engine = localEngine('wasm')
          const query = {
            top_k: String(topK),
            temperature: String(temperature),
            outputs: 'entropy',
            ...(softcap > 0 ? { softcap: String(softcap) } : {})
          }
          const job = decodeLogprobsSafetensors(bytes, query, memory, engine)
          const result = await computeLogprobs(engine, job)
          const expected = referenceLogprobs(rounded, targets, { ...problem, ignoreIndex: -100 })
          if (targets !== null)
            expectArrayClose(Array.from(result.targetLogprobs ?? []), expected.targetLogprobs, 'target')
          expect(Array.from(result.topIds ?? [])).toEqual(expected.topIds.flat())
          expectArrayClose(finite(Array.from(result.topLogprobs ?? [])), finite(expected.topLogprobs.flat()), 'top_k')
          expectArrayClose(Array.from(result.entropy ?? []), expected.entropy, 'entropy')
        } finally {
          memory.release()
        }
      }),
      { numRuns: 100 }
    )
  })
})
