// Cross-entropy with class probabilities q instead of class indices, as PyTorch's probability
// targets: q' = (1 − ε)·q + ε/V, a row's loss is Σ_c w_c·q'_c·(lse − z_c) and its gradient
// scale·(p_c·Σ_j w_j·q'_j − w_c·q'_c), through the softcap if any. Every row counts. A class with
// q'_c = 0 adds nothing, even where its logit is masked. With d = z − max and log Σ = log Σ e^d:
//   loss = (1 − ε)·(Σ w·q · log Σ − Σ_{q>0} w·q·d) + ε/V·(W_all · log Σ − Σ w·d)
//   nll  = Σ q · log Σ − Σ_{q>0} q·d      (plain: unweighted, unsmoothed; for perplexity)
// so one pass over the logits and the probabilities side by side gives every sum.

import {
  ALL_ROWS_VALID,
  CE_CLASS_WEIGHT_SUM,
  CE_DTYPE,
  CE_GRAD_SCALE,
  CE_GRADIENTS,
  CE_LABEL_SMOOTHING,
  CE_LOGITS,
  CE_NLL,
  CE_SOFT_TARGETS,
  CE_SOFTCAP,
  CE_STATS,
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
  load1,
  load4,
  load4Scalar,
  promoteAndAdd,
  aheadMax,
  aheadMin,
  rowMax,
  rowMinimum,
  setAhead,
  shiftedTerm,
  cappedArgmax,
  softcap1,
  softcap4,
  softcapOf,
  softcapSlope4
} from './simd'

const STATS_BYTES: usize = <usize>ROW_STATS * 8
const ENTROPY_AT: usize = <usize>STAT_ENTROPY * 8
const LOG_SUM_EXP_AT: usize = <usize>STAT_LOG_SUM_EXP * 8
const ARGMAX_AT: usize = <usize>STAT_ARGMAX * 8

// The sums of the last row softSum read, beside Σ e (which it returns). Wasm globals belong to
// the instance (the worker), not to the shared memory.
let sumQ: f64 = 0 // Σ q
let sumQD: f64 = 0 // Σ_{q>0} q·d
let sumWQ: f64 = 0 // Σ w·q
let sumWQD: f64 = 0 // Σ_{q>0} w·q·d
let sumWD: f64 = 0 // Σ w·d
let sumED: f64 = 0 // Σ e·d

/** d for four lanes: the (capped) logits less the row's max, never above 0. */
// @ts-ignore: decorator
@inline
function shifted4 (x: v128, capped: bool, cap: f32, invCap: f32, shift: v128): v128 {
  return capped ? f32x4.pmin(f32x4.sub(softcap4(x, cap, invCap), shift), f32x4.splat(0)) : f32x4.sub(x, shift)
}

/** Four lanes' share of the sums: e, q, and q·d where q > 0 (a masked logit with q = 0 adds nothing, not 0·−Inf). */
// @ts-ignore: decorator
@inline
function qd4 (q: v128, d: v128): v128 {
  return v128.and(f32x4.mul(q, d), f32x4.gt(q, f32x4.splat(0)))
}

/**
 * One pass over a row of logits and its probabilities. `full` adds the weighted sums, the
 * entropy's and the exps kept for the gradient (`out`); without it only Σ e, Σ q and Σ q·d are
 * formed, which is all an unweighted, unsmoothed loss needs. With `lookahead`, the next row's max
 * and min are found on the way (see setAhead). Sixteen lanes are added in float32 before each
 * promotion to float64.
 */
// @ts-ignore: decorator
@inline
function softSum (row: usize, q: usize, vocab: i32, dtype: i32, capped: bool, cap: f32, max: f32, weight: usize, out: usize, full: bool, clamp: bool, next: usize, lookahead: bool): f64 {
  const invCap: f32 = capped ? 1 / cap : 0
  const shift = f32x4.splat(max)
  let aheadHigh = f32x4.splat(-Infinity)
  let aheadLow = f32x4.splat(Infinity)
  let eLow = f64x2.splat(0)
  let eHigh = f64x2.splat(0)
  let qLow = f64x2.splat(0)
  let qHigh = f64x2.splat(0)
  let qdLow = f64x2.splat(0)
  let qdHigh = f64x2.splat(0)
  let wqLow = f64x2.splat(0)
  let wqHigh = f64x2.splat(0)
  let wqdLow = f64x2.splat(0)
  let wqdHigh = f64x2.splat(0)
  let wdLow = f64x2.splat(0)
  let wdHigh = f64x2.splat(0)
  let edLow = f64x2.splat(0)
  let edHigh = f64x2.splat(0)
  let i = 0
  for (; i + 16 <= vocab; i += 16) {
    if (lookahead) {
      const y0 = load4(next, i, dtype)
      const y1 = load4(next, i + 4, dtype)
      const y2 = load4(next, i + 8, dtype)
      const y3 = load4(next, i + 12, dtype)
      aheadHigh = f32x4.pmax(aheadHigh, f32x4.pmax(f32x4.pmax(y0, y1), f32x4.pmax(y2, y3)))
      aheadLow = f32x4.pmin(aheadLow, f32x4.pmin(f32x4.pmin(y0, y1), f32x4.pmin(y2, y3)))
    }
    const d0 = shifted4(load4(row, i, dtype), capped, cap, invCap, shift)
    const d1 = shifted4(load4(row, i + 4, dtype), capped, cap, invCap, shift)
    const d2 = shifted4(load4(row, i + 8, dtype), capped, cap, invCap, shift)
    const d3 = shifted4(load4(row, i + 12, dtype), capped, cap, invCap, shift)
    const e0 = expNonPositive(d0, clamp)
    const e1 = expNonPositive(d1, clamp)
    const e2 = expNonPositive(d2, clamp)
    const e3 = expNonPositive(d3, clamp)
    const p = q + (<usize>i << 2)
    const q0 = v128.load(p)
    const q1 = v128.load(p, 16)
    const q2 = v128.load(p, 32)
    const q3 = v128.load(p, 48)
    const qd0 = qd4(q0, d0)
    const qd1 = qd4(q1, d1)
    const qd2 = qd4(q2, d2)
    const qd3 = qd4(q3, d3)
    const es = f32x4.add(f32x4.add(e0, e1), f32x4.add(e2, e3))
    eLow = promoteAndAdd(eLow, es, false)
    eHigh = promoteAndAdd(eHigh, es, true)
    const qs = f32x4.add(f32x4.add(q0, q1), f32x4.add(q2, q3))
    qLow = promoteAndAdd(qLow, qs, false)
    qHigh = promoteAndAdd(qHigh, qs, true)
    const qds = f32x4.add(f32x4.add(qd0, qd1), f32x4.add(qd2, qd3))
    qdLow = promoteAndAdd(qdLow, qds, false)
    qdHigh = promoteAndAdd(qdHigh, qds, true)
    if (full) {
      if (out != 0) {
        const o = out + (<usize>i << 2)
        v128.store(o, e0)
        v128.store(o, e1, 16)
        v128.store(o, e2, 32)
        v128.store(o, e3, 48)
      }
      const wp = weight + (<usize>i << 2)
      const w0 = weight == 0 ? f32x4.splat(1) : v128.load(wp)
      const w1 = weight == 0 ? f32x4.splat(1) : v128.load(wp, 16)
      const w2 = weight == 0 ? f32x4.splat(1) : v128.load(wp, 32)
      const w3 = weight == 0 ? f32x4.splat(1) : v128.load(wp, 48)
      const wq = f32x4.add(f32x4.add(f32x4.mul(w0, q0), f32x4.mul(w1, q1)), f32x4.add(f32x4.mul(w2, q2), f32x4.mul(w3, q3)))
      wqLow = promoteAndAdd(wqLow, wq, false)
      wqHigh = promoteAndAdd(wqHigh, wq, true)
      const wqd = f32x4.add(f32x4.add(f32x4.mul(w0, qd0), f32x4.mul(w1, qd1)), f32x4.add(f32x4.mul(w2, qd2), f32x4.mul(w3, qd3)))
      wqdLow = promoteAndAdd(wqdLow, wqd, false)
      wqdHigh = promoteAndAdd(wqdHigh, wqd, true)
      const wd = f32x4.add(f32x4.add(f32x4.mul(w0, d0), f32x4.mul(w1, d1)), f32x4.add(f32x4.mul(w2, d2), f32x4.mul(w3, d3)))
      wdLow = promoteAndAdd(wdLow, wd, false)
      wdHigh = promoteAndAdd(wdHigh, wd, true)
      const ed = f32x4.add(
        f32x4.add(shiftedTerm(e0, d0, clamp), shiftedTerm(e1, d1, clamp)),
        f32x4.add(shiftedTerm(e2, d2, clamp), shiftedTerm(e3, d3, clamp))
      )
      edLow = promoteAndAdd(edLow, ed, false)
      edHigh = promoteAndAdd(edHigh, ed, true)
    }
  }
  let sum = horizontal(eLow, eHigh)
  let sq = horizontal(qLow, qHigh)
  let sqd = horizontal(qdLow, qdHigh)
  let swq = horizontal(wqLow, wqHigh)
  let swqd = horizontal(wqdLow, wqdHigh)
  let swd = horizontal(wdLow, wdHigh)
  let sed = horizontal(edLow, edHigh)
  let tailMax: f32 = -Infinity
  let tailMin: f32 = Infinity
  for (; i < vocab; i++) {
    if (lookahead) {
      const y = <f32>load1(next, i, dtype)
      if (y > tailMax) tailMax = y
      if (y < tailMin) tailMin = y
    }
    const dv = shifted4(load4Scalar(row, i, dtype), capped, cap, invCap, shift)
    const ev = expNonPositive(dv, clamp)
    const d = <f64>f32x4.extract_lane(dv, 0)
    const e = <f64>f32x4.extract_lane(ev, 0)
    const qc = <f64>load<f32>(q + (<usize>i << 2))
    const qd = qc > 0 ? qc * d : 0
    sum += e
    sq += qc
    sqd += qd
    if (full) {
      if (out != 0) store<f32>(out + (<usize>i << 2), <f32>e)
      const w: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>i << 2))
      swq += w * qc
      swqd += w * qd
      swd += w * d
      sed += <f64>f32x4.extract_lane(shiftedTerm(ev, dv, clamp), 0)
    }
  }
  if (lookahead) setAhead(aheadHigh, aheadLow, tailMax, tailMin)
  sumQ = sq
  sumQD = sqd
  sumWQ = full ? swq : sq
  sumWQD = full ? swqd : sqd
  sumWD = swd
  sumED = sed
  return sum
}

/**
 * softSum for one row in float64, scalar: for the rare row whose float32 sums were not finite.
 * Logits of opposite signs near float32's limits (3e38 and −3e38) make x − max overflow float32,
 * where the true sums are finite; a masked (−Inf) logit makes them −Inf here too, as it should.
 */
function softSumWide (row: usize, q: usize, vocab: i32, dtype: i32, capped: bool, cap: f64, max: f64, weight: usize, out: usize): f64 {
  let sum: f64 = 0
  let sq: f64 = 0
  let sqd: f64 = 0
  let swq: f64 = 0
  let swqd: f64 = 0
  let swd: f64 = 0
  let sed: f64 = 0
  for (let i = 0; i < vocab; i++) {
    const x = capped ? softcap1(load1(row, i, dtype), cap) : load1(row, i, dtype)
    const d = x - max
    const e = Math.exp(d)
    const qc = <f64>load<f32>(q + (<usize>i << 2))
    const qd = qc > 0 ? qc * d : 0
    const w: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>i << 2))
    sum += e
    sq += qc
    sqd += qd
    swq += w * qc
    swqd += w * qd
    swd += w * d
    if (e > 0) sed += e * d
    if (out != 0) store<f32>(out + (<usize>i << 2), <f32>e)
  }
  sumQ = sq
  sumQD = sqd
  sumWQ = swq
  sumWQD = swqd
  sumWD = swd
  sumED = sed
  return sum
}

// @ts-ignore: decorator
@inline
function horizontal (low: v128, high: v128): f64 {
  const acc = f64x2.add(low, high)
  return f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
}

/** g_c = (e_c·k − a·w_c·q_c − b·w_c)·slope_c over a row of stored exps (a = scale·(1 − ε), b = scale·ε/V). */
// @ts-ignore: decorator
@inline
function softGradient (row: usize, q: usize, vocab: i32, dtype: i32, capped: bool, cap: f32, out: usize, k: f32, a: f32, b: f32, weight: usize): void {
  const invCap: f32 = capped ? 1 / cap : 0
  const kv = f32x4.splat(k)
  const av = f32x4.splat(a)
  const bv = f32x4.splat(b)
  let i = 0
  for (; i + 4 <= vocab; i += 4) {
    const o = out + (<usize>i << 2)
    let target = f32x4.add(f32x4.mul(v128.load(q + (<usize>i << 2)), av), bv)
    if (weight != 0) target = f32x4.mul(target, v128.load(weight + (<usize>i << 2)))
    let g = f32x4.sub(f32x4.mul(v128.load(o), kv), target)
    if (capped) g = f32x4.mul(g, softcapSlope4(softcap4(load4(row, i, dtype), cap, invCap), invCap))
    v128.store(o, g)
  }
  for (; i < vocab; i++) {
    const o = out + (<usize>i << 2)
    let target = load<f32>(q + (<usize>i << 2)) * a + b
    if (weight != 0) target *= load<f32>(weight + (<usize>i << 2))
    let g = load<f32>(o) * k - target
    if (capped) g *= f32x4.extract_lane(softcapSlope4(softcap4(load4Scalar(row, i, dtype), cap, invCap), invCap), 0)
    store<f32>(o, g)
  }
}

// @ts-ignore: decorator
@inline
function softRowsOf (call: usize, dtype: i32, capped: bool, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const logits = <usize>load<u32>(call + CE_LOGITS)
  const softTargets = <usize>load<u32>(call + CE_SOFT_TARGETS)
  const vocab = load<i32>(call + CE_VOCAB)
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
  // Whether this row's max (and min) was found while the previous row was summed.
  let maxKnown = false
  for (let r = rowStart; r < rowEnd; r++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const offset = <usize>r * <usize>vocab
    const row = logits + (offset << elementShift)
    const q = softTargets + (offset << 2)
    // 0 without gradients: softSum keeps no exps then.
    const gradRow: usize = gradients == 0 ? 0 : gradients + (offset << 2)
    const m = maxKnown ? aheadMax : rowMax(row, vocab, dtype)
    const lowest = maxKnown ? aheadMin : rowMinimum
    if (m != m || m == Infinity || m == -Infinity) return r
    const max: f32 = capped ? softcapOf(m, <f32>cap) : m
    const spread: f64 = capped ? 2 * cap : <f64>m - <f64>lowest
    const clamp = lowest == -Infinity || spread > -<f64>EXP_UNDERFLOW
    const next = row + (<usize>vocab << elementShift)
    const hasNext = r + 1 < rowEnd
    let sumExp: f64
    if (full) {
      sumExp = clamp
        ? softSum(row, q, vocab, dtype, capped, <f32>cap, max, weight, gradRow, true, true, next, hasNext)
        : softSum(row, q, vocab, dtype, capped, <f32>cap, max, weight, gradRow, true, false, next, hasNext)
    } else if (hasNext) {
      sumExp = clamp
        ? softSum(row, q, vocab, dtype, capped, <f32>cap, max, 0, 0, false, true, next, true)
        : softSum(row, q, vocab, dtype, capped, <f32>cap, max, 0, 0, false, false, next, true)
    } else {
      sumExp = clamp
        ? softSum(row, q, vocab, dtype, capped, <f32>cap, max, 0, 0, false, true, 0, false)
        : softSum(row, q, vocab, dtype, capped, <f32>cap, max, 0, 0, false, false, 0, false)
    }
    maxKnown = hasNext
    // A NaN the lookahead passed over makes the sum NaN.
    if (sumExp != sumExp) return r
    // Sums that overflowed float32 (or met a masked logit) are formed again in float64.
    if (!isFinite(sumQD + sumWQD + sumWD + sumED)) {
      sumExp = softSumWide(row, q, vocab, dtype, capped, cap, <f64>max, weight, gradRow)
    }
    const logSum = Math.log(sumExp)
    const logSumExp = <f64>max + logSum
    let loss = (1 - labelSmoothing) * (sumWQ * logSum - sumWQD)
    if (labelSmoothing > 0) loss += smoothingPerClass * (classWeightSum * logSum - sumWD)
    store<f64>(tokenLoss + (<usize>r << 3), loss)
    store<f64>(nll + (<usize>r << 3), sumQ * logSum - sumQD)
    if (stats != 0) {
      const slot = stats + <usize>r * STATS_BYTES
      store<f64>(slot, logSum - sumED / sumExp, ENTROPY_AT)
      store<f64>(slot, logSumExp, LOG_SUM_EXP_AT)
      store<f64>(slot, <f64>(capped ? cappedArgmax(row, vocab, dtype, m, cap) : firstIndexOf(row, vocab, dtype, m)), ARGMAX_AT)
    }
    if (gradients != 0) {
      const mass = (1 - labelSmoothing) * sumWQ + smoothingPerClass * classWeightSum
      const probScale = gradScale * mass + zGrad * logSumExp
      const a = <f32>(gradScale * (1 - labelSmoothing))
      const b = <f32>(gradScale * smoothingPerClass)
      softGradient(row, q, vocab, dtype, capped, <f32>cap, gradRow, <f32>(probScale / sumExp), a, b, weight)
    }
  }
  return ALL_ROWS_VALID
}

function softRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_F32, false, rowStart, rowEnd, control)
}
function softRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_F16, false, rowStart, rowEnd, control)
}
function softRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_BF16, false, rowStart, rowEnd, control)
}
function softCappedRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_F32, true, rowStart, rowEnd, control)
}
function softCappedRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_F16, true, rowStart, rowEnd, control)
}
function softCappedRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return softRowsOf(call, DTYPE_BF16, true, rowStart, rowEnd, control)
}

/**
 * Rows [rowStart, rowEnd) of a cross-entropy call with class probabilities (CE_SOFT_TARGETS, F32
 * shaped like the logits; the host checks their range and sums). Returns as hardTargetRows does;
 * a row is invalid for a NaN or +Inf anywhere, or −Inf everywhere.
 */
export function softTargetRows (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const dtype = load<i32>(call + CE_DTYPE)
  if (load<f64>(call + CE_SOFTCAP) > 0) {
    if (dtype == DTYPE_F16) return softCappedRowsF16(call, rowStart, rowEnd, control)
    if (dtype == DTYPE_BF16) return softCappedRowsBF16(call, rowStart, rowEnd, control)
    return softCappedRowsF32(call, rowStart, rowEnd, control)
  }
  if (dtype == DTYPE_F16) return softRowsF16(call, rowStart, rowEnd, control)
  if (dtype == DTYPE_BF16) return softRowsBF16(call, rowStart, rowEnd, control)
  return softRowsF32(call, rowStart, rowEnd, control)
}
