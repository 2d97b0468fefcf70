import type { CrossEntropyRequest, CrossEntropyResponse, OutputName } from '../../../schemas/cross-entropy.js'
import { copyLogits, copySoftTargets, copyTargets, copyWeight, measureShapes } from '../../codec/json-tensors.js'
import { numbersStage, type PreparedPrint, parseNumbers } from '../../codec/json-text.js'
import { checkSoftTargets } from '../../codec/soft-targets.js'
import { checkWeights } from '../../codec/weights.js'
import type { Engine, RunOptions } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import type { Stage } from '../../engine/task.js'
import { XentErrors } from '../../errors.js'
import { type AnswerWriter, computePrinting, JsonAnswer, ObjectAnswer, preparePrints } from '../json-answer.js'
import { type FastJson, logitsShapeOf, sameShape, shapeOf, targetsInRange } from '../json-body.js'
import type { JsonComputed } from '../operation.js'
import { type CrossEntropyResult, computeCrossEntropy } from './compute.js'
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
  return jsonJob(memory, shape, options, views)
}

/** The tensor fields of a JSON cross-entropy request, which the workers read. */
export const CROSS_ENTROPY_TENSORS = ['logits', 'targets', 'soft_targets', 'weight'] as const

/**
 * The fast reading of a JSON cross-entropy request (see ../json-body.ts): the shapes from the
 * index, every tensor parsed by the workers straight into its allocation. Null wherever the
 * general reading might answer otherwise than with this job: it then reads the same body. With
 * `deferLogits` the logits are left for the computation to read (the job's `reading`).
 */
export async function readCrossEntropyJson(
  fast: FastJson,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'arena' | 'run'>,
  run: RunOptions,
  deferLogits = false
): Promise<CrossEntropyJob | null> {
  const logitsShape = logitsShapeOf(fast)
  const hasTargets = fast.tensors.has('targets')
  const hasSoft = fast.tensors.has('soft_targets')
  if (logitsShape === null || hasTargets === hasSoft) return null
  const { vocab, leading: targetsShape, rows } = logitsShape
  if (hasTargets && !sameShape(shapeOf(fast, 'targets'), targetsShape)) return null
  if (hasSoft && !sameShape(shapeOf(fast, 'soft_targets'), logitsShape.shape)) return null
  const hasWeight = fast.tensors.has('weight')
  if (hasWeight && !sameShape(shapeOf(fast, 'weight'), [vocab])) return null
  const shape = { rows, vocab, logitsShape: logitsShape.shape, targetsShape }
  let views: ReturnType<typeof admitCrossEntropy>
  let options: ReturnType<typeof optionsFromBody>
  try {
    options = optionsFromBody(fast.body as CrossEntropyRequest)
    views = admitCrossEntropy(
      engine,
      memory,
      shape,
      options,
      { format: 'json', softTargets: hasSoft, weight: hasWeight },
      fast.json.bytes.length
    )
  } catch {
    return null
  }
  const logits = views.logits as Float32Array
  const parse = (name: string, into: Float32Array | Int32Array | null) => {
    const field = fast.tensors.get(name)
    return field === undefined || into === null
      ? Promise.resolve(true)
      : parseNumbers(engine, memory, fast.json, field, into, run)
  }
  // One tensor after another: a request keeps one run of tasks in flight. The logits go last,
  // so that when their reading is deferred every tensor the computation's setup reads is in.
  for (const [name, into] of [
    ['targets', views.targets],
    ['soft_targets', views.softTargets],
    ['weight', views.weight]
  ] as const) {
    if (!(await parse(name, into))) return null
  }
  let reading: Stage[] | undefined
  if (deferLogits) {
    const field = fast.tensors.get('logits')
    const stage = field === undefined ? null : numbersStage(engine, memory, fast.json, field, logits)
    if (stage === null) return null
    reading = [stage.stage]
  } else if (!(await parse('logits', logits))) {
    return null
  }
  if (hasTargets && !targetsInRange(views.targets, vocab, options.ignoreIndex)) return null
  if (!hasTargets) views.targets.fill(0)
  try {
    if (views.softTargets !== null) checkSoftTargets(views.softTargets, vocab, targetsShape)
    if (views.weight !== null) checkWeights(views.weight)
  } catch {
    return null
  }
  return { ...jsonJob(memory, shape, options, views), ...(reading === undefined ? {} : { reading }) }
}

/**
 * The fast path's whole computation, in one run of tasks: each task reads its rows of logits
 * from the body's text, computes them, and prints their gradients (when asked for). Null where
 * readCrossEntropyJson is, or where the reading refuses a row: the general reading then serves
 * the same body, and words any error.
 */
export async function computeCrossEntropyJson(
  fast: FastJson,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'arena' | 'run'>,
  run: RunOptions
): Promise<JsonComputed<CrossEntropyJob, CrossEntropyResult> | null> {
  const job = await readCrossEntropyJson(fast, memory, engine, run, true)
  if (job === null) return null
  const printed = preparePrints(engine, memory, [job.views.gradients, job.shape.logitsShape])
  return computePrinting(job, printed, (after) => computeCrossEntropy(engine, job, run, after))
}

/**
 * The JSON answer, printed: its large arrays by the workers into the request's memory, the rest
 * here (see ../json-answer.ts).
 */
export function printCrossEntropyJson(
  engine: Pick<Engine, 'arena' | 'run'>,
  job: CrossEntropyJob,
  result: CrossEntropyResult,
  run: RunOptions,
  printed: readonly PreparedPrint[] = []
): Promise<Uint8Array[]> {
  return writeCrossEntropyAnswer(new JsonAnswer(engine, job.memory, run, printed), job, result).finish()
}

/** The JSON answer as objects, for Fastify's serializer: when there is no room to print it. */
export function encodeCrossEntropyJson(job: CrossEntropyJob, result: CrossEntropyResult): CrossEntropyResponse {
  return writeCrossEntropyAnswer(new ObjectAnswer(), job, result).finish() as unknown as CrossEntropyResponse
}

/** The answer, field by field: non-finite scalars become null, large outputs take the caller's shapes. */
function writeCrossEntropyAnswer<Writer extends AnswerWriter>(
  answer: Writer,
  job: CrossEntropyJob,
  result: CrossEntropyResult
): Writer {
  const { options, shape } = job
  answer.field('loss')
  if (options.reduction === 'none') answer.array(result.tokenLoss, shape.targetsShape)
  else answer.value(finiteOrNull(result.loss))
  answer.field('perplexity').value(finiteOrNull(result.perplexity))
  answer.field('count').value(result.count)
  if (options.outputs.has('token_losses')) answer.field('token_losses').array(result.tokenLoss, shape.targetsShape)
  if (result.gradients !== null) answer.field('gradients').array(result.gradients, shape.logitsShape)
  const analytics = result.analytics
  if (analytics !== null) {
    const wants = (name: OutputName) => options.outputs.has(name)
    if (wants('entropy')) answer.field('entropy').array(analytics.entropy, shape.targetsShape)
    if (wants('target_logprobs')) answer.field('target_logprobs').array(analytics.targetLogprobs, shape.targetsShape)
    if (wants('predictions')) answer.field('predictions').array(analytics.predictions, shape.targetsShape)
    if (wants('accuracy')) answer.field('accuracy').value(finiteOrNull(analytics.accuracy))
    if (wants('sequence_losses')) {
      answer.field('sequence_losses').value(Array.from(analytics.sequenceLosses, finiteOrNull))
    }
    if (wants('sequence_perplexities')) {
      answer.field('sequence_perplexities').value(Array.from(analytics.sequencePerplexities, finiteOrNull))
    }
    if (wants('bits_per_token')) answer.field('bits_per_token').value(finiteOrNull(analytics.bitsPerToken))
    if (wants('z_loss')) answer.field('z_loss').value(finiteOrNull(analytics.zLoss))
  }
  return answer
}

/** A JSON request's job: float32 logits in their own allocation, beside the plan's others. */
function jsonJob(
  memory: RequestMemory,
  shape: CrossEntropyJob['shape'],
  options: CrossEntropyJob['options'],
  views: CrossEntropyJob['views']
): CrossEntropyJob {
  return {
    memory,
    shape,
    options,
    logits: views.logits as Float32Array,
    dtype: 'F32',
    targets: views.targets,
    softTargets: views.softTargets,
    weight: views.weight,
    views
  }
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null
}
