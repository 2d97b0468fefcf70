import { LOGITS_DTYPE, LOGPROBS_CALL, writeCall } from '../../engine/abi.js'
import type { Engine, RunOptions } from '../../engine/engine.js'
import type { Stage } from '../../engine/task.js'
import { firstInvalidRow, invalidRowError } from '../invalid-row.js'
import type { LogprobsJob } from './plan.js'

/** Views into the request's memory: valid until it is released. */
export interface LogprobsResult {
  targetLogprobs: Float64Array | null
  topIds: Int32Array | null
  topLogprobs: Float64Array | null
  entropy: Float64Array | null
}

/**
 * Runs a logprobs job's rows on the engine's workers: its reading stages first and `after`
 * (printing) last, in the same tasks (see computeCrossEntropy).
 */
export async function computeLogprobs(
  engine: Pick<Engine, 'run' | 'arena'>,
  job: LogprobsJob,
  run: RunOptions = {},
  after: readonly Stage[] = []
): Promise<LogprobsResult> {
  const { shape, options, views } = job
  writeCall(engine.arena.buffer, views.call.byteOffset, LOGPROBS_CALL, {
    logits: job.logits.byteOffset,
    dtype: LOGITS_DTYPE[job.dtype],
    targets: job.targets?.byteOffset ?? 0,
    vocab: shape.vocab,
    ignoreIndex: options.ignoreIndex,
    topK: options.topK,
    targetLogprobs: views.targetLogprobs?.byteOffset ?? 0,
    topIds: views.topIds?.byteOffset ?? 0,
    topLogprobs: views.topLogprobs?.byteOffset ?? 0,
    entropy: views.entropy?.byteOffset ?? 0,
    softcap: options.softcap,
    temperature: options.temperature
  })
  const verdicts = await engine.run(job.memory, 'logprobRows', views.call.byteOffset, shape.rows, shape.vocab, {
    ...run,
    before: job.reading,
    after
  })
  const invalidRow = firstInvalidRow(verdicts)
  if (invalidRow !== undefined) {
    throw invalidRowError(job.logits, job.dtype, invalidRow, shape.vocab, shape.leadingShape)
  }
  return {
    targetLogprobs: views.targetLogprobs,
    topIds: views.topIds,
    topLogprobs: views.topLogprobs,
    entropy: views.entropy
  }
}
