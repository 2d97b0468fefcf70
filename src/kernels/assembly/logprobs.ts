// Selective log-softmax for RL fine-tuning (PPO, GRPO): per row the logits are soft-capped
// (c·tanh(x/c), applied first because it belongs to the model), then divided by the temperature
// T; then log p[target], the top k log-probabilities and the entropy, with z = cap(x)/T,
// d = z − max and log Σ = log Σ e^d:
//   log p[y] = (z_y − max) − log Σ        entropy = log Σ − Σ e·d / Σ e
// Two passes: the max (which also refuses NaN and +Inf), then the exps, with the top k found on
// the way. d is formed as (x − max)/T, or (cap(x) − cap(max))/T, so that it is exact where x is
// the max, whatever the magnitude. The top k are ranked by the capped logits in float64 (dividing
// by T > 0 keeps the order), ties to the lower id; a size-k min-heap in the row's own output slots
// holds them, and only a logit above the raw value of the k-th best so far (rare after the first
// few) leaves the vector loop.

import {
  ALL_ROWS_VALID,
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_F32,
  LP_DTYPE,
  LP_ENTROPY,
  LP_IGNORE_INDEX,
  LP_LOGITS,
  LP_SOFTCAP,
  LP_TARGET_LOGPROBS,
  LP_TARGETS,
  LP_TEMPERATURE,
  LP_TOP_IDS,
  LP_TOP_K,
  LP_TOP_LOGPROBS,
  LP_VOCAB,
  ROWS_CANCELLED,
  TASK_CANCELLED
} from './abi'
import {
  EXP_UNDERFLOW,
  expNonPositive,
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
  softcap1,
  softcap4,
  softcapOf
} from './simd'

// The heap of the row being read: `heapSize` entries, keys (the capped logit in float64, or the
// raw one) at heapValues and ids at heapIds, the lowest-ranked at the root. Wasm globals: each
// worker has its own.
let heapValues: usize = 0
let heapIds: usize = 0
let heapSize: i32 = 0

/** a ranks above b: a larger value, or the lower id on a tie. */
// @ts-ignore: decorator
@inline
function ranksAbove (valueA: f64, idA: i32, valueB: f64, idB: i32): bool {
  return valueA > valueB || (valueA == valueB && idA < idB)
}

// @ts-ignore: decorator
@inline
function valueAt (i: i32): f64 {
  return load<f64>(heapValues + (<usize>i << 3))
}

// @ts-ignore: decorator
@inline
function idAt (i: i32): i32 {
  return load<i32>(heapIds + (<usize>i << 2))
}

// @ts-ignore: decorator
@inline
function put (i: i32, value: f64, id: i32): void {
  store<f64>(heapValues + (<usize>i << 3), value)
  store<i32>(heapIds + (<usize>i << 2), id)
}

// @ts-ignore: decorator
@inline
function siftDown (from: i32): void {
  let i = from
  const value = valueAt(i)
  const id = idAt(i)
  for (;;) {
    const left = 2 * i + 1
    if (left >= heapSize) break
    let child = left
    const right = left + 1
    if (right < heapSize && ranksAbove(valueAt(left), idAt(left), valueAt(right), idAt(right))) child = right
    if (!ranksAbove(value, id, valueAt(child), idAt(child))) break
    put(i, valueAt(child), idAt(child))
    i = child
  }
  put(i, value, id)
}

function siftUp (from: i32): void {
  let i = from
  const value = valueAt(i)
  const id = idAt(i)
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!ranksAbove(valueAt(parent), idAt(parent), value, id)) break
    put(i, valueAt(parent), idAt(parent))
    i = parent
  }
  put(i, value, id)
}

/** Offers logit `id` to the full heap: it replaces the root if it ranks above it (ids only grow, so ties never do). */
// @ts-ignore: decorator
@inline
function offer (key: f64, id: i32): void {
  if (key > valueAt(0)) {
    put(0, key, id)
    siftDown(0)
  }
}

/** A logit's key in the heap. */
// @ts-ignore: decorator
@inline
function keyOf (x: f64, capped: bool, cap: f64): f64 {
  return capped ? softcap1(x, cap) : x
}

/** The heap into descending order, in place: the root, the lowest, goes to the end each time. */
function sortHeap (): void {
  for (let end = heapSize - 1; end > 0; end--) {
    const value = valueAt(0)
    const id = idAt(0)
    put(0, valueAt(end), idAt(end))
    put(end, value, id)
    heapSize = end
    siftDown(0)
  }
}

/**
 * d = (cap(x) − shift)/T for four lanes, never above 0 (`scaled` false: T = 1; `capped` false: no
 * cap). Without a cap, x − max is ≤ 0 exactly; a capped x may round above the capped max.
 */
// @ts-ignore: decorator
@inline
function shifted4 (x: v128, capped: bool, scaled: bool, cap: f32, invCap: f32, invT: f32, shift: v128): v128 {
  if (!capped) {
    const d = f32x4.sub(x, shift)
    return scaled ? f32x4.mul(d, f32x4.splat(invT)) : d
  }
  const d = f32x4.pmin(f32x4.sub(softcap4(x, cap, invCap), shift), f32x4.splat(0))
  return scaled ? f32x4.mul(d, f32x4.splat(invT)) : d
}

/**
 * Σ e over the row, e = exp(z − max), with Σ e·(z − max) (for the entropy) left in lastShifted,
 * and, when `topK` > 0, every logit above the heap's root offered to it.
 */
// @ts-ignore: decorator
@inline
function logprobSum (row: usize, vocab: i32, dtype: i32, capped: bool, scaled: bool, cap: f32, capF64: f64, invT: f32, top: f32, topK: i32, clamp: bool, next: usize, lookahead: bool): f64 {
  let aheadHigh = f32x4.splat(-Infinity)
  let aheadLow = f32x4.splat(Infinity)
  const invCap: f32 = capped ? 1 / cap : 0
  // The heap ranks by the cap as the request gave it (capF64), as the seeding of the heap does:
  // the float32 cap would rank equal logits apart.
  const shift = f32x4.splat(top)
  let sumLow = f64x2.splat(0)
  let sumHigh = f64x2.splat(0)
  let exLow = f64x2.splat(0)
  let exHigh = f64x2.splat(0)
  // The raw logit of the heap's root: only a logit above it can enter.
  let limit = f32x4.splat(topK > 0 ? <f32>load1(row, idAt(0), dtype) : <f32>Infinity)
  let i = 0
  for (; i + 16 <= vocab; i += 16) {
    const x0 = load4(row, i, dtype)
    const x1 = load4(row, i + 4, dtype)
    const x2 = load4(row, i + 8, dtype)
    const x3 = load4(row, i + 12, dtype)
    if (lookahead) {
      const y0 = load4(next, i, dtype)
      const y1 = load4(next, i + 4, dtype)
      const y2 = load4(next, i + 8, dtype)
      const y3 = load4(next, i + 12, dtype)
      aheadHigh = f32x4.pmax(aheadHigh, f32x4.pmax(f32x4.pmax(y0, y1), f32x4.pmax(y2, y3)))
      aheadLow = f32x4.pmin(aheadLow, f32x4.pmin(f32x4.pmin(y0, y1), f32x4.pmin(y2, y3)))
    }
    if (topK > 0) {
      const high = f32x4.pmax(f32x4.pmax(x0, x1), f32x4.pmax(x2, x3))
      if (v128.any_true(f32x4.gt(high, limit))) {
        // The first k logits seeded the heap: only the ones after them are offered.
        for (let j = i < topK ? topK : i; j < i + 16; j++) offer(keyOf(load1(row, j, dtype), capped, capF64), j)
        limit = f32x4.splat(<f32>load1(row, idAt(0), dtype))
      }
    }
    const d0 = shifted4(x0, capped, scaled, cap, invCap, invT, shift)
    const d1 = shifted4(x1, capped, scaled, cap, invCap, invT, shift)
    const d2 = shifted4(x2, capped, scaled, cap, invCap, invT, shift)
    const d3 = shifted4(x3, capped, scaled, cap, invCap, invT, shift)
    const e0 = expNonPositive(d0, clamp)
    const e1 = expNonPositive(d1, clamp)
    const e2 = expNonPositive(d2, clamp)
    const e3 = expNonPositive(d3, clamp)
    const s = f32x4.add(f32x4.add(e0, e1), f32x4.add(e2, e3))
    sumLow = promoteAndAdd(sumLow, s, false)
    sumHigh = promoteAndAdd(sumHigh, s, true)
    const t = f32x4.add(
      f32x4.add(shiftedTerm(e0, d0, clamp), shiftedTerm(e1, d1, clamp)),
      f32x4.add(shiftedTerm(e2, d2, clamp), shiftedTerm(e3, d3, clamp))
    )
    exLow = promoteAndAdd(exLow, t, false)
    exHigh = promoteAndAdd(exHigh, t, true)
  }
  let acc = f64x2.add(sumLow, sumHigh)
  let sum = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  acc = f64x2.add(exLow, exHigh)
  let shifted = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  let tailMax: f32 = -Infinity
  let tailMin: f32 = Infinity
  for (; i < vocab; i++) {
    if (lookahead) {
      const y = <f32>load1(next, i, dtype)
      if (y > tailMax) tailMax = y
      if (y < tailMin) tailMin = y
    }
    if (topK > 0 && i >= topK) offer(keyOf(load1(row, i, dtype), capped, capF64), i)
    const d = shifted4(load4Scalar(row, i, dtype), capped, scaled, cap, invCap, invT, shift)
    const e = expNonPositive(d, clamp)
    sum += <f64>f32x4.extract_lane(e, 0)
    shifted += <f64>f32x4.extract_lane(shiftedTerm(e, d, clamp), 0)
  }
  lastShifted = shifted
  if (lookahead) setAhead(aheadHigh, aheadLow, tailMax, tailMin)
  return sum
}

let lastShifted: f64 = 0

/** log p of one logit: (cap(x) − top)/T − log Σ, the difference in float32 as the passes form it. */
// @ts-ignore: decorator
@inline
function logprobOf (x: f64, capped: bool, cap: f64, top: f32, invT: f64, logSum: f64): f64 {
  const z: f64 = capped ? <f64>softcapOf(<f32>x, <f32>cap) : x
  return (z - <f64>top) * invT - logSum
}

// @ts-ignore: decorator
@inline
function logprobRowsOf (call: usize, dtype: i32, capped: bool, scaled: bool, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const logits = <usize>load<u32>(call + LP_LOGITS)
  const targets = <usize>load<u32>(call + LP_TARGETS)
  const vocab = load<i32>(call + LP_VOCAB)
  const ignoreIndex = load<i32>(call + LP_IGNORE_INDEX)
  const topK = load<i32>(call + LP_TOP_K)
  const targetLogprobs = <usize>load<u32>(call + LP_TARGET_LOGPROBS)
  const topIds = <usize>load<u32>(call + LP_TOP_IDS)
  const topLogprobs = <usize>load<u32>(call + LP_TOP_LOGPROBS)
  const entropy = <usize>load<u32>(call + LP_ENTROPY)
  const cap = load<f64>(call + LP_SOFTCAP)
  const invT = 1 / load<f64>(call + LP_TEMPERATURE)
  const elementShift: usize = dtype == DTYPE_F32 ? 2 : 1
  // Whether this row's max (and min) was found while the previous row was summed.
  let maxKnown = false
  for (let r = rowStart; r < rowEnd; r++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const row = logits + ((<usize>r * <usize>vocab) << elementShift)
    const m = maxKnown ? aheadMax : rowMax(row, vocab, dtype)
    const lowest = maxKnown ? aheadMin : rowMinimum
    if (m != m || m == Infinity || m == -Infinity) return r
    // The shift: the (capped) max, as the passes compute it.
    const top: f32 = capped ? softcapOf(m, <f32>cap) : m
    const spread = (capped ? 2 * cap : <f64>m - <f64>lowest) * invT
    const clamp = lowest == -Infinity || spread > -<f64>EXP_UNDERFLOW
    if (topK > 0) {
      heapValues = topLogprobs + (<usize>r * <usize>topK << 3)
      heapIds = topIds + (<usize>r * <usize>topK << 2)
      heapSize = 0
      // The first k logits, whatever they are, fill the heap.
      for (let c = 0; c < topK; c++) {
        put(heapSize++, keyOf(load1(row, c, dtype), capped, cap), c)
        siftUp(heapSize - 1)
      }
    }
    const next = row + (<usize>vocab << elementShift)
    const hasNext = r + 1 < rowEnd
    let sumExp: f64
    if (hasNext) {
      sumExp = clamp
        ? logprobSum(row, vocab, dtype, capped, scaled, <f32>cap, cap, <f32>invT, top, topK, true, next, true)
        : logprobSum(row, vocab, dtype, capped, scaled, <f32>cap, cap, <f32>invT, top, topK, false, next, true)
    } else {
      sumExp = clamp
        ? logprobSum(row, vocab, dtype, capped, scaled, <f32>cap, cap, <f32>invT, top, topK, true, 0, false)
        : logprobSum(row, vocab, dtype, capped, scaled, <f32>cap, cap, <f32>invT, top, topK, false, 0, false)
    }
    maxKnown = hasNext
    // A NaN the lookahead passed over makes the sum NaN.
    if (sumExp != sumExp) return r
    const logSum = Math.log(sumExp)
    if (targets != 0) {
      const target = load<i32>(targets + (<usize>r << 2))
      let value: f64 = 0
      if (target != ignoreIndex) {
        const x = load1(row, target, dtype)
        if (x == -Infinity) return r
        value = logprobOf(x, capped, cap, top, invT, logSum)
      }
      if (targetLogprobs != 0) store<f64>(targetLogprobs + (<usize>r << 3), value)
    }
    if (entropy != 0) store<f64>(entropy + (<usize>r << 3), logSum - lastShifted / sumExp)
    if (topK > 0) {
      sortHeap()
      for (let k = 0; k < topK; k++) {
        const x = load1(row, idAt(k), dtype)
        store<f64>(heapValues + (<usize>k << 3), logprobOf(x, capped, cap, top, invT, logSum))
      }
    }
  }
  return ALL_ROWS_VALID
}

function logprobRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F32, false, false, rowStart, rowEnd, control)
}
function logprobRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F16, false, false, rowStart, rowEnd, control)
}
function logprobRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_BF16, false, false, rowStart, rowEnd, control)
}
function logprobScaledRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F32, false, true, rowStart, rowEnd, control)
}
function logprobScaledRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F16, false, true, rowStart, rowEnd, control)
}
function logprobScaledRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_BF16, false, true, rowStart, rowEnd, control)
}
function logprobCappedRowsF32 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F32, true, true, rowStart, rowEnd, control)
}
function logprobCappedRowsF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_F16, true, true, rowStart, rowEnd, control)
}
function logprobCappedRowsBF16 (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  return logprobRowsOf(call, DTYPE_BF16, true, true, rowStart, rowEnd, control)
}

/**
 * Rows [rowStart, rowEnd) of the logprobs call at `call` (an LP_* struct): log p[target] (0 at
 * ignoreIndex; LP_TARGETS 0 for none), the top LP_TOP_K log-probabilities with their ids,
 * descending, and the entropy, each where its address is not 0. Returns ALL_ROWS_VALID; or the
 * first row holding NaN or +Inf, −Inf everywhere, or −Inf at its target; or ROWS_CANCELLED.
 */
export function logprobRows (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const dtype = load<i32>(call + LP_DTYPE)
  const capped = load<f64>(call + LP_SOFTCAP) > 0
  const scaled = load<f64>(call + LP_TEMPERATURE) != 1
  if (capped) {
    if (dtype == DTYPE_F16) return logprobCappedRowsF16(call, rowStart, rowEnd, control)
    if (dtype == DTYPE_BF16) return logprobCappedRowsBF16(call, rowStart, rowEnd, control)
    return logprobCappedRowsF32(call, rowStart, rowEnd, control)
  }
  if (scaled) {
    if (dtype == DTYPE_F16) return logprobScaledRowsF16(call, rowStart, rowEnd, control)
    if (dtype == DTYPE_BF16) return logprobScaledRowsBF16(call, rowStart, rowEnd, control)
    return logprobScaledRowsF32(call, rowStart, rowEnd, control)
  }
  if (dtype == DTYPE_F16) return logprobRowsF16(call, rowStart, rowEnd, control)
  if (dtype == DTYPE_BF16) return logprobRowsBF16(call, rowStart, rowEnd, control)
  return logprobRowsF32(call, rowStart, rowEnd, control)
}
