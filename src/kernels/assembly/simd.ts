// Vector building blocks of the kernel family: exp, tanh (for the softcap), half-float decoding,
// loads, and the max pass. Everything is inlined into the kernels, where the flags and the dtype
// are constants, so that no branch on them is left in an inner loop.

import { DTYPE_BF16, DTYPE_F32 } from './abi'

// Below this, exp(x) underflows float32; such terms are taken as exactly 0 (as exp(−Inf) is).
export const EXP_UNDERFLOW: f32 = -87.33654
const LOG2E: f32 = 1.44269504
const LN2_HI: f32 = 0.693359375
const LN2_LO: f32 = -2.12194440e-4
const ROUNDING_MAGIC: f32 = 12582912 // 1.5·2^23
const EXP_C0: f32 = 0.499992311000824
const EXP_C1: f32 = 0.16667114198207855
const EXP_C2: f32 = 0.04189009591937065
const EXP_C3: f32 = 0.008312505669891834

// exp of four lanes that are ≤ 0 (x − max). x = n·ln2 + r with |r| ≤ ln2/2, n rounded by
// adding 1.5·2^23 (the float's low mantissa bits then hold n, which hands 2^n over as bits with no
// float → int conversion); e^r = 1 + r + r²·P(r), P a cubic fitted for least maximum relative
// error (1.06e-7 with these float32 coefficients, under an ulp), evaluated by Estrin's scheme for
// a short dependency chain. Lanes below EXP_UNDERFLOW (including −Inf) give exactly 0.
//
// With `clamp` false the caller has checked that no lane is below EXP_UNDERFLOW (a row whose
// spread is under 87), and the three instructions that guard the underflow are left out.
// @ts-ignore: decorator
@inline
export function expNonPositive (x: v128, clamp: bool): v128 {
  // NaN lanes are not "below", so they stay NaN (and make the row's sum NaN).
  const below = clamp ? f32x4.lt(x, f32x4.splat(EXP_UNDERFLOW)) : x
  const clamped = clamp ? f32x4.pmax(x, f32x4.splat(EXP_UNDERFLOW)) : x
  const shifted = f32x4.add(f32x4.mul(clamped, f32x4.splat(LOG2E)), f32x4.splat(ROUNDING_MAGIC))
  const n = f32x4.sub(shifted, f32x4.splat(ROUNDING_MAGIC))
  const r = f32x4.sub(f32x4.sub(clamped, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)))
  const r2 = f32x4.mul(r, r)
  const low = f32x4.add(f32x4.mul(r, f32x4.splat(EXP_C1)), f32x4.splat(EXP_C0))
  const high = f32x4.add(f32x4.mul(r, f32x4.splat(EXP_C3)), f32x4.splat(EXP_C2))
  const poly = f32x4.add(low, f32x4.mul(r2, high))
  const er = f32x4.add(f32x4.add(f32x4.mul(r2, poly), r), f32x4.splat(1))
  // 2^n for n in [−126, 0]: the low mantissa bits (n mod 2^9) shifted into the exponent field,
  // plus the bias.
  const scale = i32x4.add(i32x4.shl(shifted, 23), i32x4.splat(127 << 23))
  const e = f32x4.mul(er, scale)
  return clamp ? v128.andnot(e, below) : e
}

// Four 16-bit words (zero-extended in i32 lanes) decoded to f32x4. BF16 is the top half of an
// F32. F16: move exponent and mantissa into float32's place, then multiply by 2^112 to rebias the
// exponent (15 → 127), which also gets subnormals right; Inf and NaN (exponent 31) instead get
// float32's all-ones exponent.
// @ts-ignore: decorator
@inline
export function decodeHalves (halves: v128, dtype: i32): v128 {
  if (dtype == DTYPE_BF16) return i32x4.shl(halves, 16)
  const sign = i32x4.shl(v128.and(halves, i32x4.splat(0x8000)), 16)
  const body = i32x4.shl(v128.and(halves, i32x4.splat(0x7fff)), 13)
  const special = i32x4.eq(v128.and(halves, i32x4.splat(0x7c00)), i32x4.splat(0x7c00))
  const finite = f32x4.mul(body, f32x4.splat(5.192296858534828e33)) // 2^112
  const infOrNan = v128.or(body, i32x4.splat(0x70000000))
  return v128.or(v128.bitselect(infOrNan, finite, special), sign)
}

// Four logits starting at element `i` of a row, decoded to f32x4.
// @ts-ignore: decorator
@inline
export function load4 (row: usize, i: i32, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(row + (<usize>i << 2))
  return decodeHalves(v128.load16x4_u(row + (<usize>i << 1)), dtype)
}

// One logit, decoded into every lane (for the tails of rows).
// @ts-ignore: decorator
@inline
export function load4Scalar (row: usize, i: i32, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return f32x4.splat(load<f32>(row + (<usize>i << 2)))
  return decodeHalves(i32x4.splat(<i32>load<u16>(row + (<usize>i << 1))), dtype)
}

// One logit as f64.
// @ts-ignore: decorator
@inline
export function load1 (row: usize, i: i32, dtype: i32): f64 {
  return <f64>f32x4.extract_lane(load4Scalar(row, i, dtype), 0)
}

// @ts-ignore: decorator
@inline
export function horizontalMax (v: v128): f32 {
  const m = f32x4.pmax(v, i32x4.shuffle(v, v, 2, 3, 0, 1))
  return max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1))
}

// The smallest logit of the row rowMax last read (NaN aside).
export let rowMinimum: f32 = 0

// @ts-ignore: decorator
@inline
export function horizontalMin (v: v128): f32 {
  const m = f32x4.pmin(v, i32x4.shuffle(v, v, 2, 3, 0, 1))
  return min(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1))
}

/**
 * Largest logit of a row, or NaN if any logit is NaN; the smallest goes to rowMinimum. f32x4.pmax is a single instruction where
 * f32x4.max (which propagates NaN) is several, so NaN is tracked on the side with x ≠ x.
 */
// @ts-ignore: decorator
@inline
export function rowMax (row: usize, vocab: i32, dtype: i32): f32 {
  let m0 = f32x4.splat(-Infinity)
  let m1 = m0
  let m2 = m0
  let m3 = m0
  let lo0 = f32x4.splat(Infinity)
  let lo1 = lo0
  let nan = i32x4.splat(0)
  let i = 0
  for (; i + 16 <= vocab; i += 16) {
    const x0 = load4(row, i, dtype)
    const x1 = load4(row, i + 4, dtype)
    const x2 = load4(row, i + 8, dtype)
    const x3 = load4(row, i + 12, dtype)
    m0 = f32x4.pmax(m0, x0)
    m1 = f32x4.pmax(m1, x1)
    m2 = f32x4.pmax(m2, x2)
    m3 = f32x4.pmax(m3, x3)
    lo0 = f32x4.pmin(lo0, f32x4.pmin(x0, x1))
    lo1 = f32x4.pmin(lo1, f32x4.pmin(x2, x3))
    nan = v128.or(nan, v128.or(v128.or(f32x4.ne(x0, x0), f32x4.ne(x1, x1)), v128.or(f32x4.ne(x2, x2), f32x4.ne(x3, x3))))
  }
  for (; i + 4 <= vocab; i += 4) {
    const x = load4(row, i, dtype)
    m0 = f32x4.pmax(m0, x)
    lo0 = f32x4.pmin(lo0, x)
    nan = v128.or(nan, f32x4.ne(x, x))
  }
  let m = horizontalMax(f32x4.pmax(f32x4.pmax(m0, m1), f32x4.pmax(m2, m3)))
  let lo = horizontalMin(f32x4.pmin(lo0, lo1))
  let anyNaN = v128.any_true(nan)
  for (; i < vocab; i++) {
    const x = <f32>load1(row, i, dtype)
    if (x != x) anyNaN = true
    if (x > m) m = x
    if (x < lo) lo = x
  }
  rowMinimum = lo
  return anyNaN ? NaN : m
}

// Σ e over four lanes, added to the two float64 accumulators.
// @ts-ignore: decorator
@inline
export function promoteAndAdd (acc: v128, sum4: v128, high: bool): v128 {
  const half = high ? i32x4.shuffle(sum4, sum4, 2, 3, 0, 1) : sum4
  return f64x2.add(acc, f64x2.promote_low_f32x4(half))
}

/** e·(x − max) for four lanes; 0 where e underflowed to 0 (x − max may be −Inf there: 0·−Inf is NaN). */
// @ts-ignore: decorator
@inline
export function shiftedTerm (e: v128, d: v128, clamp: bool): v128 {
  const t = f32x4.mul(e, d)
  return clamp ? v128.andnot(t, f32x4.lt(d, f32x4.splat(EXP_UNDERFLOW))) : t
}

/**
 * The first index of `max` in the row: torch.argmax's lowest index on ties. Only for the
 * analytics outputs; the row is in cache by now, and the scan stops at the first hit.
 */
// @ts-ignore: decorator
@inline
export function firstIndexOf (row: usize, vocab: i32, dtype: i32, max: f32): i32 {
  const m = f32x4.splat(max)
  let i = 0
  for (; i + 16 <= vocab; i += 16) {
    const hit = v128.or(
      v128.or(f32x4.eq(load4(row, i, dtype), m), f32x4.eq(load4(row, i + 4, dtype), m)),
      v128.or(f32x4.eq(load4(row, i + 8, dtype), m), f32x4.eq(load4(row, i + 12, dtype), m))
    )
    if (v128.any_true(hit)) break
  }
  for (; i < vocab; i++) {
    if (<f32>load1(row, i, dtype) == max) return i
  }
  return 0
}


// tanh(y)/y ≈ P(y²) on |y| ≤ TANH_POLY_LIMIT: a least-relative-error fit of degree 4 in y², under
// 1.4 ulp (1.1e-7 relative) in float32 arithmetic. Past it, tanh is (1 − u)/(1 + u) with
// u = exp(−2|y|) ≤ e⁻¹, where 1 − u loses nothing.
const TANH_POLY_LIMIT: f32 = 0.5
const TANH_P0: f32 = 0.9999999868716493
const TANH_P1: f32 = -0.3333306939167263
const TANH_P2: f32 = 0.13324779270775206
const TANH_P3: f32 = -0.05298607230016997
const TANH_P4: f32 = 0.017135000660430236

/**
 * The softcap of four lanes whose |x| is at most TANH_POLY_LIMIT·c (`invCap` = 1/c): the
 * polynomial alone, which is all most language-model rows need.
 */
// @ts-ignore: decorator
@inline
export function softcapNear4 (x: v128, cap: f32, invCap: f32): v128 {
  // c·tanh(x/c) = x·P((x/c)²): the cap and its inverse cancel outside P. Estrin's scheme keeps
  // the dependency chain short; the exp that follows is long already.
  const y = f32x4.mul(x, f32x4.splat(invCap))
  const q = f32x4.mul(y, y)
  const q2 = f32x4.mul(q, q)
  const low = f32x4.add(f32x4.mul(q, f32x4.splat(TANH_P1)), f32x4.splat(TANH_P0))
  const mid = f32x4.add(f32x4.mul(q, f32x4.splat(TANH_P3)), f32x4.splat(TANH_P2))
  const high = f32x4.add(mid, f32x4.mul(q2, f32x4.splat(TANH_P4)))
  return f32x4.mul(x, f32x4.add(low, f32x4.mul(q2, high)))
}

/** Whether a row whose logits lie in [lowest, highest] may take softcapNear4. */
// @ts-ignore: decorator
@inline
export function softcapIsNear (lowest: f32, highest: f32, cap: f64): bool {
  const limit = <f64>TANH_POLY_LIMIT * cap
  return <f64>highest <= limit && <f64>lowest >= -limit
}

/**
 * The softcap of four lanes: c·tanh(x/c) (Gemma 2), `invCap` = 1/c. A masked logit (−Inf) stays
 * −Inf, as PyTorch's masking means it (tanh would bring it back as −c). NaN and +Inf never get
 * here: the max pass refuses their rows first.
 */
// @ts-ignore: decorator
@inline
export function softcap4 (x: v128, cap: f32, invCap: f32): v128 {
  const y = f32x4.mul(x, f32x4.splat(invCap))
  const a = f32x4.abs(y)
  const far = f32x4.gt(a, f32x4.splat(TANH_POLY_LIMIT))
  let z = softcapNear4(x, cap, invCap)
  if (v128.any_true(far)) {
    // exp(−2|y|) for |y| beyond 43 is below float32's range: 1.6e−38 then, and tanh is 1.
    const u = expNonPositive(f32x4.pmax(f32x4.mul(a, f32x4.splat(-2)), f32x4.splat(-87)), false)
    const magnitude = f32x4.div(f32x4.sub(f32x4.splat(1), u), f32x4.add(f32x4.splat(1), u))
    const signed = v128.or(magnitude, v128.and(y, i32x4.splat(0x80000000)))
    z = v128.bitselect(f32x4.mul(signed, f32x4.splat(cap)), z, far)
  }
  return v128.bitselect(f32x4.splat(-Infinity), z, f32x4.eq(x, f32x4.splat(-Infinity)))
}

/** d(c·tanh(x/c))/dx = 1 − tanh² = 1 − (z/c)² for four softcapped lanes z; 0 where masked (a constant). */
// @ts-ignore: decorator
@inline
export function softcapSlope4 (z: v128, invCap: f32): v128 {
  const t = f32x4.mul(z, f32x4.splat(invCap))
  const slope = f32x4.sub(f32x4.splat(1), f32x4.mul(t, t))
  return v128.andnot(slope, f32x4.eq(z, f32x4.splat(-Infinity)))
}

// The next row's max and min, found while this row is summed: its trip from main memory then
// overlaps this row's exps instead of being a pass of its own. A NaN is not looked for there
// (pmax passes over it): it makes that row's own sum NaN, which the row checks. Wasm globals: each
// instance (each worker) has its own.
export let aheadMax: f32 = 0
export let aheadMin: f32 = 0

/** Records what a lookahead found: `high`/`low` the running max and min vectors, then the tail scalars. */
// @ts-ignore: decorator
@inline
export function setAhead (high: v128, low: v128, tailMax: f32, tailMin: f32): void {
  aheadMax = max(horizontalMax(high), tailMax)
  aheadMin = min(horizontalMin(low), tailMin)
}

/**
 * The softcap of one logit through the vector path, so that it is bit for bit what the passes
 * computed for it: a difference of two capped logits is then exact where they are equal.
 */
// @ts-ignore: decorator
@inline
export function softcapOf (x: f32, cap: f32): f32 {
  return f32x4.extract_lane(softcap4(f32x4.splat(x), cap, 1 / cap), 0)
}

/**
 * The first index of the row's largest capped logit, `max` the raw max: torch.argmax over the
 * capped row in float64. Below 10·c the cap is strictly increasing at float32 spacing, so that
 * is the raw argmax; past it tanh saturates, and logits that differ can cap to the same value.
 */
export function cappedArgmax (row: usize, vocab: i32, dtype: i32, max: f32, cap: f64): i32 {
  const saturated = 10 * cap
  if (<f64>max < saturated) return firstIndexOf(row, vocab, dtype, max)
  const top = softcap1(<f64>max, cap)
  for (let i = 0; i < vocab; i++) {
    const x = load1(row, i, dtype)
    if (x >= saturated && softcap1(x, cap) == top) return i
  }
  return firstIndexOf(row, vocab, dtype, max)
}

/** The softcap of one logit in float64 (−Inf stays −Inf). */
// @ts-ignore: decorator
@inline
export function softcap1 (x: f64, cap: f64): f64 {
  return x == -Infinity ? x : cap * Math.tanh(x / cap)
}

/**
 * Σ_c w_c·(x_c − shift) in float64 over a row of logits (w all 1 when `weight` is 0): the
 * smoothing term, formed on the shifted logits so that a large shift loses nothing.
 */
// @ts-ignore: decorator
@inline
export function shiftedWeightedSum (row: usize, vocab: i32, dtype: i32, weight: usize, shift: f32): f64 {
  // x − shift is formed in float64: in float32 it overflows to −Inf for logits of opposite signs
  // near float32's limits (−3e38 − 3e38), where the true sum is finite.
  const s = f64x2.splat(<f64>shift)
  let low = f64x2.splat(0)
  let high = f64x2.splat(0)
  let i = 0
  for (; i + 4 <= vocab; i += 4) {
    const x = load4(row, i, dtype)
    let dLow = f64x2.sub(f64x2.promote_low_f32x4(x), s)
    let dHigh = f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1)), s)
    if (weight != 0) {
      const w = v128.load(weight + (<usize>i << 2))
      dLow = f64x2.mul(dLow, f64x2.promote_low_f32x4(w))
      dHigh = f64x2.mul(dHigh, f64x2.promote_low_f32x4(i32x4.shuffle(w, w, 2, 3, 0, 1)))
    }
    low = f64x2.add(low, dLow)
    high = f64x2.add(high, dHigh)
  }
  const acc = f64x2.add(low, high)
  let sum = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
  for (; i < vocab; i++) {
    const v = load1(row, i, dtype) - <f64>shift
    sum += weight == 0 ? v : v * <f64>load<f32>(weight + (<usize>i << 2))
  }
  return sum
}
