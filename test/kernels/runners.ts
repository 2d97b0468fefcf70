import type { Reduction } from '../../schemas/cross-entropy.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { expectArrayClose, expectScalarClose } from '../helper.js'
import { type KernelKind, type LocalEngine, localEngine, openMemory } from './local.js'

export interface Problem {
  logits: number[][]
  targets: number[]
  weight?: number[]
  ignore_index: number
  label_smoothing: number
  reduction: Reduction
}

export interface Computed {
  loss: number
  perplexity: number
  count: number
  tokenLoss: Float64Array
  gradients: Float32Array
}

/**
 * Decodes a problem into the test arena, runs it with `kind`'s kernel (or `engine`), copies the
 * results out, frees. Without gradients among `outputs`, `gradients` comes back empty.
 */
export async function compute(
  problem: Problem,
  kind: KernelKind,
  engine: LocalEngine = localEngine(kind),
  outputs: string[] = ['token_losses', 'gradients']
): Promise<Computed> {
  const memory = openMemory()
  try {
    const job = decodeCrossEntropyJson({ ...problem, outputs } as never, memory, engine)
    const result = await computeCrossEntropy(engine, job)
    return {
      loss: result.loss,
      perplexity: result.perplexity,
      count: result.count,
      tokenLoss: result.tokenLoss.slice(),
      gradients: result.gradients?.slice() ?? new Float32Array(0)
    }
  } finally {
    memory.release()
  }
}

/**
 * The kernel's gradient against central finite differences (h = 1e-4) of `scalarLoss`, a float64
 * reference loss, at every logit: |analytic − numeric| < 1e-5 + 1e-4·|numeric|.
 */
export function expectFiniteDifferenceGradient(
  logits: number[][],
  scalarLoss: (logits: number[][]) => number,
  gradients: Float32Array
): void {
  const h = 1e-4
  const vocab = logits[0].length
  for (let r = 0; r < logits.length; r++) {
    for (let c = 0; c < vocab; c++) {
      const plus = logits.map((row) => row.slice())
      const minus = logits.map((row) => row.slice())
      plus[r][c] += h
      minus[r][c] -= h
      const numeric = (scalarLoss(plus) - scalarLoss(minus)) / (2 * h)
      const analytic = gradients[r * vocab + c]
      if (!(Math.abs(analytic - numeric) < 1e-5 + 1e-4 * Math.abs(numeric))) {
        throw new Error(`gradient[${r}][${c}] is ${analytic}; finite differences give ${numeric}`)
      }
    }
  }
}

/** A reference loss as one number: the sum for reduction none (PyTorch's gradient is that of the sum). */
export function scalarLossOf(loss: number | number[]): number {
  return Array.isArray(loss) ? loss.reduce((a, b) => a + b, 0) : loss
}

/** The kernel's token losses and (unless none) its loss against a float64 reference, NaN as null. */
export function expectLossesMatch(
  result: Computed,
  expected: { loss: number | number[]; tokenLoss: number[] },
  reduction: Reduction
): void {
  expectArrayClose(Array.from(result.tokenLoss), expected.tokenLoss, 'token losses')
  if (reduction === 'none') return
  const loss = expected.loss as number
  expectScalarClose(Number.isNaN(result.loss) ? null : result.loss, Number.isNaN(loss) ? null : loss, 'loss')
}
