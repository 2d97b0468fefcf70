import fc from 'fast-check'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { Reduction } from '../../schemas/cross-entropy.js'
import { CROSS_ENTROPY_CALL, writeCall } from '../../src/engine/abi.js'
import type { RequestMemory } from '../../src/engine/request.js'
import { bf16ToFloat, f16ToFloat } from '../../src/kernels/half.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { normalizeOptions } from '../../src/ops/cross-entropy/options.js'
import { admitCrossEntropy, type CrossEntropyJob } from '../../src/ops/cross-entropy/plan.js'
import { expectArrayClose, expectScalarClose, fixtures } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'
import { arena, type KernelKind, localEngine, openMemory, runRange, splitInto } from './local.js'
import { compute, expectFiniteDifferenceGradient, type Problem } from './runners.js'

/** Decodes a JSON request into a fresh request memory, for a test that edits the logits before computing. */
function decode(request: object): { job: CrossEntropyJob; memory: RequestMemory } {
  const memory = openMemory()
  onTestFinished(() => memory.release())
  return { job: decodeCrossEntropyJson(request as never, memory, localEngine('wasm')), memory }
}

/** Frees a decoded request's memory at once (inside a property, which runs many). */
async function withDecoded(request: object, use: (job: CrossEntropyJob) => Promise<void>): Promise<void> {
  const memory = openMemory()
  try {
    await use(decodeCrossEntropyJson(request as never, memory, localEngine('wasm')))
  } finally {
    memory.release()
  }
}

function rowsOf(flat: Float32Array | Float64Array, width: number): number[][] {
  const rows: number[][] = []
  for (let i = 0; i < flat.length; i += width) rows.push(Array.from(flat.subarray(i, i + width)))
  return rows
}

/** Both kernels answer every test below: the plain TypeScript oracle and the WebAssembly SIMD one. */
const KERNELS: Array<[string, KernelKind]> = [
  ['TypeScript reference', 'oracle'],
  ['WebAssembly SIMD', 'wasm']
]

/** Random problems: logits as multiples of 1/16 (exact in float32), some ignored rows, options. */
const problemArb = fc
  .record({ rows: fc.integer({ min: 1, max: 6 }), vocab: fc.integer({ min: 1, max: 12 }) })
  .chain(({ rows, vocab }) =>
    fc.record({
      logits: fc.array(
        fc.array(
          fc.integer({ min: -320, max: 320 }).map((k) => k / 16),
          { minLength: vocab, maxLength: vocab }
        ),
        {
          minLength: rows,
          maxLength: rows
        }
      ),
      targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
        minLength: rows,
        maxLength: rows
      }),
      weight: fc.option(
        fc.array(
          fc.integer({ min: 0, max: 64 }).map((k) => k / 32),
          { minLength: vocab, maxLength: vocab }
        ),
        {
          nil: undefined
        }
      ),
      ignore_index: fc.constant(-100),
      label_smoothing: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 16 }).map((k) => k / 16)
      ),
      reduction: fc.constantFrom<Reduction>('mean', 'sum', 'none')
    })
  )

describe.each(KERNELS)('%s kernel against the PyTorch fixtures', (_kernel, run) => {
  it.each(fixtures.map((fixture) => [fixture.name, fixture] as const))('%s', async (_name, { request, expected }) => {
    const { job } = decode({ ...request, outputs: ['token_losses', 'gradients'] })
    const result = await computeCrossEntropy(localEngine(run), job)
    const { targetsShape } = job.shape
    const rows = rowsOf(result.tokenLoss, targetsShape.at(-1) as number)
    expectArrayClose(targetsShape.length === 1 ? rows[0] : rows, expected.token_losses, 'token_losses')
    if (!Array.isArray(expected.loss))
      expectScalarClose(Number.isNaN(result.loss) ? null : result.loss, expected.loss, 'loss')
    expectScalarClose(Number.isFinite(result.perplexity) ? result.perplexity : null, expected.perplexity, 'perplexity')
    expect(result.count).toBe(expected.count)
    const flatGradients = (expected.gradients as unknown[]).flat(2) as number[]
    expectArrayClose(Array.from(result.gradients as Float32Array), flatGradients, 'gradients')
  })
})

describe.each(KERNELS)('%s kernel properties', (_kernel, run) => {
  it('agrees with the plain reference transcription of PyTorch', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const result = await compute(problem, run)
        const reference = referenceCrossEntropy({
          ...problem,
          ignoreIndex: problem.ignore_index,
          labelSmoothing: problem.label_smoothing
        })
        expectArrayClose(Array.from(result.tokenLoss), reference.tokenLoss, 'tokenLoss')
        if (problem.reduction !== 'none') {
          const loss = reference.loss as number
          if (Number.isNaN(loss)) expect(result.loss).toBeNaN()
          else expectScalarClose(result.loss, loss, 'loss')
        }
        if (Number.isNaN(reference.perplexity)) expect(result.perplexity).toBeNaN()
        else expectScalarClose(result.perplexity, reference.perplexity, 'perplexity')
      }),
      { numRuns: 300 }
    )
  })

  it('gives the gradient of the reference loss (central finite differences)', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const result = await compute(problem, run)
        const options = { ...problem, ignoreIndex: problem.ignore_index, labelSmoothing: problem.label_smoothing }
        // For none, PyTorch's gradient is that of the sum.
        const scalarLoss = (logits: number[][]) => {
          const { loss } = referenceCrossEntropy({ ...options, logits })
          return Array.isArray(loss) ? loss.reduce((a, b) => a + b, 0) : loss
        }
        if (Number.isNaN(scalarLoss(problem.logits))) return // mean over zero weight: answered with zeros, checked below
        expectFiniteDifferenceGradient(problem.logits, scalarLoss, result.gradients as Float32Array)
      }),
      { numRuns: 150 }
    )
  })

  it('answers zeros, not NaN, for the gradient of a mean over zero total weight', async () => {
    const result = await compute(
      {
        logits: [
          [1, 2],
          [3, 4]
        ],
        targets: [0, -100],
        weight: [0, 1],
        ignore_index: -100,
        label_smoothing: 0.5,
        reduction: 'mean'
      },
      run
    )
    expect(result.loss).toBeNaN()
    expect(Array.from(result.gradients as Float32Array)).toEqual([0, 0, 0, 0])
  })

  it('is unchanged when a constant is added to a row', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, fc.integer({ min: -1000, max: 1000 }), fc.nat(), async (problem, shift, pick) => {
        const row = pick % problem.logits.length
        const shifted = {
          ...problem,
          logits: problem.logits.map((xs, r) => (r === row ? xs.map((x) => x + shift) : xs))
        }
        const [before, after] = await Promise.all([compute(problem, run), compute(shifted, run)])
        const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a))
        for (let i = 0; i < before.tokenLoss.length; i++)
          expect(close(before.tokenLoss[i], after.tokenLoss[i])).toBe(true)
        const g0 = before.gradients as Float32Array
        const g1 = after.gradients as Float32Array
        // The float64 results differ in their last bits, which can move a float32 by one ulp.
        for (let i = 0; i < g0.length; i++) {
          expect(Math.abs(g0[i] - g1[i])).toBeLessThanOrEqual(2 ** -23 * Math.abs(g0[i]) + 1e-12)
        }
      }),
      { numRuns: 200 }
    )
  })

  it('has gradient rows that sum to ~0 and token losses ≥ 0', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const result = await compute(problem, run)
        const vocab = problem.logits[0].length
        const weightOf = (c: number) => problem.weight?.[c] ?? 1
        const maxWeight = problem.weight === undefined ? 1 : Math.max(...problem.weight)
        const targetWeight = problem.targets.reduce((sum, y) => (y === -100 ? sum : sum + weightOf(y)), 0)
        const scale = problem.reduction === 'mean' ? (targetWeight > 0 ? 1 / targetWeight : 0) : 1
        for (const row of rowsOf(result.gradients as Float32Array, vocab)) {
          // Exactly 0 in real numbers. In float32, each entry is p·probScale − soft·w rounded a
          // few times, so the row sum is off by a few ulps of those terms: at most
          // 4·2^-24·(Σ|g| + 2·probScale), where probScale ≤ scale·max(w) (scale = 1/Σw_y for mean).
          const magnitude = row.reduce((a, b) => a + Math.abs(b), 0)
          const bound = 4 * 2 ** -24 * (magnitude + 2 * scale * maxWeight) + 1e-12
          expect(Math.abs(row.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(bound)
        }
        for (const loss of result.tokenLoss) expect(loss).toBeGreaterThanOrEqual(0)
        if (problem.reduction !== 'none' && !Number.isNaN(result.loss)) expect(result.loss).toBeGreaterThanOrEqual(0)
      }),
      { numRuns: 200 }
    )
  })

  it('gives exactly log V for uniform logits, with or without smoothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50_000 }),
        fc.integer({ min: -100, max: 100 }),
        fc.constantFrom(0, 0.1, 1),
        async (vocab, level, smoothing) => {
          const result = await compute(
            {
              logits: [new Array(vocab).fill(level)],
              targets: [vocab - 1],
              ignore_index: -100,
              label_smoothing: smoothing,
              reduction: 'mean'
            },
            run
          )
          expect(Math.abs(result.loss - Math.log(vocab))).toBeLessThan(1e-12 * Math.max(1, Math.log(vocab)))
          expect(Math.abs(result.perplexity - vocab)).toBeLessThan(1e-9 * vocab)
        }
      ),
      { numRuns: 60 }
    )
  })

  it('stays finite for logits of ±1e4', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const huge = { ...problem, logits: problem.logits.map((row) => row.map((x) => (x >= 0 ? 1e4 : -1e4) + x)) }
        const result = await compute(huge, run)
        for (const loss of result.tokenLoss) expect(Number.isFinite(loss)).toBe(true)
        for (const g of result.gradients as Float32Array) expect(Number.isFinite(g)).toBe(true)
        const reference = referenceCrossEntropy({ ...huge, ignoreIndex: -100, labelSmoothing: huge.label_smoothing })
        expectArrayClose(Array.from(result.tokenLoss), reference.tokenLoss, 'tokenLoss')
      }),
      { numRuns: 200 }
    )
  })

  it('gives the same bits however the rows are split into tasks', async () => {
    // Small batches stay in one task, so the split is made here: `parts` ranges, each writing its
    // rows into the same outputs.
    await fc.assert(
      fc.asyncProperty(problemArb, fc.integer({ min: 2, max: 8 }), async (problem, parts) => {
        const whole = await compute(problem, run)
        const split = await compute(problem, run, localEngine(run, 1, splitInto(parts)))
        expect(Object.is(split.loss, whole.loss)).toBe(true)
        expect(Array.from(split.tokenLoss)).toEqual(Array.from(whole.tokenLoss))
        expect(Array.from(split.gradients)).toEqual(Array.from(whole.gradients))
      }),
      { numRuns: 100 }
    )
  })
})

describe('WebAssembly SIMD kernel against the TypeScript reference', () => {
  it('agrees on random problems within the fixture tolerances', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (problem) => {
        const [simd, plain] = await Promise.all([compute(problem, 'wasm'), compute(problem, 'oracle')])
        expectArrayClose(Array.from(simd.tokenLoss), Array.from(plain.tokenLoss), 'tokenLoss')
        expectArrayClose(Array.from(simd.gradients), Array.from(plain.gradients), 'gradients')
        if (Number.isNaN(plain.loss)) expect(simd.loss).toBeNaN()
        else expectScalarClose(simd.loss, plain.loss, 'loss')
      }),
      { numRuns: 300 }
    )
  })

  it('agrees on wide rows (vocabularies of thousands, with SIMD tails)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1000, max: 5000 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        async (vocab, seed) => {
          let state = seed
          const random = () => {
            state = (state * 1103515245 + 12345) % 2147483648
            return state / 2147483648
          }
          const problem: Problem = {
            logits: Array.from({ length: 3 }, () => Array.from({ length: vocab }, () => random() * 40 - 20)),
            targets: [0, vocab - 1, Math.floor(random() * vocab)],
            ignore_index: -100,
            label_smoothing: 0.1,
            reduction: 'mean'
          }
          const [simd, plain] = await Promise.all([compute(problem, 'wasm'), compute(problem, 'oracle')])
          expectArrayClose(Array.from(simd.tokenLoss), Array.from(plain.tokenLoss), 'tokenLoss')
          expectArrayClose(Array.from(simd.gradients), Array.from(plain.gradients), 'gradients')
        }
      ),
      { numRuns: 20 }
    )
  })
})

describe('WebAssembly SIMD kernel refuses logits it cannot take, naming the place', () => {
  const badValue = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY)

  it('finds a NaN or +Inf at any position, in counted and padding rows alike', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, fc.nat(), fc.nat(), badValue, async (problem, pickRow, pickColumn, bad) => {
        const vocab = problem.logits[0].length
        const row = pickRow % problem.logits.length
        const column = pickColumn % vocab
        await withDecoded({ ...problem, outputs: ['gradients'] }, async (job) => {
          ;(job.logits as Float32Array)[row * vocab + column] = bad
          await expect(computeCrossEntropy(localEngine('wasm'), job)).rejects.toMatchObject({
            code: 'XENT_NON_FINITE',
            message: `logits[${row}][${column}] is ${bad}; logits must be finite or −Inf (masked)`
          })
        })
      }),
      { numRuns: 200 }
    )
  })

  it('allows −Inf except everywhere in a counted row or at its target', async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, fc.nat(), async (problem, pickRow) => {
        const vocab = problem.logits[0].length
        const row = pickRow % problem.logits.length
        await withDecoded({ ...problem, label_smoothing: 0, outputs: ['gradients'] }, async (job) => {
          const logits = job.logits as Float32Array
          logits.fill(Number.NEGATIVE_INFINITY, row * vocab, (row + 1) * vocab)
          const run = computeCrossEntropy(localEngine('wasm'), job)
          if (problem.targets[row] === -100) await expect(run).resolves.toBeDefined()
          else
            await expect(run).rejects.toMatchObject({
              code: 'XENT_NON_FINITE',
              message: `logits[${row}] is −Inf everywhere (every class masked)`
            })
        })
      }),
      { numRuns: 200 }
    )
  })
})

describe('WebAssembly SIMD kernel names the first row it cannot take, on rows wide enough for its vector loops', () => {
  // Rows of up to 70 logits run the 16-wide loops, where a row's max is found while the row
  // before it is summed and a NaN shows only in the row's own sum.
  const cell = fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: -160, max: 160 }).map((k) => k / 16) },
    { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY) }
  )
  const wideArb = fc
    .record({ rows: fc.integer({ min: 1, max: 5 }), vocab: fc.integer({ min: 1, max: 70 }) })
    .chain(({ rows, vocab }) =>
      fc.record({
        logits: fc.array(
          fc.oneof(
            { weight: 6, arbitrary: fc.array(cell, { minLength: vocab, maxLength: vocab }) },
            { weight: 1, arbitrary: fc.constant(Array<number>(vocab).fill(Number.NEGATIVE_INFINITY)) },
            {
              weight: 1,
              arbitrary: fc
                .nat(vocab - 1)
                .map((c) => Array.from({ length: vocab }, (_, k) => (k === c ? Number.NaN : Number.NEGATIVE_INFINITY)))
            }
          ),
          { minLength: rows, maxLength: rows }
        ),
        targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
          minLength: rows,
          maxLength: rows
        }),
        gradients: fc.boolean()
      })
    )

  /** What the first refused row should say, worked out here from the rules, or null. */
  function firstRefusal(logits: number[][], targets: number[]): string | null {
    for (const [row, values] of logits.entries()) {
      const column = values.findIndex((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)
      if (column >= 0) return `logits[${row}][${column}] is ${values[column]}; logits must be finite or −Inf (masked)`
      if (targets[row] === -100) continue
      if (values.every((x) => x === Number.NEGATIVE_INFINITY)) {
        return `logits[${row}] is −Inf everywhere (every class masked)`
      }
      if (values[targets[row]] === Number.NEGATIVE_INFINITY) return `logits[${row}] has −Inf at the target's own class`
    }
    return null
  }

  it('agrees with the rules on random mixes of NaN, +Inf and −Inf', async () => {
    await fc.assert(
      fc.asyncProperty(wideArb, async ({ logits, targets, gradients }) => {
        const finite = logits.map((row) => row.map(() => 0))
        await withDecoded(
          { logits: finite, targets, outputs: gradients ? ['gradients'] : ['token_losses'] },
          async (job) => {
            ;(job.logits as Float32Array).set(logits.flat())
            const expected = firstRefusal(logits, targets)
            const run = computeCrossEntropy(localEngine('wasm'), job)
            if (expected === null) await expect(run).resolves.toBeDefined()
            else await expect(run).rejects.toMatchObject({ code: 'XENT_NON_FINITE', message: expected })
          }
        )
      }),
      { numRuns: 400 }
    )
  })
})

describe('WebAssembly SIMD kernel decodes every finite F16 and BF16 value', () => {
  // One row per finite 16-bit pattern, [x, 0] with target 1: the loss is log(1 + e^x), computed
  // here in float64 from this file's own decoding, so a wrong exponent, sign or subnormal shows.
  it.each([
    ['F16', f16ToFloat],
    ['BF16', bf16ToFloat]
  ] as const)('%s', async (dtype, decode) => {
    const words = Array.from({ length: 65536 }, (_, w) => w).filter((w) => Number.isFinite(decode(w)))
    const memory = openMemory()
    try {
      const bytes = memory.bytes(words.length * 4)
      const logits = new Uint16Array(arena.buffer, bytes.byteOffset, words.length * 2)
      words.forEach((w, i) => {
        logits[2 * i] = w
        logits[2 * i + 1] = 0
      })
      const engine = localEngine('wasm')
      const shape = { rows: words.length, vocab: 2, logitsShape: [words.length, 2], targetsShape: [words.length] }
      const options = normalizeOptions({ reduction: 'none' })
      const views = admitCrossEntropy(engine, memory, shape, options, {
        format: 'safetensors',
        softTargets: false,
        weight: false
      })
      views.targets.fill(1)
      const job = {
        memory,
        shape,
        options,
        logits,
        dtype,
        targets: views.targets,
        softTargets: null,
        weight: null,
        views
      }
      const result = await computeCrossEntropy(engine, job)
      words.forEach((w, i) => {
        const x = decode(w)
        const expected = Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)))
        const actual = result.tokenLoss[i]
        if (!(Math.abs(actual - expected) <= 1e-6 + 1e-6 * Math.abs(expected))) {
          throw new Error(`${dtype} word 0x${w.toString(16)} (${x}): loss ${actual}, expected ${expected}`)
        }
      })
    } finally {
      memory.release()
    }
  })
})

describe('WebAssembly SIMD kernel across calls', () => {
  it('leaves no work behind when a call stops at an invalid row', async () => {
    const memory = openMemory()
    try {
      const vocab = 4
      const call = (logits: Float32Array, targets: Int32Array, gradients: Float32Array) => {
        const views = memory.allocate({
          tokenLoss: { type: 'f64', length: targets.length },
          nll: { type: 'f64', length: targets.length },
          call: { type: 'u8', length: CROSS_ENTROPY_CALL.bytes }
        } as const)
        writeCall(arena.buffer, views.call.byteOffset, CROSS_ENTROPY_CALL, {
          logits: logits.byteOffset,
          dtype: 0,
          targets: targets.byteOffset,
          vocab,
          ignoreIndex: -100,
          weight: 0,
          tokenLoss: views.tokenLoss.byteOffset,
          nll: views.nll.byteOffset,
          gradients: gradients.byteOffset,
          stats: 0,
          softTargets: 0,
          labelSmoothing: 0,
          classWeightSum: vocab,
          gradScale: 1,
          zGrad: 0,
          softcap: 0
        })
        return runRange('wasm', 'hardTargetRows', views.call.byteOffset, 0, targets.length)
      }
      const { first, second } = memory.allocate({
        first: { type: 'f32', length: 8 },
        second: { type: 'f32', length: 4 }
      } as const)
      // Row 0 is valid, and its gradient waits for its last pass when row 1 turns out to hold NaN.
      first.set([1, 2, 3, 4, 1, Number.NaN, 3, 4])
      const { firstTargets, firstGradients, secondTargets, secondGradients } = memory.allocate({
        firstTargets: { type: 'i32', length: 2 },
        firstGradients: { type: 'f32', length: 8 },
        secondTargets: { type: 'i32', length: 1 },
        secondGradients: { type: 'f32', length: 4 }
      } as const)
      firstTargets.set([0, 1])
      expect(call(first, firstTargets, firstGradients)).toBe(1)
      const left = firstGradients.slice()

      second.set([4, 3, 2, 1])
      secondTargets.set([2])
      expect(call(second, secondTargets, secondGradients)).toBe(-1)

      // The first call's memory is untouched by the second, which is right on its own.
      expect(Array.from(firstGradients)).toEqual(Array.from(left))
      const p = [4, 3, 2, 1].map((x) => Math.exp(x) / (Math.exp(4) + Math.exp(3) + Math.exp(2) + Math.exp(1)))
      expectArrayClose(
        Array.from(secondGradients),
        p.map((pc, c) => pc - (c === 2 ? 1 : 0)),
        'gradients'
      )
    } finally {
      memory.release()
    }
  })
})
