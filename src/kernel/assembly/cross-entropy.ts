// The fused cross-entropy kernel in AssemblyScript, compiled to WebAssembly with SIMD (f32x4).
//
// It runs on an imported, shared memory: the route writes a request's tensors into it and every
// worker instantiates this module over the same memory, so nothing is copied on the way in or out.
// The module therefore owns no memory of its own: no globals in memory, no allocation, no data
// segments; every address is an argument. It mirrors src/kernel/cross-entropy.ts (the plain
// reference), which the tests hold it to.
//
// Per row (V logits x, target y, log-sum-exp lse, weights w, smoothing ε, W_all = Σ w):
//   pass 1  max over the row (and, with smoothing, Σ w_c·x_c)
//   pass 2  e_c = exp(x_c − max), summed in float64; with gradients, e_c is stored in place
//   pass 3  (gradients only) g_c = e_c·probScale/Σe − softScale·w_c, then the target's entry
//           again in float64: probScale·p_y − softScale·w_y − hardScale
// Logits are F32, F16 or BF16 (decoded in registers, never copied); targets, weights and
// gradients are I32, F32 and F32.

// Logit dtypes, as the host passes them.
export const DTYPE_F32: i32 = 0
export const DTYPE_F16: i32 = 1
export const DTYPE_BF16: i32 = 2

// What `rows` returns when every row was valid; otherwise it returns the first invalid row and
// writes INVALID_* into its tokenLoss slot as the reason.
export const ALL_ROWS_VALID: i32 = -1
export const INVALID_NOT_FINITE: f64 = 1 // a NaN or +Inf logit
export const INVALID_ALL_MASKED: f64 = 2 // every logit is −Inf
export const INVALID_TARGET_MASKED: f64 = 3 // the target's own logit is −Inf
// What `rows` returns when its task was cancelled (its control word says TASK_CANCELLED) before
// it had finished: the rows after the one it stopped at were not computed.
export const ROWS_CANCELLED: i32 = -2
export const TASK_CANCELLED: i32 = -1
// With `stats` (not 0), each row gets three float64s there, at these byte offsets: its entropy
// (0 where ignored), its log-sum-exp (0 where ignored) and the first index of its max.
export const STATS_BYTES: usize = 24
const STATS_ENTROPY: usize = 0
const STATS_LOG_SUM_EXP: usize = 8
const STATS_ARGMAX: usize = 16

// Below this, exp(x) underflows float32; such terms are taken as exactly 0 (as exp(−Inf) is).
const EXP_UNDERFLOW: f32 = -87.33654
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
function expNonPositive (x: v128, clamp: bool): v128 {
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
function decodeHalves (halves: v128, dtype: i32): v128 {
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
function load4 (row: usize, i: i32, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(row + (<usize>i << 2))
  return decodeHalves(v128.load16x4_u(row + (<usize>i << 1)), dtype)
}

// One logit, decoded into every lane (for the tails of rows).
// @ts-ignore: decorator
@inline
function load4Scalar (row: usize, i: i32, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return f32x4.splat(load<f32>(row + (<usize>i << 2)))
  return decodeHalves(i32x4.splat(<i32>load<u16>(row + (<usize>i << 1))), dtype)
}

// One logit as f64.
// @ts-ignore: decorator
@inline
function load1 (row: usize, i: i32, dtype: i32): f64 {
  return <f64>f32x4.extract_lane(load4Scalar(row, i, dtype), 0)
}

// @ts-ignore: decorator
@inline
function horizontalMax (v: v128): f32 {
  const m = f32x4.pmax(v, i32x4.shuffle(v, v, 2, 3, 0, 1))
  return max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1))
}

// The smallest logit of the row rowMax last read (NaN aside).
let rowMinimum: f32 = 0

// @ts-ignore: decorator
@inline
function horizontalMin (v: v128): f32 {
  const m = f32x4.pmin(v, i32x4.shuffle(v, v, 2, 3, 0, 1))
  return min(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1))
}

/**
 * Largest logit of a row, or NaN if any logit is NaN; the smallest goes to rowMinimum. f32x4.pmax is a single instruction where
 * f32x4.max (which propagates NaN) is several, so NaN is tracked on the side with x ≠ x.
 */
// @ts-ignore: decorator
@inline
function rowMax (row: usize, vocab: i32, dtype: i32): f32 {
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
function promoteAndAdd (acc: v128, sum4: v128, high: bool): v128 {
  const half = high ? i32x4.shuffle(sum4, sum4, 2, 3, 0, 1) : sum4
  return f64x2.add(acc, f64x2.promote_low_f32x4(half))
}

// The next row's max, found by rowSumExp while it works on this row (see there). Wasm globals
// belong to the instance, not to the shared memory, so each worker has its own.
let lookaheadMax: f32 = 0
let lookaheadMin: f32 = 0

// Σ e·(x − max) of the row rowSumExp last summed with `entropy` set: H = log Σe − Σ e·(x − max)/Σe.
let lastShiftedSum: f64 = 0

/** e·(x − max) for four lanes; 0 where e underflowed to 0 (x − max may be −Inf there: 0·−Inf is NaN). */
// @ts-ignore: decorator
@inline
function shiftedTerm (e: v128, d: v128, clamp: bool): v128 {
  const t = f32x4.mul(e, d)
  return clamp ? v128.andnot(t, f32x4.lt(d, f32x4.splat(EXP_UNDERFLOW))) : t
}

/**
 * The first index of `max` in the row: torch.argmax's lowest index on ties. Only for the
 * analytics outputs; the row is in cache by now, and the scan stops at the first hit.
 */
// @ts-ignore: decorator
@inline
function firstIndexOf (row: usize, vocab: i32, dtype: i32, max: f32): i32 {
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

/** Σ_c w_c·x_c (Σ x_c without weights) in float64, for the smoothing term. */
function weightedLogitSum (row: usize, vocab: i32, dtype: i32, weight: usize): f64 {
  let sum: f64 = 0
  for (let c = 0; c < vocab; c++) {
    const x = load1(row, c, dtype)
    sum += weight == 0 ? x : <f64>load<f32>(weight + (<usize>c << 2)) * x
  }
  return sum
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

/** The body of `rows` for one logit dtype (a constant after inlining). */
// @ts-ignore: decorator
@inline
function rowsOf (
  logits: usize,
  dtype: i32,
  targets: usize,
  rowStart: i32,
  rowEnd: i32,
  vocab: i32,
  ignoreIndex: i32,
  labelSmoothing: f64,
  weight: usize,
  classWeightSum: f64,
  gradScale: f64,
  tokenLoss: usize,
  nll: usize,
  gradients: usize,
  control: usize,
  stats: usize,
  zGrad: f64
): i32 {
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
    if (m != m || m == Infinity) {
      store<f64>(lossSlot, INVALID_NOT_FINITE)
      return r
    }
    const statsSlot = stats + <usize>r * STATS_BYTES
    if (target == ignoreIndex) {
      // A padding row has no sum to show a NaN, so it gets a max pass of its own.
      if (maxKnown && isNaN(rowMax(row, vocab, dtype))) {
        store<f64>(lossSlot, INVALID_NOT_FINITE)
        return r
      }
      store<f64>(lossSlot, 0)
      store<f64>(nllSlot, 0)
      if (stats != 0) {
        store<f64>(statsSlot, 0, STATS_ENTROPY)
        store<f64>(statsSlot, 0, STATS_LOG_SUM_EXP)
        store<f64>(statsSlot, <f64>firstIndexOf(row, vocab, dtype, m), STATS_ARGMAX)
      }
      if (gradients != 0) {
        flushPending(vocab)
        memory.fill(gradRow, 0, <usize>vocab << 2)
      }
      maxKnown = false
      continue
    }
    const y = <i32>target

    if (m == -Infinity) {
      // A NaN beside −Infs can hide from a max found ahead; either way the row is refused.
      store<f64>(lossSlot, maxKnown && isNaN(rowMax(row, vocab, dtype)) ? INVALID_NOT_FINITE : INVALID_ALL_MASKED)
      return r
    }
    const xTarget = load1(row, y, dtype)
    if (xTarget == -Infinity) {
      store<f64>(lossSlot, INVALID_TARGET_MASKED)
      return r
    }

    const next = row + (<usize>vocab << elementShift)
    const hasNext = r + 1 < rowEnd
    // Only a row spread wider than the float32 exp range (or holding −Inf) needs the underflow
    // guard; language-model rows almost never are.
    const sumExp =
      lowest - m < EXP_UNDERFLOW
        ? sumRowOf(row, vocab, dtype, m, gradRow, gradients != 0, next, hasNext, true, stats != 0)
        : sumRowOf(row, vocab, dtype, m, gradRow, gradients != 0, next, hasNext, false, stats != 0)
    maxKnown = hasNext
    if (sumExp != sumExp) {
      store<f64>(lossSlot, INVALID_NOT_FINITE)
      return r
    }
    const logSumExp = <f64>m + Math.log(sumExp)
    const rowNll = logSumExp - xTarget
    const targetWeight: f64 = weight == 0 ? 1 : <f64>load<f32>(weight + (<usize>y << 2))
    let loss = (1 - labelSmoothing) * targetWeight * rowNll
    if (labelSmoothing > 0) {
      loss += smoothingPerClass * (classWeightSum * logSumExp - weightedLogitSum(row, vocab, dtype, weight))
    }
    store<f64>(lossSlot, loss)
    store<f64>(nllSlot, rowNll)
    if (stats != 0) {
      store<f64>(statsSlot, Math.log(sumExp) - lastShiftedSum / sumExp, STATS_ENTROPY)
      store<f64>(statsSlot, logSumExp, STATS_LOG_SUM_EXP)
      store<f64>(statsSlot, <f64>firstIndexOf(row, vocab, dtype, m), STATS_ARGMAX)
    }

    if (gradients != 0) {
      const hardScale = gradScale * (1 - labelSmoothing) * targetWeight
      const softScale = gradScale * smoothingPerClass
      // z-loss, z·lse² a counted row, adds zGrad·lse·p_c (zGrad = 2z, scaled by the reduction).
      const probScale = hardScale + softScale * classWeightSum + zGrad * logSumExp
      // The target's entry once more in float64, rounded once (see the reference kernel); it is
      // written after the row's last pass.
      const targetValue = <f32>(probScale * Math.exp(xTarget - logSumExp) - softScale * targetWeight - hardScale)
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
 * Rows [rowStart, rowEnd) of a (rows × vocab) batch; see the module comment. Targets are
 * validated by the host (each is ignoreIndex or in [0, vocab)); logits are checked here, in the
 * max pass, at no extra cost. Writes tokenLoss[row] and nll[row] (float64) and, when
 * `gradients` is not 0, the row's gradient (float32). `weight` 0 means all ones. Returns
 * ALL_ROWS_VALID, or the first invalid row (its tokenLoss slot says why), or ROWS_CANCELLED
 * when the int32 at `control` (if not 0) turned TASK_CANCELLED before the last row. With `stats`
 * not 0, also each row's entropy, log-sum-exp and argmax (see STATS_BYTES). `zGrad` (2·z_loss,
 * times 1/count under mean) adds the z-loss's gradient; its loss is added by the host.
 *
 * Each dtype gets its own copy of the loops, with the dtype a constant in it: a branch on the
 * dtype inside the inner loops would cost more than the exp. The copies are three functions
 * (rowsF32, rowsF16, rowsBF16), not one: Binaryen's coalesce-locals pass is quadratic in a
 * function's locals, and the three inlined into `rows` took it two minutes where apart they take
 * seconds, for the same code.
 */
export function rows (
  logits: usize,
  dtype: i32,
  targets: usize,
  rowStart: i32,
  rowEnd: i32,
  vocab: i32,
  ignoreIndex: i32,
  labelSmoothing: f64,
  weight: usize,
  classWeightSum: f64,
  gradScale: f64,
  tokenLoss: usize,
  nll: usize,
  gradients: usize,
  control: usize,
  stats: usize,
  zGrad: f64
): i32 {
  if (dtype == DTYPE_F16) return rowsF16(logits, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
  if (dtype == DTYPE_BF16) return rowsBF16(logits, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
  return rowsF32(logits, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
}

function rowsF32 (
  logits: usize,
  targets: usize,
  rowStart: i32,
  rowEnd: i32,
  vocab: i32,
  ignoreIndex: i32,
  labelSmoothing: f64,
  weight: usize,
  classWeightSum: f64,
  gradScale: f64,
  tokenLoss: usize,
  nll: usize,
  gradients: usize,
  control: usize,
  stats: usize,
  zGrad: f64
): i32 {
  return rowsOf(logits, DTYPE_F32, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
}

function rowsF16 (
  logits: usize,
  targets: usize,
  rowStart: i32,
  rowEnd: i32,
  vocab: i32,
  ignoreIndex: i32,
  labelSmoothing: f64,
  weight: usize,
  classWeightSum: f64,
  gradScale: f64,
  tokenLoss: usize,
  nll: usize,
  gradients: usize,
  control: usize,
  stats: usize,
  zGrad: f64
): i32 {
  return rowsOf(logits, DTYPE_F16, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
}

function rowsBF16 (
  logits: usize,
  targets: usize,
  rowStart: i32,
  rowEnd: i32,
  vocab: i32,
  ignoreIndex: i32,
  labelSmoothing: f64,
  weight: usize,
  classWeightSum: f64,
  gradScale: f64,
  tokenLoss: usize,
  nll: usize,
  gradients: usize,
  control: usize,
  stats: usize,
  zGrad: f64
): i32 {
  return rowsOf(logits, DTYPE_BF16, targets, rowStart, rowEnd, vocab, ignoreIndex, labelSmoothing, weight, classWeightSum, gradScale, tokenLoss, nll, gradients, control, stats, zGrad)
}
