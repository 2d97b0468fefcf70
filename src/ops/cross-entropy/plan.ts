import { CROSS_ENTROPY_CALL, type LogitsDtype, ROW_STATS } from '../../engine/abi.js'
import type { Engine } from '../../engine/engine.js'
import { type Allocated, f32, f64, i32, u8 } from '../../engine/plan.js'
import type { RequestMemory } from '../../engine/request.js'
import type { Stage } from '../../engine/task.js'
import { admitPlan } from '../admit.js'
import { type CrossEntropyOptions, needsRowStats } from './options.js'

/** A cross-entropy request's shape, flattened to (rows, vocab) with the caller's shapes kept for the answer. */
export interface CrossEntropyShape {
  rows: number
  vocab: number
  /** (B, T, V) or (N, V), and (B, T) or (N). */
  logitsShape: number[]
  targetsShape: number[]
}

/** Where a request's tensors come from, which decides what must be allocated for them. */
export interface CrossEntropyInputs {
  /** JSON tensors are decoded into allocations of their own; safetensors ones stay in the body. */
  format: 'json' | 'safetensors'
  softTargets: boolean
  weight: boolean
  /** Byte lengths of safetensors tensors the sender misaligned for their dtype, copied once to read them. */
  copies?: { logits?: number; softTargets?: number; weight?: number }
}

/**
 * Every allocation one cross-entropy request makes beside its body, by name: what admission adds
 * up before anything is allocated, and what the codecs and the compute then use.
 */
export function crossEntropyPlan(shape: CrossEntropyShape, options: CrossEntropyOptions, inputs: CrossEntropyInputs) {
  const { rows, vocab } = shape
  const elements = rows * vocab
  const json = inputs.format === 'json'
  const copy = (bytes: number | undefined) => (bytes === undefined ? null : u8(bytes))
  return {
    logits: json ? f32(elements) : null,
    softTargets: json && inputs.softTargets ? f32(elements) : null,
    weight: json && inputs.weight ? f32(vocab) : null,
    logitsCopy: copy(inputs.copies?.logits),
    softTargetsCopy: copy(inputs.copies?.softTargets),
    weightCopy: copy(inputs.copies?.weight),
    // Class indices as int32 (zeros beside soft targets), then the kernel's outputs.
    targets: i32(rows),
    tokenLoss: f64(rows),
    nll: f64(rows),
    gradients: options.outputs.has('gradients') ? f32(elements) : null,
    stats: needsRowStats(options) ? f64(rows * ROW_STATS) : null,
    call: u8(CROSS_ENTROPY_CALL.bytes)
  }
}

export type CrossEntropyAllocations = Allocated<ReturnType<typeof crossEntropyPlan>>

/** One cross-entropy request, its tensors in kernel memory, ready to compute. */
export interface CrossEntropyJob {
  memory: RequestMemory
  shape: CrossEntropyShape
  options: CrossEntropyOptions
  /** rows × vocab logits, row-major: float32, or the raw 16-bit words of F16/BF16. */
  logits: Float32Array | Uint16Array
  dtype: LogitsDtype
  /** One class index per row, or ignoreIndex (all zeros and unread beside soft targets). */
  targets: Int32Array
  /** (rows × vocab) class probabilities, or null. */
  softTargets: Float32Array | null
  weight: Float32Array | null
  /** Every allocation of the plan. */
  views: CrossEntropyAllocations
  /**
   * Stages that read tensors still in the body's text (the JSON logits), which the computation
   * runs before its own entry in the same tasks; none when every tensor is in place.
   */
  reading?: readonly Stage[]
}

/** Admits a cross-entropy request by its plan and makes every allocation of it (see admitPlan). */
export function admitCrossEntropy(
  engine: Pick<Engine, 'admit'>,
  memory: RequestMemory,
  shape: CrossEntropyShape,
  options: CrossEntropyOptions,
  inputs: CrossEntropyInputs,
  bodyBytes = 0
): CrossEntropyAllocations {
  return admitPlan(engine, memory, shape, crossEntropyPlan(shape, options, inputs), bodyBytes)
}
