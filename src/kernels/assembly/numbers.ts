// Decimal numbers in and out of the kernel: JSON number text → binary64 (correctly rounded), and
// float32 → the shortest decimal that reads back to it.
//
// Reading is Clinger's fast path (an exact integer times an exact power of ten), then Lemire's
// Eisel–Lemire algorithm with 128-bit products of the powers of five (./number-tables.ts). With
// more than 19 significant digits the first 19 are read as w, and w and w + 1 must give the same
// double. What neither decides (about one number in 10^9 of random input, and some crafted ones)
// is flagged `undecided`, and the caller reads it exactly another way. Numbers of the usual shape
// (-d.ddd, up to 19 digits, no exponent) have their digits found by two 16-byte SIMD compares
// and read eight at a time, and so do the wider shapes of probabilities (zeros after "0.", an
// exponent of up to three digits), in a helper of their own; a float32 reading may skip
// Eisel–Lemire when a binary64 product already decides the float32.
//
// Printing is Ryu's float32 case (Adams, PLDI 2018): the interval of decimals that round to the
// float, scaled by 64-bit products, and its shortest member; then the digits laid out as
// ECMAScript's Number::toString lays them out.

import {
  F32_POW5,
  F32_POW5_INV,
  POW5_128,
  POW5_128_MAX_Q,
  POW5_128_MIN_Q,
  POW10_F64,
  POW10_F64_MAX,
  POW10_F64_MIN
} from './number-tables'

const CHAR_0: u32 = 0x30
const CHAR_MINUS: u32 = 0x2d
const CHAR_PLUS: u32 = 0x2b
const CHAR_DOT: u32 = 0x2e

// Results of parseNumber besides its return value (globals are per instance, so per worker).
export let parsedValue: f64 = 0
export let parsedUndecided: bool = false

// The high and low halves of the last mul128.
let productHigh: u64 = 0
let productLow: u64 = 0

// @ts-ignore: decorator
@inline
function mul128 (a: u64, b: u64): void {
  const aLo = a & 0xffffffff
  const aHi = a >> 32
  const bLo = b & 0xffffffff
  const bHi = b >> 32
  const p0 = aLo * bLo
  const p1 = aLo * bHi
  const p2 = aHi * bLo
  const p3 = aHi * bHi
  const middle = (p0 >> 32) + (p1 & 0xffffffff) + (p2 & 0xffffffff)
  productLow = (middle << 32) | (p0 & 0xffffffff)
  productHigh = p3 + (p1 >> 32) + (p2 >> 32) + (middle >> 32)
}

const EL_FAILED: u64 = 0xffffffffffffffff
const INFINITY_BITS: u64 = 0x7ff0000000000000

// w·10^q as binary64 bits (w ≠ 0), or EL_FAILED when the truncated product cannot decide.
function eiselLemire (w: u64, q: i64): u64 {
  if (q < <i64>POW5_128_MIN_Q) return 0
  if (q > <i64>POW5_128_MAX_Q) return INFINITY_BITS
  const lz = clz<u64>(w)
  w <<= lz
  const entry = POW5_128 + <usize>(q - <i64>POW5_128_MIN_Q) * 16
  mul128(w, load<u64>(entry))
  let high = productHigh
  let low = productLow
  // 55 bits are needed (52 + 3); when the bits below them are all ones the low half may carry.
  if ((high & 0x1ff) == 0x1ff) {
    mul128(w, load<u64>(entry, 8))
    low += productHigh
    if (productHigh > low) high++
  }
  if (low == 0xffffffffffffffff && (q < -27 || q > 55)) return EL_FAILED
  const upper = high >> 63
  const shift = upper + 9
  let mantissa = high >> shift
  let power2 = <i64>((((152170 + 65536) * q) >> 16) + 63) + <i64>upper - <i64>lz + 1023
  if (power2 <= 0) {
    // Subnormal (or zero).
    if (-power2 + 1 >= 64) return 0
    mantissa >>= <u64>(-power2 + 1)
    mantissa += mantissa & 1
    mantissa >>= 1
    power2 = mantissa < (<u64>1 << 52) ? 0 : 1
    return mantissa | (<u64>power2 << 52)
  }
  // Exactly halfway between two doubles only happens for small |q|: round to even there.
  if (low <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1) {
    if ((mantissa << shift) == high) mantissa &= ~(<u64>1)
  }
  mantissa += mantissa & 1
  mantissa >>= 1
  if (mantissa >= (<u64>2 << 52)) {
    mantissa = <u64>1 << 52
    power2++
  }
  mantissa &= ~(<u64>1 << 52)
  if (power2 >= 0x7ff) return INFINITY_BITS
  return mantissa | (<u64>power2 << 52)
}

// 10^0 … 10^22, each exact in binary64.
const POW10: usize = memory.data<f64>([
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
  1e20, 1e21, 1e22
])

// @ts-ignore: decorator
@inline
function isDigit (c: u32): bool {
  return c - CHAR_0 < 10
}

// Eight ASCII digits at once (little-endian u64), as fast_float does.
// @ts-ignore: decorator
@inline
function eightDigits (chunk: u64): bool {
  return (((chunk + 0x4646464646464646) | (chunk - 0x3030303030303030)) & 0x8080808080808080) == 0
}

// @ts-ignore: decorator
@inline
function eightDigitsValue (chunk: u64): u64 {
  chunk -= 0x3030303030303030
  chunk = chunk * 10 + (chunk >> 8)
  return (((chunk & 0x000000ff000000ff) * 0x000f424000000064) + (((chunk >> 16) & 0x000000ff000000ff) * 0x0000271000000001)) >> 32
}

// A float32 reading needs only <f32>d, d the correctly rounded double: a double close enough to
// the decimal gives the same float32 unless the decimal lies near a midpoint between two
// float32s. w and 10^k each rounded to binary64, and their product rounded, are within 2 ulps
// (of binary64) of w·10^k; if that product is more than 32 ulps from every float32 midpoint, and
// a normal float32, then the decimal, its double and the product all round to one float32.
// Otherwise Eisel–Lemire decides. About one number in 2^23 takes that way.
let shortcutValue: f64 = 0

// @ts-ignore: decorator
@inline
function singleShortcut (w: u64, exponent: i64): bool {
  const a = <f64>w * load<f64>(POW10_F64 + (<usize>(exponent - <i64>POW10_F64_MIN) << 3))
  const bits = reinterpret<u64>(a)
  // Normal as a float32: 2^-126 ≤ a < 2^128 (biased binary64 exponents 897 to 1150).
  if ((bits >> 52) - 897 > 1150 - 897) return false
  // The 29 bits below a float32's mantissa: a midpoint is 0x10000000.
  if ((bits & 0x1fffffff) - (0x10000000 - 32) <= 64) return false
  shortcutValue = a
  return true
}

// 10^0 … 10^19 as u64.
const POW10_U64: usize = memory.data<u64>([
  1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000, 10000000000, 100000000000,
  1000000000000, 10000000000000, 100000000000000, 1000000000000000, 10000000000000000, 100000000000000000,
  1000000000000000000, 10000000000000000000
])

// The value of the n (1 to 8) ASCII digits at q. The bytes after them may be anything: each
// byte's subtraction can only borrow from the byte after it, and the shift drops those bytes.
// @ts-ignore: decorator
@inline
function leadingDigitsValue (q: usize, n: usize): u64 {
  let chunk = (load<u64>(q) - 0x3030303030303030) << (<u64>(8 - n) << 3)
  chunk = chunk * 10 + (chunk >> 8)
  return (((chunk & 0x000000ff000000ff) * 0x000f424000000064) + (((chunk >> 16) & 0x000000ff000000ff) * 0x0000271000000001)) >> 32
}

// Which of the 16 bytes at q are ASCII digits, one bit each.
// @ts-ignore: decorator
@inline
function digitMask (q: usize): u32 {
  return i8x16.bitmask(i8x16.lt_u(i8x16.sub(v128.load(q), i8x16.splat(0x30)), i8x16.splat(10)))
}

// Which of the 16 bytes at q are ASCII zeros, one bit each.
// @ts-ignore: decorator
@inline
function zeroMask (q: usize): u32 {
  return i8x16.bitmask(i8x16.eq(v128.load(q), i8x16.splat(0x30)))
}

// The double nearest w·10^exponent (w's digits all read unless `truncated`), left in parsedValue
// (unsigned) with parsedUndecided: Clinger's fast path, then (for a float32 reading) the
// binary64 product, then Eisel–Lemire. What it cannot decide is flagged undecided, its value 0.
// parseNumber's byte-by-byte reading and wideNumber share it; parseCommonNumber keeps a copy
// without the range checks its shape never needs (sharing this made logits 6–15% slower to read
// in alternated kernel runs). Inlined: a call here made the probabilities' reading 6% slower.
// @ts-ignore: decorator
@inline
function decideValue (w: u64, exponent: i64, truncated: bool, single: bool): void {
  parsedUndecided = false
  let value: f64 = 0
  if (w != 0) {
    if (!truncated && exponent >= -22 && exponent <= 22 && w <= (<u64>1 << 53)) {
      // Clinger: an exact integer and an exact power of ten, one rounding.
      value = <f64>w
      value = exponent < 0 ? value / load<f64>(POW10 + (<usize>(-exponent) << 3)) : value * load<f64>(POW10 + (<usize>exponent << 3))
    } else if (single && !truncated && exponent >= POW10_F64_MIN && exponent <= POW10_F64_MAX && singleShortcut(w, exponent)) {
      value = shortcutValue
    } else {
      const bits = eiselLemire(w, exponent)
      if (bits == EL_FAILED || (truncated && eiselLemire(w + 1, exponent) != bits)) parsedUndecided = true
      value = reinterpret<f64>(bits == EL_FAILED ? 0 : bits)
    }
  }
  parsedValue = value
}

// What parseCommonNumber hands on: -?d{1,8}(.d+)?([eE][+-]?d{1,3})? with at most 19 significant
// digits (the zeros after "0." are not), its digits ending within the 32 bytes at start. That is
// what JSON.stringify and Python's json write for probabilities (0.000046743367205959314,
// 3.985238626758787e-7). Not inlined, so that the logits' path stays as small as it was. It
// starts after the integer digits (worth w): with `at` 0 the fraction of fractionDigits digits is
// still to read; otherwise it has been read, and `at` is the exponent's "e". Returns the number's
// end, or 0.
function wideNumber (
  negative: bool,
  start: usize,
  integerDigits: usize,
  w: u64,
  fractionDigits: usize,
  at: usize,
  end: usize,
  single: bool
): usize {
  let q = at
  if (q == 0) {
    if (fractionDigits == 0 || integerDigits + 1 + fractionDigits >= 32) return 0
    q = start + integerDigits + 1
    let left = fractionDigits
    if (w == 0) {
      const zeros = <usize>ctz(~((zeroMask(start) | (zeroMask(start + 16) << 16)) >> <u32>(integerDigits + 1)))
      q += zeros
      left -= zeros
    }
    if (integerDigits + left > 19) return 0
    while (left > 8) {
      w = w * 100000000 + leadingDigitsValue(q, 8)
      q += 8
      left -= 8
    }
    if (left > 0) {
      w = w * load<u64>(POW10_U64 + (left << 3)) + leadingDigitsValue(q, left)
      q += left
    }
  }
  let exponent = -<i64>fractionDigits
  let c = <u32>load<u8>(q)
  if ((c | 0x20) == 0x65) {
    // One to three digits (more, and the long way reads them).
    if (q + 6 > end) return 0
    q++
    c = <u32>load<u8>(q)
    const exponentNegative = c == CHAR_MINUS
    q += <usize>(c == CHAR_MINUS || c == CHAR_PLUS)
    const first = q
    let e: i64 = 0
    while (q < first + 3 && isDigit(<u32>load<u8>(q))) {
      e = e * 10 + <i64>(<u32>load<u8>(q) - CHAR_0)
      q++
    }
    if (q == first || isDigit(<u32>load<u8>(q))) return 0
    exponent += exponentNegative ? -e : e
  }
  // What the fast algorithms cannot decide, the long way reads (and flags).
  decideValue(w, exponent, false, single)
  if (parsedUndecided) return 0
  if (negative) parsedValue = -parsedValue
  return q
}

// The common shapes at once: -?d{1,8}(.d{1,16})? with at most 19 digits, no exponent, 32 bytes
// or more before `end`. Two 16-byte compares find where the digits stop. Returns the number's
// end, or 0 when it is of another shape (parseNumber then reads it byte by byte, and decides
// whether it is a number at all).
// @ts-ignore: decorator
@inline
function parseCommonNumber (p: usize, end: usize, single: bool): usize {
  const negative = <u32>load<u8>(p) == CHAR_MINUS
  const start = p + <usize>negative
  const mask = digitMask(start) | (digitMask(start + 16) << 16)
  const integerDigits = <usize>ctz(~mask)
  // No digit, a leading zero before more digits, or more than 8 digits: the long way.
  if (integerDigits - 1 >= 8 || (integerDigits > 1 && <u32>load<u8>(start) == CHAR_0)) return 0
  let w = leadingDigitsValue(start, integerDigits)
  let q = start + integerDigits
  let fractionDigits: usize = 0
  let c = <u32>load<u8>(q)
  if (c == CHAR_DOT) {
    fractionDigits = <usize>ctz(~(mask >> <u32>(integerDigits + 1)))
    if (fractionDigits == 0 || fractionDigits > 16 || integerDigits + fractionDigits > 19) {
      return wideNumber(negative, start, integerDigits, w, fractionDigits, 0, end, single)
    }
    q++
    if (fractionDigits > 8) {
      w = w * 100000000 + leadingDigitsValue(q, 8)
      w = w * load<u64>(POW10_U64 + ((fractionDigits - 8) << 3)) + leadingDigitsValue(q + 8, fractionDigits - 8)
    } else {
      w = w * load<u64>(POW10_U64 + (fractionDigits << 3)) + leadingDigitsValue(q, fractionDigits)
    }
    q += fractionDigits
    c = <u32>load<u8>(q)
  }
  if ((c | 0x20) == 0x65) return wideNumber(negative, start, integerDigits, w, fractionDigits, q, end, single)
  let value: f64 = 0
  if (w != 0) {
    const exponent = -<i64>fractionDigits
    if (w <= (<u64>1 << 53)) {
      value = <f64>w / load<f64>(POW10 + (fractionDigits << 3))
    } else if (single && singleShortcut(w, exponent)) {
      value = shortcutValue
    } else {
      // At most 19 digits: w is exact, and Eisel–Lemire fails only for exponents below −27.
      const bits = eiselLemire(w, exponent)
      if (bits == EL_FAILED) return 0
      value = reinterpret<f64>(bits)
    }
  }
  parsedUndecided = false
  parsedValue = negative ? -value : value
  return q
}

// Reads one JSON number at [p, end): its end, or 0 if the text there is not a JSON number. The
// value (correctly rounded to binary64) is left in parsedValue; parsedUndecided says the fast
// algorithms could not decide it, and parsedValue is then only close. With `single`, the value
// is only meant to be rounded on to float32, and parsedValue may be any double that rounds to
// the same float32 as the correctly rounded one (see singleShortcut).
// @ts-ignore: decorator
@inline
export function parseNumber (p: usize, end: usize, single: bool): usize {
  if (p + 33 <= end) {
    const q = parseCommonNumber(p, end, single)
    if (q != 0) return q
  }
  let negative = false
  if (p < end && <u32>load<u8>(p) == CHAR_MINUS) {
    negative = true
    p++
  }
  if (p >= end) return 0
  let w: u64 = 0
  // Significant digits held in w (at most 19); further nonzero digits make it truncated.
  let digits = 0
  let truncated = false
  let exponent: i64 = 0
  let c = <u32>load<u8>(p)
  if (c == CHAR_0) {
    p++
  } else if (isDigit(c)) {
    while (p + 8 <= end && digits <= 11) {
      const chunk = load<u64>(p)
      if (!eightDigits(chunk)) break
      w = w * 100000000 + eightDigitsValue(chunk)
      digits += 8
      p += 8
    }
    while (p < end) {
      c = <u32>load<u8>(p)
      if (!isDigit(c)) break
      if (digits < 19) {
        w = w * 10 + <u64>(c - CHAR_0)
        digits++
      } else {
        exponent++
        if (c != CHAR_0) truncated = true
      }
      p++
    }
  } else {
    return 0
  }
  if (p < end && <u32>load<u8>(p) == CHAR_DOT) {
    p++
    const fractionStart = p
    if (w == 0) {
      // Leading zeros of the fraction are not significant.
      while (p < end && <u32>load<u8>(p) == CHAR_0) {
        exponent--
        p++
      }
    }
    while (p + 8 <= end && digits <= 11) {
      const chunk = load<u64>(p)
      if (!eightDigits(chunk)) break
      // Past the skipped zeros the first digit is nonzero: all eight are significant.
      w = w * 100000000 + eightDigitsValue(chunk)
      digits += 8
      exponent -= 8
      p += 8
    }
    while (p < end) {
      c = <u32>load<u8>(p)
      if (!isDigit(c)) break
      if (digits < 19) {
        w = w * 10 + <u64>(c - CHAR_0)
        if (w != 0) digits++
        exponent--
      } else if (c != CHAR_0) {
        truncated = true
      }
      p++
    }
    if (p == fractionStart) return 0
  }
  if (p < end && (<u32>load<u8>(p) | 0x20) == 0x65) {
    p++
    let exponentNegative = false
    if (p < end) {
      c = <u32>load<u8>(p)
      if (c == CHAR_MINUS || c == CHAR_PLUS) {
        exponentNegative = c == CHAR_MINUS
        p++
      }
    }
    const exponentStart = p
    let e: i64 = 0
    while (p < end) {
      c = <u32>load<u8>(p)
      if (!isDigit(c)) break
      if (e < 100000000) e = e * 10 + <i64>(c - CHAR_0)
      p++
    }
    if (p == exponentStart) return 0
    exponent += exponentNegative ? -e : e
  }
  decideValue(w, exponent, truncated, single)
  if (negative) parsedValue = -parsedValue
  return p
}

// ---- float32 → shortest decimal --------------------------------------------------------------

const F32_POW5_INV_BITCOUNT: i32 = 59
const F32_POW5_BITCOUNT: i32 = 61

// @ts-ignore: decorator
@inline
function pow5bits (e: i32): i32 {
  return <i32>((<u32>e * 1217359) >> 19) + 1
}

// floor(e·log10(2)) for 0 ≤ e ≤ 1650, and floor(e·log10(5)) for 0 ≤ e ≤ 2620 (Ryu's constants:
// multiplies and shifts where a division would cost tens of cycles).
// @ts-ignore: decorator
@inline
function log10Pow2 (e: i32): i32 {
  return <i32>((<u32>e * 78913) >> 18)
}

// @ts-ignore: decorator
@inline
function log10Pow5 (e: i32): i32 {
  return <i32>((<u32>e * 732923) >> 20)
}

// @ts-ignore: decorator
@inline
function mulShift32 (m: u32, factor: u64, shift: i32): u32 {
  const low = <u64>m * (factor & 0xffffffff)
  const high = <u64>m * (factor >> 32)
  return <u32>(((low >> 32) + high) >> <u64>(shift - 32))
}

// @ts-ignore: decorator
@inline
function mulPow5Inv (m: u32, q: i32, shift: i32): u32 {
  return mulShift32(m, load<u64>(F32_POW5_INV + (<usize>q << 3)), shift)
}

// @ts-ignore: decorator
@inline
function mulPow5 (m: u32, i: i32, shift: i32): u32 {
  return mulShift32(m, load<u64>(F32_POW5 + (<usize>i << 3)), shift)
}

function pow5Factor (value: u32): i32 {
  let count = 0
  while (value > 0 && value % 5 == 0) {
    value /= 5
    count++
  }
  return count
}

// @ts-ignore: decorator
@inline
function decimalLength (v: u32): i32 {
  if (v >= 100000000) return 9
  if (v >= 10000000) return 8
  if (v >= 1000000) return 7
  if (v >= 100000) return 6
  if (v >= 10000) return 5
  if (v >= 1000) return 4
  if (v >= 100) return 3
  if (v >= 10) return 2
  return 1
}

// Writes x at `out` as ECMAScript would write the shortest decimal that reads back (through
// binary64, then float32) to x, e.g. 0.1, -2.5e-7, 1e+21; ±0 as 0 and -0, non-finite as null.
// Returns the bytes written (at most 22: -123456780000000000000); it may write scratch bytes
// after them, never past the 24th.
// @ts-ignore: decorator
@inline
export function printFloat32 (x: f32, out: usize): i32 {
  const bits = reinterpret<u32>(x)
  const sign = bits >> 31
  const ieeeMantissa = bits & 0x7fffff
  const ieeeExponent = (bits >> 23) & 0xff
  if (ieeeExponent == 0xff) {
    store<u32>(out, 0x6c6c756e) // null
    return 4
  }
  let n = 0
  if (sign != 0) {
    store<u8>(out, CHAR_MINUS)
    n = 1
  }
  if (ieeeExponent == 0 && ieeeMantissa == 0) {
    store<u8>(out + n, CHAR_0)
    return n + 1
  }
  let e2: i32
  let m2: u32
  if (ieeeExponent == 0) {
    e2 = 1 - 127 - 23 - 2
    m2 = ieeeMantissa
  } else {
    e2 = <i32>ieeeExponent - 127 - 23 - 2
    m2 = (1 << 23) | ieeeMantissa
  }
  const acceptBounds = (m2 & 1) == 0
  const mv = 4 * m2
  const mp = 4 * m2 + 2
  const mm = 4 * m2 - (m2 != (1 << 23) || ieeeExponent <= 1 ? 2 : 1)

  let vr: u32
  let vp: u32
  let vm: u32
  let e10: i32
  let vmTrailingZeros = false
  let vrTrailingZeros = false
  let lastRemovedDigit: u32 = 0
  if (e2 >= 0) {
    const q = log10Pow2(e2)
    e10 = q
    const k = F32_POW5_INV_BITCOUNT + pow5bits(q) - 1
    const i = -e2 + q + k
    vr = mulPow5Inv(mv, q, i)
    vp = mulPow5Inv(mp, q, i)
    vm = mulPow5Inv(mm, q, i)
    if (q != 0 && (vp - 1) / 10 <= vm / 10) {
      const l = F32_POW5_INV_BITCOUNT + pow5bits(q - 1) - 1
      lastRemovedDigit = mulPow5Inv(mv, q - 1, -e2 + q - 1 + l) % 10
    }
    if (q <= 9) {
      if (mv % 5 == 0) {
        vrTrailingZeros = pow5Factor(mv) >= q
      } else if (acceptBounds) {
        vmTrailingZeros = pow5Factor(mm) >= q
      } else if (pow5Factor(mp) >= q) {
        vp--
      }
    }
  } else {
    const q = log10Pow5(-e2)
    e10 = q + e2
    const i = -e2 - q
    const k = pow5bits(i) - F32_POW5_BITCOUNT
    let j = q - k
    vr = mulPow5(mv, i, j)
    vp = mulPow5(mp, i, j)
    vm = mulPow5(mm, i, j)
    if (q != 0 && (vp - 1) / 10 <= vm / 10) {
      j = q - 1 - (pow5bits(i + 1) - F32_POW5_BITCOUNT)
      lastRemovedDigit = mulPow5(mv, i + 1, j) % 10
    }
    if (q <= 1) {
      vrTrailingZeros = <u32>(~mv & 1) >= <u32>q
      if (acceptBounds) vmTrailingZeros = <u32>(~mm & 1) >= <u32>q
      else vp--
    } else if (q < 31) {
      vrTrailingZeros = (mv & ((<u32>1 << (q - 1)) - 1)) == 0
    }
  }

  // The shortest decimal in [vm, vp], rounded correctly when more than one digit is removed.
  const vpLength = decimalLength(vp)
  let removed = 0
  let output: u32
  if (vmTrailingZeros || vrTrailingZeros) {
    while (vp / 10 > vm / 10) {
      vmTrailingZeros = vmTrailingZeros && vm % 10 == 0
      vrTrailingZeros = vrTrailingZeros && lastRemovedDigit == 0
      lastRemovedDigit = vr % 10
      vr /= 10
      vp /= 10
      vm /= 10
      removed++
    }
    if (vmTrailingZeros) {
      while (vm % 10 == 0) {
        vrTrailingZeros = vrTrailingZeros && lastRemovedDigit == 0
        lastRemovedDigit = vr % 10
        vr /= 10
        vp /= 10
        vm /= 10
        removed++
      }
    }
    if (vrTrailingZeros && lastRemovedDigit == 5 && vr % 2 == 0) lastRemovedDigit = 4
    output = vr + <u32>((vr == vm && (!acceptBounds || !vmTrailingZeros)) || lastRemovedDigit >= 5)
  } else {
    // The common case: two digits at a time first, as Ryu's binary64 printer does.
    const vpDiv100 = vp / 100
    const vmDiv100 = vm / 100
    if (vpDiv100 > vmDiv100) {
      const vrDiv100 = vr / 100
      lastRemovedDigit = (vr - 100 * vrDiv100) / 10
      vr = vrDiv100
      vp = vpDiv100
      vm = vmDiv100
      removed = 2
    }
    for (;;) {
      const vpDiv10 = vp / 10
      const vmDiv10 = vm / 10
      if (vpDiv10 <= vmDiv10) break
      const vrDiv10 = vr / 10
      lastRemovedDigit = vr - 10 * vrDiv10
      vr = vrDiv10
      vp = vpDiv10
      vm = vmDiv10
      removed++
    }
    output = vr + <u32>(vr == vm || lastRemovedDigit >= 5)
  }
  const length = vpLength - removed
  return n + layOut(output, length, e10 + removed, out + n)
}

// Writes `digits` (a decimal of `length` digits, times 10^exponent10) as Number::toString does.
// It may write up to 8 bytes of scratch past the text it returns the length of; printRows leaves
// room for them, and writes over them.
// @ts-ignore: decorator
@inline
function layOut (digits: u32, length: i32, exponent10: i32, out: usize): i32 {
  // The decimal point sits after `point` digits (the spec's n).
  const point = length + exponent10
  if (length <= point && point <= 21) {
    writeDigits(digits, length, out)
    for (let i = length; i < point; i++) store<u8>(out + i, CHAR_0)
    return point
  }
  if (0 < point && point <= 21) {
    // d.ddd: the digits, then the fraction (at most 8 digits) moved one place on for the point.
    writeDigits(digits, length, out)
    store<u64>(out + point + 1, load<u64>(out + point))
    store<u8>(out + point, CHAR_DOT)
    return length + 1
  }
  if (-6 < point && point <= 0) {
    // 0.000ddd: at most five zeros after the point.
    store<u64>(out, 0x303030303030_2e30)
    writeDigits(digits, length, out + 2 - point)
    return 2 - point + length
  }
  // Exponential: d[.ddd]e±x.
  let n: i32
  if (length == 1) {
    store<u8>(out, CHAR_0 + digits)
    n = 1
  } else {
    writeDigits(digits, length, out + 1)
    store<u8>(out, load<u8>(out + 1))
    store<u8>(out + 1, CHAR_DOT)
    n = length + 1
  }
  store<u8>(out + n, 0x65)
  let e = point - 1
  store<u8>(out + n + 1, e < 0 ? CHAR_MINUS : CHAR_PLUS)
  n += 2
  if (e < 0) e = -e
  if (e >= 10) {
    store<u8>(out + n, CHAR_0 + <u32>(e / 10))
    n++
  }
  store<u8>(out + n, CHAR_0 + <u32>(e % 10))
  return n + 1
}

// Eight decimal digits of v < 10^8, with leading zeros, as ASCII in a little-endian u64 (the
// first digit in the lowest byte): split into halves of four, quarters of two and single digits,
// each split by a multiply and a shift in every lane at once.
// @ts-ignore: decorator
@inline
function eightAscii (v: u32): u64 {
  const high = v / 10000
  let x = <u64>high | (<u64>(v - high * 10000) << 32)
  // Each 32-bit lane (< 10^4) into two 16-bit lanes of < 100: q = floor(lane / 100).
  const hundreds = ((x * 10486) >> 20) & 0x0000007f_0000007f
  x = hundreds | ((x - hundreds * 100) << 16)
  // Each 16-bit lane (< 100) into two bytes of < 10: q = floor(lane / 10).
  const tens = ((x * 103) >> 10) & 0x000f000f_000f000f
  x = tens | ((x - tens * 10) << 8)
  return x + 0x30303030_30303030
}

// Writes the `length` digits of `digits` at `out`, and up to 8 bytes of scratch after them.
// @ts-ignore: decorator
@inline
function writeDigits (digits: u32, length: i32, out: usize): void {
  if (length > 8) {
    const first = digits / 100000000
    store<u8>(out, CHAR_0 + first)
    digits -= first * 100000000
    out++
    length = 8
  }
  store<u64>(out, eightAscii(digits) >> (<u64>(8 - length) << 3))
}
