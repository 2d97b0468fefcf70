import type { OutputName, Reduction } from '../schemas/cross-entropy.js'

/**
 * One cross-entropy request, flattened to (rows, vocab) in SharedArrayBuffer-backed arrays so
 * that every worker in the pool reads the same memory without a copy.
 */
export interface CrossEntropyBatch {
  /** rows × vocab float32 logits, row-major. */
  logits: Float32Array
  /** One class index per row, or `ignoreIndex`. */
  targets: Int32Array
  rows: number
  vocab: number
  /** The caller's shapes, for reshaping the outputs: (B, T, V) or (N, V), and (B, T) or (N). */
  logitsShape: number[]
  targetsShape: number[]
  weight: Float32Array | null
  reduction: Reduction
  ignoreIndex: number
  labelSmoothing: number
  outputs: ReadonlySet<OutputName>
}

export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT))
}

export function sharedFloat64(length: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(length * Float64Array.BYTES_PER_ELEMENT))
}

export function sharedInt32(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * Int32Array.BYTES_PER_ELEMENT))
}
