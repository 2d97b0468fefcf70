import type { LogprobsRequest, LogprobsResponse } from '../../../schemas/logprobs.js'
import { copyLogits, copyTargets, measureShapes } from '../../codec/json-tensors.js'
import { numbersStage, type PreparedPrint, parseNumbers } from '../../codec/json-text.js'
import type { Engine, RunOptions } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import { type AnswerWriter, computePrinting, JsonAnswer, ObjectAnswer, preparePrints } from '../json-answer.js'
import { type FastJson, logitsShapeOf, sameShape, shapeOf, targetsInRange } from '../json-body.js'
import type { JsonComputed } from '../operation.js'
import { computeLogprobs, type LogprobsResult } from './compute.js'
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

/** The tensor fields of a JSON logprobs request, which the workers read. */
export const LOGPROBS_TENSORS = ['logits', 'targets'] as const

/** The fast reading of a JSON logprobs request (as readCrossEntropyJson): a job, or null. */
export async function readLogprobsJson(
  fast: FastJson,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'arena' | 'run'>,
  run: RunOptions,
  deferLogits = false
): Promise<LogprobsJob | null> {
  const logitsShape = logitsShapeOf(fast)
  if (logitsShape === null) return null
  const { vocab, leading: leadingShape, rows } = logitsShape
  const hasTargets = fast.tensors.has('targets')
  if (hasTargets && !sameShape(shapeOf(fast, 'targets'), leadingShape)) return null
  const shape = { rows, vocab, logitsShape: logitsShape.shape, leadingShape }
  let options: ReturnType<typeof optionsFromBody>
  let views: ReturnType<typeof admitLogprobs>
  try {
    options = optionsFromBody(fast.body as LogprobsRequest)
    checkAgainstShape(options, hasTargets, vocab)
    views = admitLogprobs(
      engine,
      memory,
      shape,
      options,
      { format: 'json', targets: hasTargets },
      fast.json.bytes.length
    )
  } catch {
    return null
  }
  const logits = views.logits as Float32Array
  const logitsField = fast.tensors.get('logits')
  const targetsField = fast.tensors.get('targets')
  if (logitsField === undefined) return null
  // The targets first: the logits' reading may be left to the computation.
  if (targetsField !== undefined && views.targets !== null) {
    if (!(await parseNumbers(engine, memory, fast.json, targetsField, views.targets, run))) return null
  }
  if (views.targets !== null && !targetsInRange(views.targets, vocab, options.ignoreIndex)) return null
  const job: LogprobsJob = { memory, shape, options, logits, dtype: 'F32', targets: views.targets, views }
  if (deferLogits) {
    const reading = numbersStage(engine, memory, fast.json, logitsField, logits)
    return reading === null ? null : { ...job, reading: [reading.stage] }
  }
  return (await parseNumbers(engine, memory, fast.json, logitsField, logits, run)) ? job : null
}

/**
 * The fast path's whole computation in one run of tasks (as computeCrossEntropyJson): each task
 * reads its rows of logits, computes them and prints their top-k; null for the general reading.
 */
export async function computeLogprobsJson(
  fast: FastJson,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'arena' | 'run'>,
  run: RunOptions
): Promise<JsonComputed<LogprobsJob, LogprobsResult> | null> {
  const job = await readLogprobsJson(fast, memory, engine, run, true)
  if (job === null) return null
  // The top-k arrays have a row for each row of logits; the others are printed apart.
  const topShape = [...job.shape.leadingShape, job.options.topK]
  const printed = preparePrints(engine, memory, [job.views.topIds, topShape], [job.views.topLogprobs, topShape])
  return computePrinting(job, printed, (after) => computeLogprobs(engine, job, run, after))
}

/** The JSON answer of a logprobs request, printed (see ../json-answer.ts). */
export function printLogprobsJson(
  engine: Pick<Engine, 'arena' | 'run'>,
  job: LogprobsJob,
  result: LogprobsResult,
  run: RunOptions,
  printed: readonly PreparedPrint[] = []
): Promise<Uint8Array[]> {
  return writeLogprobsAnswer(new JsonAnswer(engine, job.memory, run, printed), job, result).finish()
}

/** The JSON answer of a logprobs request as objects, for Fastify's serializer. */
export function encodeLogprobsJson(job: LogprobsJob, result: LogprobsResult): LogprobsResponse {
  return writeLogprobsAnswer(new ObjectAnswer(), job, result).finish() as LogprobsResponse
}

/** The answer, field by field. */
function writeLogprobsAnswer<Writer extends AnswerWriter>(
  answer: Writer,
  job: LogprobsJob,
  result: LogprobsResult
): Writer {
  const leading = job.shape.leadingShape
  if (result.targetLogprobs !== null) answer.field('target_logprobs').array(result.targetLogprobs, leading)
  if (result.topIds !== null && result.topLogprobs !== null) {
    const shape = [...leading, job.options.topK]
    answer.field('top_k').begin()
    answer.field('ids').array(result.topIds, shape)
    answer.field('logprobs').array(result.topLogprobs, shape)
    answer.end()
  }
  if (result.entropy !== null) answer.field('entropy').array(result.entropy, leading)
  return answer
}
