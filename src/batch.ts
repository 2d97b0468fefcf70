import { ANALYTICS_OUTPUTS, type OutputName, type Reduction } from '../schemas/cross-entropy.js'
import { ROW_STATS } from './kernel/stats.js'
import type { LogitsDtype } from './kernel/wasm.js'
import { type ArenaGroup, blockBytes } from './pool/arena.js'

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
  /** Kernel memory, every block as the arena counts it: the body already in memory and every allocation still to come. */
  bytes: number
}

/** Throws (413, or 503 while memory is busy) when a batch of this size cannot be taken now. */
export type Admission = (size: BatchSize) => void

/** Whether a cross-entropy request makes the kernel write its row stats (analytics, or z-loss, which needs each lse). */
export function needsRowStats(outputs: ReadonlySet<OutputName>, zLoss: number): boolean {
  return zLoss > 0 || ANALYTICS_OUTPUTS.some((name) => outputs.has(name))
}

/** What sizes a cross-entropy request's allocations. */
export interface CrossEntropyPlanInput {
  rows: number
  vocab: number
  /** JSON tensors are decoded into allocations of their own; safetensors ones stay in the body. */
  format: 'json' | 'safetensors'
  softTargets: boolean
  weight: boolean
  gradients: boolean
  rowStats: boolean
  /** Byte lengths of tensors a safetensors sender misaligned, which are copied once to align them. */
  alignedCopies?: readonly number[]
}

/**
 * Every allocation one cross-entropy request makes in kernel memory beside its body, in bytes, as
 * the codecs and computeCrossEntropy make them: admission adds these up before anything is
 * allocated, so a request that can never fit is refused whatever it asks for.
 */
export function crossEntropyAllocations(plan: CrossEntropyPlanInput): number[] {
  const { rows, vocab } = plan
  const elements = rows * vocab
  const inputs =
    plan.format === 'json'
      ? [elements * 4, ...(plan.softTargets ? [elements * 4] : []), ...(plan.weight ? [vocab * 4] : [])]
      : [...(plan.alignedCopies ?? [])]
  return [
    ...inputs,
    // targets as int32 (zeros beside soft targets), token losses and plain NLL (float64)
    rows * 4,
    rows * 8,
    rows * 8,
    ...(plan.gradients ? [elements * 4] : []),
    ...(plan.rowStats ? [rows * ROW_STATS * 8] : [])
  ]
}

/** What sizes a logprobs request's allocations. */
export interface LogprobsPlanInput {
  rows: number
  vocab: number
  format: 'json' | 'safetensors'
  targets: boolean
  topK: number
  entropy: boolean
  alignedCopies?: readonly number[]
}

/** Every allocation one logprobs request makes beside its body, in bytes (see crossEntropyAllocations). */
export function logprobsAllocations(plan: LogprobsPlanInput): number[] {
  const { rows, vocab, topK } = plan
  return [
    ...(plan.format === 'json' ? [rows * vocab * 4] : [...(plan.alignedCopies ?? [])]),
    ...(plan.targets ? [rows * 4, rows * 8] : []),
    ...(topK > 0 ? [rows * topK * 4, rows * topK * 8] : []),
    ...(plan.entropy ? [rows * 8] : [])
  ]
}

/** Kernel memory for a body already in memory (0 for none) and the allocations still to come. */
export function planBytes(bodyBytes: number, allocations: readonly number[]): number {
  return (bodyBytes > 0 ? blockBytes(bodyBytes) : 0) + allocations.reduce((sum, bytes) => sum + blockBytes(bytes), 0)
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
