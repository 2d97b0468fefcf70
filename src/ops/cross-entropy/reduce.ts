import type { Reduction } from '../../../schemas/cross-entropy.js'

export interface TargetSummary {
  /** Targets not equal to `ignoreIndex`. */
  count: number
  /** Σ w[target] over counted targets (equal to `count` without weights): the `mean` divisor. */
  targetWeightSum: number
}

/** Counts the targets that take part and sums their class weights. */
export function summarizeTargets(targets: Int32Array, ignoreIndex: number, weight: Float32Array | null): TargetSummary {
  let count = 0
  let targetWeightSum = 0
  for (let i = 0; i < targets.length; i++) {
    const target = targets[i]
    if (target === ignoreIndex) continue
    count++
    targetWeightSum += weight === null ? 1 : weight[target]
  }
  return { count, targetWeightSum }
}

/** Σ_c w_c, or V without weights. */
export function classWeightSum(weight: Float32Array | null, vocab: number): number {
  if (weight === null) return vocab
  let sum = 0
  for (let c = 0; c < weight.length; c++) sum += weight[c]
  return sum
}

/**
 * The gradient's scale for a reduction: the mean divides by the total target weight; `sum` and
 * `none` (whose gradient is that of the sum) use 1. A mean over zero total weight has no
 * gradient in PyTorch (0/0 = NaN); xent answers zeros there, because nothing counts.
 */
export function gradientScale(reduction: Reduction, summary: TargetSummary): number {
  if (reduction !== 'mean') return 1
  return summary.targetWeightSum > 0 ? 1 / summary.targetWeightSum : 0
}

export interface ReducedLoss {
  /** The scalar loss for `mean` and `sum`; NaN for a mean over zero total weight, as in PyTorch. */
  loss: number
  /** exp(Σ nll / count); NaN when count is 0, Infinity when it overflows. */
  perplexity: number
}

/**
 * Sums the per-row results in row order on one thread, so the answer is bit-for-bit the same
 * however the rows were split across workers.
 */
export function reduceRows(
  tokenLoss: Float64Array,
  nll: Float64Array,
  reduction: Reduction,
  summary: TargetSummary
): ReducedLoss {
  let lossSum = 0
  let nllSum = 0
  for (let row = 0; row < tokenLoss.length; row++) {
    lossSum += tokenLoss[row]
    nllSum += nll[row]
  }
  // Deliberate NaN for a mean over zero total weight: PyTorch divides the NLL part by that weight
  // (0/0), so its answer is NaN even when the smoothing part alone would be +Inf. The JSON codec
  // turns NaN into null.
  let loss = lossSum
  if (reduction === 'mean') loss = summary.targetWeightSum > 0 ? lossSum / summary.targetWeightSum : Number.NaN
  const perplexity = summary.count === 0 ? Number.NaN : Math.exp(nllSum / summary.count)
  return { loss, perplexity }
}
