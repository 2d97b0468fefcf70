import type { OutputName, Reduction } from '../schemas/cross-entropy.js'
import type { LogitsDtype } from './kernel/wasm.js'
import type { ArenaGroup } from './pool/arena.js'

/**
 * One cross-entropy request, flattened to (rows, vocab) inside the kernel's shared memory, so
 * that every worker reads it in place. `memory` owns the views; release it once the answer is built.
 */
export interface CrossEntropyBatch {
  memory: ArenaGroup
  /** rows × vocab logits, row-major: float32, or the raw 16-bit words of F16/BF16. */
  logits: Float32Array | Uint16Array
  logitsDtype: LogitsDtype
  /** One class index per row, or `ignoreIndex`; already checked against the vocabulary. */
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
  /** z-loss coefficient: z·lse² joins each counted token's loss (0: none). */
  zLoss: number
  /** c > 0: logits become c·tanh(x/c) before everything else (0: none). */
  softcap: number
  /**
   * (rows × vocab) class probabilities sent instead of class indices, or null. With them every
   * row counts (`targets` is all zeros and unread) and `mean` divides by the number of rows.
   */
  softTargets: Float32Array | null
  outputs: ReadonlySet<OutputName>
}

/** What a request will need, known before anything large is allocated for it. */
export interface BatchSize {
  /** B·T·V */
  elements: number
  logitsShape: readonly number[]
  /** Kernel memory, as batchBytes counts it (plus a body already in memory). */
  bytes: number
}

/** Throws (413, or 503 while memory is busy) when a batch of this size cannot be taken now. */
export type Admission = (size: BatchSize) => void

/** Kernel memory one request needs: its tensors and every output, with room for alignment. */
export function batchBytes(rows: number, vocab: number, bytesPerLogit: number, gradients: boolean): number {
  const perTensorSlack = 128
  const inputs = rows * vocab * bytesPerLogit + rows * 4 + vocab * 4
  const outputs = rows * 16 + (gradients ? rows * vocab * 4 : 0)
  return inputs + outputs + 6 * perTensorSlack
}

/** A logprobs request, decoded into kernel memory. */
export interface LogprobsBatch {
  memory: ArenaGroup
  logits: Float32Array | Uint16Array
  logitsDtype: LogitsDtype
  /** null when no targets were sent. */
  targets: Int32Array | null
  rows: number
  vocab: number
  logitsShape: number[]
  /** The leading dimensions of logits: (B, T) or (N). */
  leadingShape: number[]
  ignoreIndex: number
  /** 0 for no top-k output. */
  topK: number
  /** 0 for none. */
  softcap: number
  temperature: number
  entropy: boolean
}

/** Kernel memory one logprobs request needs: its tensors and every output, with room for alignment. */
export function logprobsBytes(rows: number, vocab: number, bytesPerLogit: number, topK: number): number {
  const perTensorSlack = 128
  return rows * vocab * bytesPerLogit + rows * 4 + rows * (8 + 8 + topK * 12) + 6 * perTensorSlack
}
