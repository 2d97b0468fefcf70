import type { LogprobsRequest, LogprobsResponse } from '../../../schemas/logprobs.js'
import { copyLogits, copyTargets, measureShapes, reshape } from '../../codec/json-tensors.js'
import type { Engine } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import type { LogprobsResult } from './compute.js'
import { checkAgainstShape, optionsFromBody } from './options.js'
import { admitLogprobs, type LogprobsJob } from './plan.js'

/** A JSON logprobs request (its schema met) → a job: the same shapes and checks as a cross-entropy one. */
export function decodeLogprobsJson(
  body: LogprobsRequest,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit'>
): LogprobsJob {
  const { rows, vocab, logitsShape, targetsShape } = measureShapes(body.logits, body.targets)
  const options = optionsFromBody(body)
  checkAgainstShape(options, body.targets !== undefined, vocab)
  const shape = { rows, vocab, logitsShape, leadingShape: targetsShape }
  const views = admitLogprobs(engine, memory, shape, options, { format: 'json', targets: body.targets !== undefined })
  const logits = views.logits as Float32Array
  copyLogits(body.logits, logitsShape, logits)
  if (body.targets !== undefined && views.targets !== null) {
    copyTargets(body.targets, vocab, options.ignoreIndex, views.targets)
  }
  return { memory, shape, options, logits, dtype: 'F32', targets: views.targets, views }
}

/** The JSON answer of a logprobs request. */
export function encodeLogprobsJson(job: LogprobsJob, result: LogprobsResult): LogprobsResponse {
  const response: LogprobsResponse = {}
  const leading = job.shape.leadingShape
  if (result.targetLogprobs !== null) {
    response.target_logprobs = reshape(result.targetLogprobs, leading) as number[] | number[][]
  }
  if (result.topIds !== null && result.topLogprobs !== null) {
    const shape = [...leading, job.options.topK]
    response.top_k = {
      ids: reshape(result.topIds, shape) as number[][] | number[][][],
      logprobs: reshape(result.topLogprobs, shape) as number[][] | number[][][]
    }
  }
  if (result.entropy !== null) response.entropy = reshape(result.entropy, leading) as number[] | number[][]
  return response
}
