// Cross-entropy with class-index targets: the fused kernel. Per row (V logits x, target y,
// log Σ = log Σ exp(x − max), weights w, smoothing ε, W_all = Σ w):
//   pass 1  max over the row (found while the previous row was summed; see rowSumExp)
//   pass 2  e_c = exp(x_c − max), summed in float64; with gradients, e_c is stored in place
//   pass 3  (gradients only) g_c = e_c·probScale/Σe − softScale·w_c, then the target's entry
//           again in float64: probScale·p_y − softScale·w_y − hardScale
// The loss is log Σ − (x_y − max), formed on the shifted logits, so that next to a large max
// nothing is lost. With a softcap, every logit is c·tanh(x/c) first (softcapRowsOf, below).
// Logits are F32, F16 or BF16 (decoded in registers, never copied); targets, weights and
// gradients are I32, F32 and F32. It mirrors the plain transcription the tests hold it to
// (test/oracles/).

import {
  ALL_ROWS_VALID,
  CE_CLASS_WEIGHT_SUM,
  CE_DTYPE,
  CE_GRAD_SCALE,
  CE_GRADIENTS,
  CE_IGNORE_INDEX,
  CE_LABEL_SMOOTHING,
  CE_LOGITS,
  CE_NLL,
  CE_SOFTCAP,
  CE_STATS,
  CE_TARGETS,
  CE_TOKEN_LOSS,
  CE_VOCAB,
  CE_WEIGHT,
  CE_Z_GRAD,
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_F32,
  ROW_STATS,
  ROWS_CANCELLED,
  STAT_ARGMAX,
  STAT_ENTROPY,
  STAT_LOG_SUM_EXP,
  TASK_CANCELLED
} from './abi'
import {
  EXP_UNDERFLOW,
  expNonPositive,
  firstIndexOf,
  horizontalMax,
  horizontalMin,
  load1,
  load4,
  load4Scalar,
  promoteAndAdd,
  rowMax,
  rowMinimum,
  shiftedTerm,
  shiftedWeightedSum,
  aheadMax,
  aheadMin,
  cappedArgmax,
  setAhead,
  softcap4,
  softcapIsNear,
  softcapNear4,
  softcapOf,
  softcapSlope4
} from './simd'

// Byte offsets of a row's stats.
const STATS_BYTES: usize = <usize>ROW_STATS * 8
const ENTROPY_AT: usize = <usize>STAT_ENTROPY * 8
const LOG_SUM_EXP_AT: usize = <usize>STAT_LOG_SUM_EXP * 8
const ARGMAX_AT: usize = <usize>STAT_ARGMAX * 8

// The next row's max, found by rowSumExp while it works on this row (see there). Wasm globals
// belong to the instance, not to the shared memory, so each worker has its own.
let lookaheadMax: f32 = 0
let lookaheadMin: f32 = 0

// Σ e·(x − max) of the row rowSumExp last summed with `entropy` set: H = log Σe − Σ e·(x − max)/Σe.
let lastShiftedSum: f64 = 0

// The previous row's gradient, waiting for its last pass (g = e·k − soft): it is done inside the
// next row's exp loop, while that row's exps keep the arithmetic units busy, instead of in a loop
// of its own. Unweighted rows only; 0 when nothing waits.
let pendingRow: usize = 0
let pendingK: f32 = 0
let pendingSoft: f32 = 0
let pendingTarget: usize = 0
let pendingTargetValue: f32 = 0

/**
 * Σ exp(x − max) over a row in float64. Four f32x4 exps are added pairwise in float32 (16 terms,
 * each ≤ 1) and the result promoted into two float64x2 accumulators. Each exp is written to `out`
 * (the gradient row) for pass 3 when `keep` is set.
 *
 * With `lookahead`, the same loop also reads the next row (`next`) and finds its max, leaving it
 * in lookaheadMax/lookaheadMin. This row is already in cache from its own max pass; the next one
 * usually is not, and this way its trip from main memory overlaps the exps, which are the
 * expensive part, instead of being a pass of its own. It does not look for NaN (pmax passes over
 * it): a NaN makes that row's own sum NaN, which is checked there, for fewer instructions here.
 */
// @ts-ignore: decorator
@inline
function rowSumExp (row: usize, vocab: i32, dtype: i32, max: f32, out: usize, keep: bool, next: usize, lookahead: bool, pending: bool, clamp: bool, entropy: bool): f64 {
  const shift = f32x4.splat(max)
  let exLow = f64x2.splat(0)
  let exHigh = f64x2.splat(0)
  const pk = f32x4.splat(pendingK)
  const ps = f32x4.splat(pendingSoft)
  let accLow = f64x2.splat(0)
  let accHigh = f64x2.splat(0)
  let m0 = f32x4.splat(-Infinity)
  let m1 = m0
  let lo = f32x4.splat(Infinity)
  let i = 0
  for (; i + 16 <= vocab; i += 16) {
    if (lookahead) {
      const y0 = load4(next, i, dtype)
      const y1 = load4(next, i + 4, dtype)
      const y2 = load4(next, i + 8, dtype)
      const y3 = load4(next, i + 12, dtype)
      m0 = f32x4.pmax(m0, f32x4.pmax(y0, y1))
      m1 = f32x4.pmax(m1, f32x4.pmax(y2, y3))
      lo = f32x4.pmin(lo, f32x4.pmin(f32x4.pmin(y0, y1), f32x4.pmin(y2, y3)))
    }
    if (pending) {
      const p = pendingRow + (<usize>i << 2)
      v128.store(p, f32x4.sub(f32x4.mul(v128.load(p), pk), ps))
      v128.store(p, f32x4.sub(f32x4.mul(v128.load(p, 16), pk), ps), 16)
      v128.store(p, f32x4.sub(f32x4.mul(v128.load(p, 32), pk), ps), 32)
      v128.store(p, f32x4.sub(f32x4.mul(v128.load(p, 48), pk), ps), 48)
    }
    const d0 = f32x4.sub(load4(row, i, dtype), shift)
    const d1 = f32x4.sub(load4(row, i + 4, dtype), shift)
    const d2 = f32x4.sub(load4(row, i + 8, dtype), shift)
    const d3 = f32x4.sub(load4(row, i + 12, dtype), shift)
    const e0 = expNonPositive(d0, clamp)
    const e1 = expNonPositive(d1, clamp)
    const e2 = expNonPositive(d2, clamp)
    const e3 = expNonPositive(d3, clamp)
    if (entropy) {
      const t = f32x4.add(
        f32x4.add(shiftedTerm(e0, d0, clamp), shiftedTerm(e1, d1, clamp)),
        f32x4.add(shiftedTerm(e2, d2, clamp), shiftedTerm(e3, d3, clamp))
      )
      exLow = promoteAndAdd(exLow, t, false)
      exHigh = promoteAndAdd(exHigh, t, true)
    }
    if (keep) {
      const o = out + (<usize>i << 2)
      v128.store(o, e0)
      v128.store(o, e1, 16)
      v128.store(o, e2, 32)
      v128.store(o, e3, 48)
    }
    const s = f32x4.add(f32x4.add(e0, e1), f32x4.add(e2, e3))
    accLow = promoteAndAdd(accLow, s, false)
    accHigh = promoteAndAdd(accHigh, s, true)
  }
  for (; i + 4 <= vocab; i += 4) {
    if (lookahead) {
      const y = load4(next, i, dtype)
      m0 = f32x4.pmax(m0, y)
      lo = f32x4.pmin(lo, y)
    }
    if (pending) {
      const p = pendingRow + (<usize>i << 2)
      v128.store(p, f32x4.sub(f32x4.mul(v128.load(p), pk), ps))
    }
    const d = f32x4.sub(load4(row, i, dtype), shift)
    const e = expNonPositive(d, clamp)
    if (keep) v128.store(out + (<usize>i << 2), e)
    accLow = promoteAndAdd(accLow, e, false)
    accHigh = promoteAndAdd(accHigh, e, true)
    if (entropy) {
      const t = shiftedTerm(e, d, clamp)
      exLow = promoteAndAdd(exLow, t, false)
      exHigh = promoteAndAdd(exHigh, t, true)
    }
  }
  const acc = f64x2.add(accLow, accHigh)
  let sum = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  const ex = f64x2.add(exLow, exHigh)
  let shiftedSum = entropy ? f64x2.extract_lane(ex, 0) + f64x2.extract_lane(ex, 1) : 0
  let nextMax: f32 = lookahead ? horizontalMax(f32x4.pmax(m0, m1)) : 0
  let nextMin: f32 = lookahead ? horizontalMin(lo) : 0
  for (; i < vocab; i++) {
    if (lookahead) {
      const y = <f32>load1(next, i, dtype)
      if (y > nextMax) nextMax = y
      if (y < nextMin) nextMin = y
    }
    if (pending) {
      const p = pendingRow + (<usize>i << 2)
      store<f32>(p, load<f32>(p) * pendingK - pendingSoft)
    }
    const d = f32x4.sub(load4Scalar(row, i, dtype), shift)
    const e = expNonPositive(d, clamp)
    if (keep) store<f32>(out + (<usize>i << 2), f32x4.extract_lane(e, 0))
    sum += <f64>f32x4.extract_lane(e, 0)
    if (entropy) shiftedSum += <f64>f32x4.extract_lane(shiftedTerm(e, d, clamp), 0)
  }
  if (entropy) lastShiftedSum = shiftedSum
  if (lookahead) {
    lookaheadMax = nextMax
    lookaheadMin = nextMin
  }
  if (pending) finishPending()
  return sum
}

/** Writes the waiting row's target entry (after its last pass) and clears the wait. */
// @ts-ignore: decorator
@inline
function finishPending (): void {
  store<f32>(pendingTarget, pendingTargetValue)
  pendingRow = 0
}

/** Runs the waiting row's last pass on its own, when no exp loop is coming to carry it. */
function flushPending (vocab: i32): void {
  if (pendingRow == 0) return
  rowGradient(pendingRow, vocab, pendingK, pendingSoft, 0)
  finishPending()
}

/** g_c = e_c·k − soft·w_c over a row of stored exps (in place). */
// @ts-ignore: decorator
@inline
function rowGradient (out: usize, vocab: i32, k: f32, soft: f32, weight: usize): void {
  const kv = f32x4.splat(k)
  const sv = f32x4.splat(soft)
  let i = 0
  if (weight == 0) {
    for (; i + 16 <= vocab; i += 16) {
      const o = out + (<usize>i << 2)
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o), kv), sv))
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o, 16), kv), sv), 16)
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o, 32), kv), sv), 32)
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o, 48), kv), sv), 48)
    }
    for (; i + 4 <= vocab; i += 4) {
      const o = out + (<usize>i << 2)
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o), kv), sv))
    }
    for (; i < vocab; i++) {
      const o = out + (<usize>i << 2)
      store<f32>(o, load<f32>(o) * k - soft)
    }
  } else {
    for (; i + 4 <= vocab; i += 4) {
      const o = out + (<usize>i << 2)
      const w = v128.load(weight + (<usize>i << 2))
      v128.store(o, f32x4.sub(f32x4.mul(v128.load(o), kv), f32x4.mul(sv, w)))
    }
    for (; i < vocab; i++) {
      const o = out + (<usize>i << 2)
      store<f32>(o, load<f32>(o) * k - soft * load<f32>(weight + (<usize>i << 2)))
    }
  }
}

/**
 * rowSumExp with every flag a literal, so that each inlined copy of its loop is branch-free; only
 * `clamp` arrives as a literal from the caller, the rest is decided here.
 */
// @ts-ignore: decorator
@inline
function sumRow (
  row: usize,
  vocab: i32,
  dtype: i32,
  max: f32,
  gradRow: usize,
  withGradients: bool,
  next: usize,
  hasNext: bool,
  clamp: bool,
  entropy: bool
): f64 {
  if (withGradients) {
    if (pendingRow != 0) {
      return hasNext
        ? rowSumExp(row, vocab, dtype, max, gradRow, true, next, true, true, clamp, entropy)
        : rowSumExp(row, vocab, dtype, max, gradRow, true, 0, false, true, clamp, entropy)
    }
    return hasNext
      ? rowSumExp(row, vocab, dtype, max, gradRow, true, next, true, false, clamp, entropy)
      : rowSumExp(row, vocab, dtype, max, gradRow, true, 0, false, false, clamp, entropy)
  }
  return hasNext
    ? rowSumExp(row, vocab, dtype, max, 0, false, next, true, false, clamp, entropy)
    : rowSumExp(row, vocab, dtype, max, 0, false, 0, false, false, clamp, entropy)
}

/** sumRow with the entropy sum or without: the analytics outputs cost nothing when not asked for. */
// @ts-ignore: decorator
@inline
function sumRowOf (
  row: usize,
  vocab: i32,
  dtype: i32,
  max: f32,
  gradRow: usize,
  withGradients: bool,
  next: usize,
  hasNext: bool,
  clamp: bool,
  withStats: bool
): f64 {
  return withStats
    ? sumRow(row, vocab, dtype, max, gradRow, withGradients, next, hasNext, clamp, true)
    : sumRow(row, vocab, dtype, max, gradRow, withGradients, next, hasNext, clamp, false)
}

/** The hard-target rows of a call for one logit dtype (a constant after inlining), without softcap. */
// @ts-ignore: decorator
@inline
function plainRowsOf (call: usize, dtype: i32, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const logits = <usize>load<u32>(call + CE_LOGITS)
  const targets = <usize>load<u32>(call + CE_TARGETS)
  const vocab = load<i32>(call + CE_VOCAB)
  const ignoreIndex = load<i32>(call + CE_IGNORE_INDEX)
  const weight = <usize>load<u32>(call + CE_WEIGHT)
  const tokenLoss = <usize>load<u32>(call + CE_TOKEN_LOSS)
  const nll = <usize>load<u32>(call + CE_NLL)
  const gradients = <usize>load<u32>(call + CE_GRADIENTS)
  const stats = <usize>load<u32>(call + CE_STATS)
  const labelSmoothing = load<f64>(call + CE_LABEL_SMOOTHING)
  const classWeightSum = load<f64>(call + CE_CLASS_WEIGHT_SUM)
  const gradScale = load<f64>(call + CE_GRAD_SCALE)
  const zGrad = load<f64>(call + CE_Z_GRAD)
  const elementShift: usize = dtype == DTYPE_F32 ? 2 : 1
  const smoothingPerClass = labelSmoothing / <f64>vocab
  // Whether the current row's max was already found while the previous row was summed.
  let maxKnown = false
  // A call that stopped at an invalid row may have left a row waiting, in memory that is not
  // this call's: drop it.
  pendingRow = 0
  for (let r = rowStart; r < rowEnd; r++) {
    // The host may cancel a task while it runs (its client hung up, or its time ran out): one
    // atomic load a row, a few nanoseconds against a row's microseconds, lets the worker stop
    // within a row and hand its memory back.
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const row = logits + ((<usize>r * <usize>vocab) << elementShift)
    const gradRow = gradients + ((<usize>r * <usize>vocab) << 2)
    const lossSlot = tokenLoss + (<usize>r << 3)
    const nllSlot = nll + (<usize>r << 3)
    const target = load<i32>(targets + (<usize>r << 2))
    // A max found ahead (see rowSumExp) does not look for NaN: this row's sum will be NaN.
    const m = maxKnown ? lookaheadMax : rowMax(row, vocab, dtype)
    const lowest = maxKnown ? lookaheadMin : rowMinimum
    // NaN and +Inf are refused anywhere, padding rows included (those may be all −Inf).
    if (m != m || m == Infinity) return r
    const statsSlot = stats + <usize>r * STATS_BYTES
    if (target == ignoreIndex) {
      // A padding row has no sum to show a NaN, so it gets a max pass of its own.
      if (maxKnown && isNaN(rowMax(row, vocab, dtype))) return r
      store<f64>(lossSlot, 0)
      store<f64>(nllSlot, 0)
      if (stats != 0) {
        store<f64>(statsSlot, 0, ENTROPY_AT)
        store<f64>(statsSlot, 0, LOG_SUM_EXP_AT)
        store<f64>(statsSlot, <f64>firstIndexOf(row, vocab, dtype, m), ARGMAX_AT)
      }
      if (gradients != 0) {
        flushPending(vocab)
        memory.fill(gradRow, 0, <usize>vocab << 2)
      }
      maxKnown = false
      continue
    }
    const y = <i32>target

    // A NaN beside −Infs can hide from a max found ahead; either way the row is refused (the
    // host reads why from the row itself).
    if (m == -Infinity) return r
    const xTarget = load1(row, y, dtype)
    if (xTarget == -Infinity) return r

    const next = row + (<usize>vocab << elementShift)
    const hasNext = r + 1 < rowEnd
    // Only a row spread wider than the float32 exp range (or holding −Inf) needs the underflow
    // guard; language-model rows almost never are.
    const sumExp =
      lowest - m < EXP_UNDERFLOW
        ? sumRowOf(row, vocab, dtype, m, gradRow, gradients != 0, next, hasNext, true, stats != 0)
        : sumRowOf(row, vocab, dtype, m, gradRow, gradients != 0, next, hasNext, false, stats != 0)
    maxKnown = hasNext
    if (sumExp != sumExp) return r
    // log Σ − (x_y − max), not (max + log Σ) − x_y: next to a large max (1e20, say), log Σ would
    // be lost in the sum.
    const logSum = Math.log(sumExp)
    const logSumExp = <f64>m + logSum
    const rowNll = logSum - (xTarget - <f64>m)
    const targetWeight: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>y << 2))
    let loss = (1 - labelSmoothing) * targetWeight * rowNll
    if (labelSmoothing > 0) {
      // Σ_c w_c·(lse − x_c) = W_all·log Σ − Σ_c w_c·(x_c − max)
      loss += smoothingPerClass * (classWeightSum * logSum - shiftedWeightedSum(row, vocab, dtype, weight, m))
    }
    store<f64>(lossSlot, loss)
    store<f64>(nllSlot, rowNll)
    if (stats != 0) {
      store<f64>(statsSlot, logSum - lastShiftedSum / sumExp, ENTROPY_AT)
      store<f64>(statsSlot, logSumExp, LOG_SUM_EXP_AT)
      store<f64>(statsSlot, <f64>firstIndexOf(row, vocab, dtype, m), ARGMAX_AT)
    }

    if (gradients != 0) {
      const hardScale = gradScale * (1 - labelSmoothing) * targetWeight
      const softScale = gradScale * smoothingPerClass
      // z-loss, z·lse² a counted row, adds zGrad·lse·p_c (zGrad = 2z, scaled by the reduction).
      const probScale = hardScale + softScale * classWeightSum + zGrad * logSumExp
      // The target's entry once more in float64, rounded once (see the reference kernel); it is
      // written after the row's last pass.
      const targetValue = <f32>(probScale * Math.exp(xTarget - <f64>m - logSum) - softScale * targetWeight - hardScale)
      pendingRow = gradRow
      pendingK = <f32>(probScale / sumExp)
      pendingSoft = <f32>softScale
      pendingTarget = gradRow + (<usize>y << 2)
      pendingTargetValue = targetValue
      // Weighted rows (rare) take their last pass now; unweighted ones wait for the next row's loop.
      if (weight != 0) {
        rowGradient(gradRow, vocab, pendingK, pendingSoft, weight)
        finishPending()
      }
    }
  }
  if (gradients != 0) flushPending(vocab)
  return ALL_ROWS_VALID
}


/**
 * The hard-target rows of a call with a softcap c: every logit is z = c·tanh(x/c) first, a masked
 * one (−Inf) stays masked, and the gradient flows through the tanh (times 1 − (z/c)²). The max
 * of the capped row is the cap of the row's max (tanh is increasing), so the max is found on the
 * raw logits (while the previous row is summed, as in plainRowsOf); the sum computes the tanh,
 * and the gradient pass computes it again rather than keep a second row.
 */
// @ts-ignore: decorator
@inline
function softcapRowsOf (call: usize, dtype: i32, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const logits = <usize>load<u32>(call + CE_LOGITS)
  const targets = <usize>load<u32>(call + CE_TARGETS)
  const vocab = load<i32>(call + CE_VOCAB)
  const ignoreIndex = load<i32>(call + CE_IGNORE_INDEX)
  const weight = <usize>load<u32>(call + CE_WEIGHT)
  const tokenLoss = <usize>load<u32>(call + CE_TOKEN_LOSS)
  const nll = <usize>load<u32>(call + CE_NLL)
  const gradients = <usize>load<u32>(call + CE_GRADIENTS)
  const stats = <usize>load<u32>(call + CE_STATS)
  const labelSmoothing = load<f64>(call + CE_LABEL_SMOOTHING)
  const classWeightSum = load<f64>(call + CE_CLASS_WEIGHT_SUM)
  const gradScale = load<f64>(call + CE_GRAD_SCALE)
  const zGrad = load<f64>(call + CE_Z_GRAD)
  const cap = load<f64>(call + CE_SOFTCAP)
  const elementShift: usize = dtype == DTYPE_F32 ? 2 : 1
  const smoothingPerClass = labelSmoothing / <f64>vocab
  // Only the plain loss (no weight, smoothing, stats or gradient) may skip the other sums.
  const full = weight != 0 || labelSmoothing > 0 || stats != 0 || gradients != 0
  // Capped logits lie within 2c of each other: only a wide cap or a masked logit needs the
  // underflow guard.
  const wide = cap * 2 > -<f64>EXP_UNDERFLOW
  let maxKnown = false
  for (let r = rowStart; r < rowEnd; r++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const row = logits + ((<usize>r * <usize>vocab) << elementShift)
    const gradRow = gradients + ((<usize>r * <usize>vocab) << 2)
    const statsSlot = stats + <usize>r * STATS_BYTES
    const target = load<i32>(targets + (<usize>r << 2))
    const m = maxKnown ? aheadMax : rowMax(row, vocab, dtype)
    const lowest = maxKnown ? aheadMin : rowMinimum
    // NaN and +Inf are refused anywhere, padding rows included (tanh would hide a +Inf).
    if (m != m || m == Infinity) return r
    if (target == ignoreIndex) {
      // A padding row has no sum to show a NaN the lookahead passed over.
      if (maxKnown && isNaN(rowMax(row, vocab, dtype))) return r
      maxKnown = false
      store<f64>(tokenLoss + (<usize>r << 3), 0)
      store<f64>(nll + (<usize>r << 3), 0)
      if (stats != 0) {
        store<f64>(statsSlot, 0, ENTROPY_AT)
        store<f64>(statsSlot, 0, LOG_SUM_EXP_AT)
        store<f64>(statsSlot, <f64>cappedArgmax(row, vocab, dtype, m, cap), ARGMAX_AT)
      }
      if (gradients != 0) memory.fill(gradRow, 0, <usize>vocab << 2)
      continue
    }
    if (m == -Infinity) return r
    const xTarget = load1(row, target, dtype)
    if (xTarget == -Infinity) return r
    const max = softcapOf(m, <f32>cap)
    const clamp = lowest == -Infinity || wide
    const near = !full && !clamp && softcapIsNear(lowest, m, cap)
    const next = row + (<usize>vocab << elementShift)
    const hasNext = r + 1 < rowEnd
    let sumExp: f64
    if (near) {
      sumExp = hasNext
        ? softcapSum(row, vocab, dtype, <f32>cap, max, 0, 0, false, false, true, next, true)
        : softcapSum(row, vocab, dtype, <f32>cap, max, 0, 0, false, false, true, 0, false)
    } else if (hasNext) {
      sumExp = clamp
        ? softcapSum(row, vocab, dtype, <f32>cap, max, gradRow, weight, gradients != 0, true, false, next, true)
        : softcapSum(row, vocab, dtype, <f32>cap, max, gradRow, weight, gradients != 0, false, false, next, true)
    } else {
      sumExp = clamp
        ? softcapSum(row, vocab, dtype, <f32>cap, max, gradRow, weight, gradients != 0, true, false, 0, false)
        : softcapSum(row, vocab, dtype, <f32>cap, max, gradRow, weight, gradients != 0, false, false, 0, false)
    }
    maxKnown = hasNext
    if (sumExp != sumExp) return r
    const logSum = Math.log(sumExp)
    const logSumExp = <f64>max + logSum
    // Capped as the sum capped it: exact where the target is the max.
    const zTarget = <f64>softcapOf(<f32>xTarget, <f32>cap)
    const rowNll = logSum - (zTarget - <f64>max)
    const targetWeight: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>target << 2))
    let loss = (1 - labelSmoothing) * targetWeight * rowNll
    if (labelSmoothing > 0) loss += smoothingPerClass * (classWeightSum * logSum - capWeightedShiftedSum)
    store<f64>(tokenLoss + (<usize>r << 3), loss)
    store<f64>(nll + (<usize>r << 3), rowNll)
    if (stats != 0) {
      store<f64>(statsSlot, logSum - capShiftedSum / sumExp, ENTROPY_AT)
      store<f64>(statsSlot, logSumExp, LOG_SUM_EXP_AT)
      store<f64>(statsSlot, <f64>cappedArgmax(row, vocab, dtype, m, cap), ARGMAX_AT)
    }
    if (gradients != 0) {
      const hardScale = gradScale * (1 - labelSmoothing) * targetWeight
      const softScale = gradScale * smoothingPerClass
      const probScale = hardScale + softScale * classWeightSum + zGrad * logSumExp
      softcapGradient(row, vocab, dtype, <f32>cap, gradRow, <f32>(probScale / sumExp), <f32>softScale, weight)
      // The target's entry once more in float64, rounded once (see the plain kernel).
      const t = zTarget / cap
      const value = (probScale * Math.exp(zTarget - <f64>max - logSum) - softScale * targetWeight - hardScale) * (1 - t * t)
      store<f32>(gradRow + (<usize>target << 2), <f32>value)
    }
  }
  return ALL_ROWS_VALID
}

// What softcapSum adds up beside Σ e, in float64, when `full`: Σ e·(z − max) for the entropy and
// Σ w·(z − max) for the smoothing. Wasm globals are the instance's (each worker's).
let capShiftedSum: f64 = 0
let capWeightedShiftedSum: f64 = 0

/** d = z − max for four lanes of logits: the polynomial alone for a `near` row. */
// @ts-ignore: decorator
@inline
function capShifted4 (x: v128, cap: f32, invCap: f32, shift: v128, near: bool): v128 {
  // Near, z may round an ulp above max, which exp takes as it is; elsewhere d stays ≤ 0.
  return near
    ? f32x4.sub(softcapNear4(x, cap, invCap), shift)
    : f32x4.pmin(f32x4.sub(softcap4(x, cap, invCap), shift), f32x4.splat(0))
}

/**
 * Σ exp(z − max) over a row of capped logits z; when `full`, Σ e·(z − max) and Σ w·(z − max)
 * beside it, and the exps to `out` (the gradient row) when `keep` is set. With `lookahead`, the
 * next row's max and min are found on the way (see setAhead).
 */
// @ts-ignore: decorator
@inline
function softcapSum (row: usize, vocab: i32, dtype: i32, cap: f32, max: f32, out: usize, weight: usize, keep: bool, clamp: bool, near: bool, next: usize, lookahead: bool): f64 {
  const full = !near
  const invCap: f32 = 1 / cap
  const shift = f32x4.splat(max)
  let aheadHigh = f32x4.splat(-Infinity)
  let aheadLow = f32x4.splat(Infinity)
  let sumLow = f64x2.splat(0)
  let sumHigh = f64x2.splat(0)
  let exLow = f64x2.splat(0)
  let exHigh = f64x2.splat(0)
  let wLow = f64x2.splat(0)
  let wHigh = f64x2.splat(0)
  let i = 0
  // The tanh of each chunk is taken one step ahead of its exp, so that the two long dependency
  // chains of a step are independent and the processor overlaps them.
  let d0 = f32x4.splat(0)
  let d1 = d0
  let d2 = d0
  let d3 = d0
  if (vocab >= 16) {
    d0 = capShifted4(load4(row, 0, dtype), cap, invCap, shift, near)
    d1 = capShifted4(load4(row, 4, dtype), cap, invCap, shift, near)
    d2 = capShifted4(load4(row, 8, dtype), cap, invCap, shift, near)
    d3 = capShifted4(load4(row, 12, dtype), cap, invCap, shift, near)
  }
  for (; i + 16 <= vocab; i += 16) {
    if (lookahead) {
      const y0 = load4(next, i, dtype)
      const y1 = load4(next, i + 4, dtype)
      const y2 = load4(next, i + 8, dtype)
      const y3 = load4(next, i + 12, dtype)
      aheadHigh = f32x4.pmax(aheadHigh, f32x4.pmax(f32x4.pmax(y0, y1), f32x4.pmax(y2, y3)))
      aheadLow = f32x4.pmin(aheadLow, f32x4.pmin(f32x4.pmin(y0, y1), f32x4.pmin(y2, y3)))
    }
    // The next chunk's (a last, empty step reads the row's first chunk again, harmlessly).
    const ahead = i + 32 <= vocab ? i + 16 : 0
    const n0 = capShifted4(load4(row, ahead, dtype), cap, invCap, shift, near)
    const n1 = capShifted4(load4(row, ahead + 4, dtype), cap, invCap, shift, near)
    const n2 = capShifted4(load4(row, ahead + 8, dtype), cap, invCap, shift, near)
    const n3 = capShifted4(load4(row, ahead + 12, dtype), cap, invCap, shift, near)
    const e0 = expNonPositive(d0, clamp)
    const e1 = expNonPositive(d1, clamp)
    const e2 = expNonPositive(d2, clamp)
    const e3 = expNonPositive(d3, clamp)
    const s = f32x4.add(f32x4.add(e0, e1), f32x4.add(e2, e3))
    sumLow = promoteAndAdd(sumLow, s, false)
    sumHigh = promoteAndAdd(sumHigh, s, true)
    if (full) {
      if (keep) {
        const o = out + (<usize>i << 2)
        v128.store(o, e0)
        v128.store(o, e1, 16)
        v128.store(o, e2, 32)
        v128.store(o, e3, 48)
      }
      const t = f32x4.add(
        f32x4.add(shiftedTerm(e0, d0, clamp), shiftedTerm(e1, d1, clamp)),
        f32x4.add(shiftedTerm(e2, d2, clamp), shiftedTerm(e3, d3, clamp))
      )
      exLow = promoteAndAdd(exLow, t, false)
      exHigh = promoteAndAdd(exHigh, t, true)
      const wp = weight + (<usize>i << 2)
      const wd =
        weight == 0
          ? f32x4.add(f32x4.add(d0, d1), f32x4.add(d2, d3))
          : f32x4.add(
              f32x4.add(f32x4.mul(d0, v128.load(wp)), f32x4.mul(d1, v128.load(wp, 16))),
              f32x4.add(f32x4.mul(d2, v128.load(wp, 32)), f32x4.mul(d3, v128.load(wp, 48)))
            )
      wLow = promoteAndAdd(wLow, wd, false)
      wHigh = promoteAndAdd(wHigh, wd, true)
    }
    d0 = n0
    d1 = n1
    d2 = n2
    d3 = n3
  }
  let acc = f64x2.add(sumLow, sumHigh)
  let sum = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  acc = f64x2.add(exLow, exHigh)
  let shifted = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  acc = f64x2.add(wLow, wHigh)
  let weighted = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  let tailMax: f32 = -Infinity
  let tailMin: f32 = Infinity
  for (; i < vocab; i++) {
    if (lookahead) {
      const y = <f32>load1(next, i, dtype)
      if (y > tailMax) tailMax = y
      if (y < tailMin) tailMin = y
    }
    const d = capShifted4(load4Scalar(row, i, dtype), cap, invCap, shift, near)
    const e = expNonPositive(d, clamp)
    sum += <f64>f32x4.extract_lane(e, 0)
    if (full) {
      if (keep) store<f32>(out + (<usize>i << 2), f32x4.extract_lane(e, 0))
      shifted += <f64>f32x4.extract_lane(shiftedTerm(e, d, clamp), 0)
      const w: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>i << 2))
      weighted += w * <f64>f32x4.extract_lane(d, 0)
    }
  }
  if (lookahead) setAhead(aheadHigh, aheadLow, tailMax, tailMin)
  capShiftedSum = shifted
  capWeightedShiftedSum = weighted
  return sum
}

/** g_c = (e_c·k − soft·w_c)·(1 − (z_c/c)²) over a row of stored exps, the tanh taken again. */
// @ts-ignore: decorator
@inline
function softcapGradient (row: usize, vocab: i32, dtype: i32, cap: f32, out: usize, k: f32, soft: f32, weight: usize): void {
  const invCap: f32 = 1 / cap
  const kv = f32x4.splat(k)
  const sv = f32x4.splat(soft)
  let i = 0
  for (; i + 4 <= vocab; i += 4) {
    const o = out + (<usize>i << 2)
    const slope = softcapSlope4(softcap4(load4(row, i, dtype), cap, invCap), invCap)
    const w = weight == 0 ? sv : f32x4.mul(sv, v128.load(weight + (<usize>i << 2)))
    v128.store(o, f32x4.mul(f32x4.sub(f32x4.mul(v128.load(o), kv), w), slope))
  }
  for (; i < vocab; i++) {
    const o = out + (<usize>i << 2)
    const slope = f32x4.extract_lane(softcapSlope4(softcap4(load4Scalar(row, i, dtype), cap, invCap), invCap), 0)
    const w: f32 = weight == 0 ? soft : soft * load<f32>(weight + (<usize>i << 2))
    store<f32>(o, (load<f32>(o) * k - w) * slope)
  }
}

// One function per dtype and path, not one inlined into another: Binaryen's coalesce-locals pass
// is quadratic in a function's locals, and the copies inlined together took it minutes where
// apart they take seconds, for the same code.
function plainRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return plainRowsOf(call, DTYPE_F32, rowStart, rowEnd, control)
}
function plainRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return plainRowsOf(call, DTYPE_F16, rowStart, rowEnd, control)
}
function plainRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return plainRowsOf(call, DTYPE_BF16, rowStart, rowEnd, control)
}
function softcapRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softcapRowsOf(call, DTYPE_F32, rowStart, rowEnd, control)
}
function softcapRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softcapRowsOf(call, DTYPE_F16, rowStart, rowEnd, control)
}
function softcapRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softcapRowsOf(call, DTYPE_BF16, rowStart, rowEnd, control)
}

/**
 * Rows [rowStart, rowEnd) of the cross-entropy call at `call` (a CE_* struct) with class-index
 * targets, each ignoreIndex or in [0, vocab) (the host checks them). Writes each row's token loss
 * and plain NLL (float64), and when asked its gradient (float32) and stats (ROW_STATS float64s).
 * Returns ALL_ROWS_VALID; or the first invalid row (a NaN or +Inf anywhere; in a counted row,
 * −Inf everywhere or at the target), whose reason the host reads from the row itself; or
 * ROWS_CANCELLED once the int32 at `control` (if not 0) says TASK_CANCELLED. The z-loss's loss
 * is added by the host; its gradient (CE_Z_GRAD) here.
 */
export function hardTargetRows (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const dtype = load<i32>(call + CE_DTYPE)
  if (load<f64>(call + CE_SOFTCAP) > 0) {
    if (dtype == DTYPE_F16) return softcapRowsF16(call, rowStart, rowEnd, control)
    if (dtype == DTYPE_BF16) return softcapRowsBF16(call, rowStart, rowEnd, control)
    return softcapRowsF32(call, rowStart, rowEnd, control)
  }
  if (dtype == DTYPE_F16) return plainRowsF16(call, rowStart, rowEnd, control)
  if (dtype == DTYPE_BF16) return plainRowsBF16(call, rowStart, rowEnd, control)
  return plainRowsF32(call, rowStart, rowEnd, control)
}
