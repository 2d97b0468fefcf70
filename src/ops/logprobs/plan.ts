import { LOGPROBS_CALL, type LogitsDtype } from '../../engine/abi.js'
import type { Engine } from '../../engine/engine.js'
import { type Allocated, f32, f64, i32, u8 } from '../../engine/plan.js'
import type { RequestMemory } from '../../engine/request.js'
import type { Stage } from '../../engine/task.js'
import { admitPlan } from '../admit.js'
import type { LogprobsOptions } from './options.js'

export interface LogprobsShape {
  rows: number
  vocab: number
  logitsShape: number[]
  /** The leading dimensions of logits: (B, T) or (N). */
  leadingShape: number[]
}

export interface LogprobsInputs {
  format: 'json' | 'safetensors'
  targets: boolean
  /** Byte length of safetensors logits the sender misaligned, copied once to read them. */
  logitsCopy?: number
}

/** Every allocation one logprobs request makes beside its body, by name (see crossEntropyPlan). */
export function logprobsPlan(shape: LogprobsShape, options: LogprobsOptions, inputs: LogprobsInputs) {
  const { rows, vocab } = shape
  const { topK } = options
  return {
    logits: inputs.format === 'json' ? f32(rows * vocab) : null,
    logitsCopy: inputs.logitsCopy === undefined ? null : u8(inputs.logitsCopy),
    targets: inputs.targets ? i32(rows) : null,
    targetLogprobs: inputs.targets ? f64(rows) : null,
    topIds: topK > 0 ? i32(rows * topK) : null,
    topLogprobs: topK > 0 ? f64(rows * topK) : null,
    entropy: options.entropy ? f64(rows) : null,
    call: u8(LOGPROBS_CALL.bytes)
  }
}

export type LogprobsAllocations = Allocated<ReturnType<typeof logprobsPlan>>

/** One logprobs request, its tensors in kernel memory, ready to compute. */
export interface LogprobsJob {
  memory: RequestMemory
  shape: LogprobsShape
  options: LogprobsOptions
  logits: Float32Array | Uint16Array
  dtype: LogitsDtype
  /** null when no targets were sent. */
  targets: Int32Array | null
  views: LogprobsAllocations
  /** Stages that read the logits from the body's text in the computation's tasks (see CrossEntropyJob). */
  reading?: readonly Stage[]
}

/** Admits a logprobs request by its plan and makes every allocation of it (see admitPlan). */
export function admitLogprobs(
  engine: Pick<Engine, 'admit'>,
  memory: RequestMemory,
  shape: LogprobsShape,
  options: LogprobsOptions,
  inputs: LogprobsInputs,
  bodyBytes = 0
): LogprobsAllocations {
  return admitPlan(engine, memory, shape, logprobsPlan(shape, options, inputs), bodyBytes)
}
