import type { LogprobsQuery } from '../../../schemas/logprobs.js'
import { writeSafetensors } from '../../codec/safetensors.js'
import { checkShapes, copyTargets, isMisaligned, logitsView, readRequestFile } from '../../codec/safetensors-tensors.js'
import type { LogitsDtype } from '../../engine/abi.js'
import type { Engine } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import { XentErrors } from '../../errors.js'
import type { LogprobsResult } from './compute.js'
import { checkAgainstShape, optionsFromQuery } from './options.js'
import { admitLogprobs, type LogprobsJob } from './plan.js'

/** A safetensors logprobs body (logits, optionally targets) → a job; options from the query. */
export function decodeLogprobsSafetensors(
  bytes: Uint8Array,
  query: LogprobsQuery,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'copy'>
): LogprobsJob {
  const file = readRequestFile(bytes, ['logits', 'targets'], 'send logits and optionally targets')
  const logitsInfo = file.tensors.get('logits')
  if (logitsInfo === undefined) throw new XentErrors.INVALID_SAFETENSORS('the file has no tensor "logits"')
  const targetsInfo = file.tensors.get('targets')
  const { rows, vocab } = checkShapes(logitsInfo, targetsInfo)
  const options = optionsFromQuery(query)
  checkAgainstShape(options, targetsInfo !== undefined, vocab)
  const shape = { rows, vocab, logitsShape: logitsInfo.shape, leadingShape: logitsInfo.shape.slice(0, -1) }
  const views = admitLogprobs(
    engine,
    memory,
    shape,
    options,
    {
      format: 'safetensors',
      targets: targetsInfo !== undefined,
      logitsCopy: isMisaligned(bytes, logitsInfo) ? logitsInfo.end - logitsInfo.begin : undefined
    },
    bytes.byteLength
  )
  if (targetsInfo !== undefined && views.targets !== null) {
    copyTargets(bytes, targetsInfo, vocab, options.ignoreIndex, views.targets)
  }
  return {
    memory,
    shape,
    options,
    logits: logitsView(bytes, logitsInfo, views.logitsCopy, engine.copy),
    dtype: logitsInfo.dtype as LogitsDtype,
    targets: views.targets,
    views
  }
}

/**
 * A logprobs answer as safetensors: target_logprobs (F32, like targets), top_k_ids (I64) and
 * top_k_logprobs (F32), both (…, k), and entropy (F32, like the leading dimensions).
 */
export function encodeLogprobsSafetensors(job: LogprobsJob, result: LogprobsResult): Uint8Array[] {
  const tensors: Parameters<typeof writeSafetensors>[0] = []
  const leading = job.shape.leadingShape
  if (result.targetLogprobs !== null) {
    tensors.push({
      name: 'target_logprobs',
      dtype: 'F32',
      shape: leading,
      data: Float32Array.from(result.targetLogprobs)
    })
  }
  if (result.topIds !== null && result.topLogprobs !== null) {
    const shape = [...leading, job.options.topK]
    tensors.push({
      name: 'top_k_ids',
      dtype: 'I64',
      shape,
      data: BigInt64Array.from(result.topIds, (id) => BigInt(id))
    })
    tensors.push({ name: 'top_k_logprobs', dtype: 'F32', shape, data: Float32Array.from(result.topLogprobs) })
  }
  if (result.entropy !== null) {
    tensors.push({ name: 'entropy', dtype: 'F32', shape: leading, data: Float32Array.from(result.entropy) })
  }
  return writeSafetensors(tensors)
}
