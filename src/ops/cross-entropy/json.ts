import type { CrossEntropyRequest, CrossEntropyResponse, OutputName } from '../../../schemas/cross-entropy.js'
import {
  copyLogits,
  copySoftTargets,
  copyTargets,
  copyWeight,
  measureShapes,
  reshape
} from '../../codec/json-tensors.js'
import { checkSoftTargets } from '../../codec/soft-targets.js'
import type { Engine } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import { XentErrors } from '../../errors.js'
import type { CrossEntropyResult } from './compute.js'
import { optionsFromBody } from './options.js'
import { admitCrossEntropy, type CrossEntropyJob } from './plan.js'

/** A JSON cross-entropy request (its schema met) → a job, its tensors copied into the request's memory. */
export function decodeCrossEntropyJson(
  body: CrossEntropyRequest,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit'>
): CrossEntropyJob {
  const soft = body.soft_targets
  if ((body.targets === undefined) === (soft === undefined)) {
    throw new XentErrors.INVALID_REQUEST(
      'send targets (class indices) or soft_targets (class probabilities): exactly one of the two'
    )
  }
  const shape = measureShapes(body.logits, body.targets)
  const options = optionsFromBody(body)
  const views = admitCrossEntropy(engine, memory, shape, options, {
    format: 'json',
    softTargets: soft !== undefined,
    weight: body.weight !== undefined
  })
  const logits = views.logits as Float32Array
  copyLogits(body.logits, shape.logitsShape, logits)
  if (body.targets !== undefined) copyTargets(body.targets, shape.vocab, options.ignoreIndex, views.targets)
  else views.targets.fill(0)
  if (soft !== undefined && views.softTargets !== null) {
    copySoftTargets(soft, shape.logitsShape, views.softTargets)
    checkSoftTargets(views.softTargets, shape.vocab, shape.targetsShape)
  }
  if (body.weight !== undefined && views.weight !== null) copyWeight(body.weight, shape.vocab, views.weight)
  return {
    memory,
    shape,
    options,
    logits,
    dtype: 'F32',
    targets: views.targets,
    softTargets: views.softTargets,
    weight: views.weight,
    views
  }
}

/** The JSON answer: non-finite scalars become null, large outputs take the caller's shapes. */
export function encodeCrossEntropyJson(job: CrossEntropyJob, result: CrossEntropyResult): CrossEntropyResponse {
  const { options, shape } = job
  const response: CrossEntropyResponse = {
    loss:
      options.reduction === 'none'
        ? (reshape(result.tokenLoss, shape.targetsShape) as number[] | number[][])
        : finiteOrNull(result.loss),
    perplexity: finiteOrNull(result.perplexity),
    count: result.count
  }
  if (options.outputs.has('token_losses')) {
    response.token_losses = reshape(result.tokenLoss, shape.targetsShape) as number[] | number[][]
  }
  if (result.gradients !== null) {
    response.gradients = reshape(result.gradients, shape.logitsShape) as number[][] | number[][][]
  }
  const analytics = result.analytics
  if (analytics !== null) {
    const like = (values: Float64Array | Int32Array) => reshape(values, shape.targetsShape) as number[] | number[][]
    const wants = (name: OutputName) => options.outputs.has(name)
    if (wants('entropy')) response.entropy = like(analytics.entropy)
    if (wants('target_logprobs')) response.target_logprobs = like(analytics.targetLogprobs)
    if (wants('predictions')) response.predictions = like(analytics.predictions)
    if (wants('accuracy')) response.accuracy = finiteOrNull(analytics.accuracy)
    if (wants('sequence_losses')) response.sequence_losses = Array.from(analytics.sequenceLosses, finiteOrNull)
    if (wants('sequence_perplexities')) {
      response.sequence_perplexities = Array.from(analytics.sequencePerplexities, finiteOrNull)
    }
    if (wants('bits_per_token')) response.bits_per_token = finiteOrNull(analytics.bitsPerToken)
    if (wants('z_loss')) response.z_loss = finiteOrNull(analytics.zLoss)
  }
  return response
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null
}
