import type { LogitsDtype } from '../engine/abi.js'

/**
 * Half-precision words ⇄ float32, pure functions for the few places that touch them in JavaScript: error
 * messages, tests, and gradients sent back as F16 or BF16. The kernel decodes logits itself.
 */

const scratch = new DataView(new ArrayBuffer(4))

export function bf16ToFloat(word: number): number {
  scratch.setUint32(0, word << 16)
  return scratch.getFloat32(0)
}

export function f16ToFloat(word: number): number {
  const sign = word & 0x8000 ? -1 : 1
  const exponent = (word >> 10) & 0x1f
  const mantissa = word & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

/** float32 → bfloat16, rounding to nearest even (NaN stays NaN). */
export function floatToBf16(value: number): number {
  scratch.setFloat32(0, value)
  const bits = scratch.getUint32(0)
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16
}

/** float32 → IEEE half, rounding to nearest even; overflow goes to ±Inf. */
export function floatToF16(value: number): number {
  scratch.setFloat32(0, value)
  const bits = scratch.getUint32(0)
  const sign = (bits >>> 16) & 0x8000
  const exponent = (bits >>> 23) & 0xff
  let mantissa = bits & 0x7fffff
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0)
  const halfExponent = exponent - 127 + 15
  if (halfExponent >= 0x1f) return sign | 0x7c00
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign
    mantissa |= 0x800000
    const shift = 14 - halfExponent
    const rounded = (mantissa + (1 << (shift - 1)) - 1 + ((mantissa >>> shift) & 1)) >>> shift
    return sign | rounded
  }
  const rounded = (mantissa + 0xfff + ((mantissa >>> 13) & 1)) >>> 13
  return (sign | (halfExponent << 10)) + rounded
}

/** One row of logits as plain numbers, whatever their dtype. */
export function decodeLogitRow(
  logits: Float32Array | Uint16Array,
  dtype: LogitsDtype,
  row: number,
  vocab: number
): number[] {
  const words = Array.from(logits.subarray(row * vocab, (row + 1) * vocab))
  if (dtype === 'F32') return words
  return words.map(dtype === 'BF16' ? bf16ToFloat : f16ToFloat)
}
