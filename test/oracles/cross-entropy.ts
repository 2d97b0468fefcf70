/**
 * The fused cross-entropy core in plain TypeScript: log-softmax, the gather of the target's
 * log-probability and, when asked, the gradient, row by row over a flattened (rows, vocab) batch.
 *
 * It is the obviously correct oracle beside the WebAssembly kernel family (src/kernels/assembly/),
 * which the service runs: the tests hold both to the PyTorch fixtures and to each other. It is a
 * test's, and never ships.
 *
 * Formulas follow PyTorch's `F.cross_entropy` (aten/src/ATen/native/LossNLL.cpp). For a row with
 * target y, log-sum-exp `lse`, class weights w (all 1 without `weight`), W_all = Σ_c w_c, smoothing ε:
 *   nll        = lse − x_y                                   (plain −log p[y], used for perplexity)
 *   token loss = (1 − ε)·w_y·nll + ε/V · Σ_c w_c·(lse − x_c)
 *   d/dx_c     = scale · [ (1 − ε)·w_y·(p_c − [c = y]) + ε/V · (W_all·p_c − w_c) ]
 * where scale is 1/Σ_i w_{y_i} for `mean`, 1 for `sum` and `none` (the gradient of the sum).
 */

import { ROW_STATS, STAT_ARGMAX, STAT_ENTROPY, STAT_LOG_SUM_EXP } from '../../src/engine/abi.js'
import { bf16ToFloat, f16ToFloat } from '../../src/kernels/half.js'

export interface CrossEntropyParams {
  /** Number of classes V: the length of every row. */
  vocab: number
  /** Targets equal to this are skipped: zero loss, zero gradient. */
  ignoreIndex: number
  /** ε in [0, 1]. */
  labelSmoothing: number
  /** Per-class weights of length V, or null for all ones. */
  weight: Float32Array | null
  /** Σ_c w_c (V without weights); the smoothing term's total class weight. */
  classWeightSum: number
  /** Multiplies every gradient entry; see the module comment. */
  gradScale: number
  /** The z-loss's gradient factor (2·z, ÷ count under mean), 0 without z-loss; see KernelRows. */
  zGrad?: number
  /** c > 0: every logit becomes c·tanh(x/c) first (Gemma 2), and the gradient flows through it. */
  softcap?: number
  /** 0 for F32 (the default), 1 for F16, 2 for BF16 words in a Uint16Array. */
  logitsDtype?: number
  /**
   * (rows × vocab) class probabilities instead of class indices (PyTorch's probability targets):
   * every row counts, `targets` is not read.
   */
  softTargets?: Float32Array | null
}

export interface CrossEntropyOutputs {
  /** Per-row PyTorch `reduction="none"` loss (weights and smoothing included), 0 where ignored. */
  tokenLoss: Float64Array
  /** Per-row plain −log p[target], 0 where ignored. */
  nll: Float64Array
  /** (rows × vocab) gradient, written in place, or null when it was not asked for. */
  gradients: Float32Array | null
  /**
   * Per row, ROW_STATS float64s (see ./stats.ts): entropy and log-sum-exp (0 where ignored) and
   * the first index of the max; or null when no analytics output was asked for.
   */
  stats?: Float64Array | null
}

/** What crossEntropyRows returns when every row was valid; otherwise the first invalid row. */
export const PLAIN_ROWS_VALID = -1

/**
 * Runs rows [rowStart, rowEnd) of the batch. Targets must already be validated: each is either
 * `ignoreIndex` or in [0, vocab). Returns PLAIN_ROWS_VALID, or the first row holding NaN or +Inf,
 * or (counted) −Inf everywhere or at its target, as the WebAssembly kernel refuses them.
 */
export function crossEntropyRows(
  logits: Float32Array | Uint16Array,
  targets: Int32Array,
  params: CrossEntropyParams,
  rowStart: number,
  rowEnd: number,
  out: CrossEntropyOutputs
): number {
  const { vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale } = params
  const { tokenLoss, nll, gradients } = out
  const stats = out.stats ?? null
  const smoothingPerClass = labelSmoothing / vocab
  const softcap = params.softcap ?? 0
  const decode = params.logitsDtype === 1 ? f16ToFloat : params.logitsDtype === 2 ? bf16ToFloat : null
  // One row at a time, decoded and soft-capped, in float64.
  const x = new Float64Array(vocab)

  for (let row = rowStart; row < rowEnd; row++) {
    const base = row * vocab
    const softTargets = params.softTargets ?? null
    const target = softTargets === null ? targets[row] : 0
    // The first index of the max: torch.argmax's choice on ties (all −Inf gives 0).
    let max = -Infinity
    let argmax = 0
    for (let c = 0; c < vocab; c++) {
      const raw = decode === null ? logits[base + c] : decode(logits[base + c])
      if (Number.isNaN(raw) || raw === Number.POSITIVE_INFINITY) return row
      // A masked (−Inf) logit stays masked: tanh would bring it back as −c.
      x[c] = softcap > 0 && raw !== Number.NEGATIVE_INFINITY ? softcap * Math.tanh(raw / softcap) : raw
      if (x[c] > max) {
        max = x[c]
        argmax = c
      }
    }
    if (softTargets === null && target === ignoreIndex) {
      tokenLoss[row] = 0
      nll[row] = 0
      if (gradients !== null) gradients.fill(0, base, base + vocab)
      if (stats !== null) stats.set([0, 0, argmax], row * ROW_STATS)
      continue
    }
    if (max === Number.NEGATIVE_INFINITY) return row
    if (softTargets === null && x[target] === Number.NEGATIVE_INFINITY) return row

    // Subtracting the row max keeps every exponent ≤ 0, so exp never overflows; the sum is in
    // float64 (JS numbers), and at least one term is exactly 1, so the log is finite.
    let sumExp = 0
    let shiftedSum = 0 // Σ e·(x − max), for the entropy; a masked (−Inf) logit adds 0, not 0·−Inf
    for (let c = 0; c < vocab; c++) {
      const shifted = x[c] - max
      const e = Math.exp(shifted)
      sumExp += e
      if (e > 0) shiftedSum += e * shifted
    }
    // Every log-probability is formed as (x − max) − log Σ, never x − (max + log Σ): beside a
    // large max (1e20, say), max + log Σ has already lost log Σ.
    const logSum = Math.log(sumExp)
    const logSumExp = max + logSum
    if (stats !== null) {
      stats[row * ROW_STATS + STAT_ENTROPY] = logSum - shiftedSum / sumExp
      stats[row * ROW_STATS + STAT_LOG_SUM_EXP] = logSumExp
      stats[row * ROW_STATS + STAT_ARGMAX] = argmax
    }

    if (softTargets !== null) {
      softTargetRow(x, max, logSum, softTargets, base, params, gradients, tokenLoss, nll, row)
      continue
    }
    const rowNll = logSum - (x[target] - max)
    const targetWeight = weight === null ? 1 : weight[target]
    let loss = (1 - labelSmoothing) * targetWeight * rowNll
    if (labelSmoothing > 0) {
      // Σ_c w_c·(lse − x_c) = W_all·log Σ − Σ_c w_c·(x_c − max)
      let weightedShifted = 0
      for (let c = 0; c < vocab; c++) weightedShifted += (weight === null ? 1 : weight[c]) * (x[c] - max)
      loss += smoothingPerClass * (classWeightSum * logSum - weightedShifted)
    }
    tokenLoss[row] = loss
    nll[row] = rowNll

    if (gradients !== null) {
      const hardScale = gradScale * (1 - labelSmoothing) * targetWeight
      const softScale = gradScale * smoothingPerClass
      // z-loss (z·lse² a counted row; its loss is added by the caller) adds zGrad·lse·p_c.
      const probScale = hardScale + softScale * classWeightSum + (params.zGrad ?? 0) * logSumExp
      // Through the softcap: d(c·tanh(x/c))/dx = 1 − tanh²(x/c) = 1 − (capped/c)².
      // A masked logit is a constant: its slope is 0 (not 0·−Inf).
      const through = (c: number) =>
        softcap > 0 ? (x[c] === Number.NEGATIVE_INFINITY ? 0 : 1 - (x[c] / softcap) ** 2) : 1
      for (let c = 0; c < vocab; c++) {
        const p = Math.exp(x[c] - max - logSum)
        const w = weight === null ? 1 : weight[c]
        gradients[base + c] = (probScale * p - softScale * w) * through(c)
      }
      // The target's entry again, with −hardScale applied in float64 before the one rounding to
      // float32: subtracting from the stored float32 would round twice, and where p[target] ≈ 1
      // the first rounding error would dwarf the small result.
      const targetWeightedSoft = softScale * (weight === null ? 1 : weight[target])
      gradients[base + target] =
        (probScale * Math.exp(x[target] - max - logSum) - targetWeightedSoft - hardScale) * through(target)
    }
  }
  return PLAIN_ROWS_VALID
}

/**
 * One row against class probabilities q, as PyTorch: q' = (1 − ε)·q + ε/V, loss = Σ_c w_c·q'_c·
 * (lse − x_c), and d/dx_c = scale·(p_c·Σ_j w_j·q'_j − w_c·q'_c), through the softcap if any. The
 * plain NLL (for perplexity) is Σ_c q_c·(lse − x_c), unweighted and unsmoothed. A class with
 * q'_c = 0 adds nothing, even where its logit is masked.
 */
function softTargetRow(
  x: Float64Array,
  max: number,
  logSum: number,
  softTargets: Float32Array,
  base: number,
  params: CrossEntropyParams,
  gradients: Float32Array | null,
  tokenLoss: Float64Array,
  nll: Float64Array,
  row: number
): void {
  const { vocab, labelSmoothing, weight, gradScale } = params
  const softcap = params.softcap ?? 0
  let loss = 0
  let plain = 0
  let weightedMass = 0 // Σ_j w_j·q'_j
  for (let c = 0; c < vocab; c++) {
    const q = softTargets[base + c]
    const smoothed = (1 - labelSmoothing) * q + labelSmoothing / vocab
    const w = weight === null ? 1 : weight[c]
    if (smoothed > 0) loss += w * smoothed * (logSum - (x[c] - max))
    if (q > 0) plain += q * (logSum - (x[c] - max))
    weightedMass += w * smoothed
  }
  tokenLoss[row] = loss
  nll[row] = plain
  if (gradients === null) return
  const probScale = gradScale * weightedMass + (params.zGrad ?? 0) * (max + logSum)
  for (let c = 0; c < vocab; c++) {
    const smoothed = (1 - labelSmoothing) * softTargets[base + c] + labelSmoothing / vocab
    const w = weight === null ? 1 : weight[c]
    const through = softcap > 0 ? (x[c] === Number.NEGATIVE_INFINITY ? 0 : 1 - (x[c] / softcap) ** 2) : 1
    gradients[base + c] = (probScale * Math.exp(x[c] - max - logSum) - gradScale * w * smoothed) * through
  }
}
