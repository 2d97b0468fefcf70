import type { BinaryQuery } from '../../../schemas/binary.js'
import type { OutputName } from '../../../schemas/cross-entropy.js'
import { writeSafetensors } from '../../codec/safetensors.js'
import {
  checkShapes,
  copyTargets,
  float32View,
  isMisaligned,
  logitsView,
  readRequestFile
} from '../../codec/safetensors-tensors.js'
import { checkSoftTargets } from '../../codec/soft-targets.js'
import { checkWeights } from '../../codec/weights.js'
import type { LogitsDtype } from '../../engine/abi.js'
import type { Engine } from '../../engine/engine.js'
import type { RequestMemory } from '../../engine/request.js'
import { XentErrors } from '../../errors.js'
import { floatToBf16, floatToF16 } from '../../kernels/half.js'
import type { CrossEntropyResult } from './compute.js'
import { optionsFromQuery, refuseForSoftTargets } from './options.js'
import { admitCrossEntropy, type CrossEntropyJob } from './plan.js'

const KNOWN_TENSORS = ['logits', 'targets', 'soft_targets', 'weight']

/**
 * A safetensors body (already in the request's memory) → a job, without copying the logits: they
 * stay where the body landed (F16 and BF16 too; the kernel decodes them). Only the targets, which
 * must be checked one by one anyway, are rewritten as int32. Options come from the query string.
 */
export function decodeCrossEntropySafetensors(
  bytes: Uint8Array,
  query: BinaryQuery,
  memory: RequestMemory,
  engine: Pick<Engine, 'admit' | 'copy'>
): CrossEntropyJob {
  const file = readRequestFile(bytes, KNOWN_TENSORS, 'send logits, targets (or soft_targets) and optionally weight')
  const logitsInfo = file.tensors.get('logits')
  const targetsInfo = file.tensors.get('targets')
  const softInfo = file.tensors.get('soft_targets')
  if (logitsInfo === undefined) throw new XentErrors.INVALID_SAFETENSORS('the file has no tensor "logits"')
  if ((targetsInfo === undefined) === (softInfo === undefined)) {
    throw new XentErrors.INVALID_SAFETENSORS(
      'the file must hold "targets" (class indices) or "soft_targets" (class probabilities): exactly one of the two'
    )
  }
  const options = optionsFromQuery(query)
  const { rows, vocab } = checkShapes(logitsInfo, targetsInfo)
  const targetsShape = logitsInfo.shape.slice(0, -1)
  if (softInfo !== undefined) {
    if (softInfo.dtype !== 'F32' || JSON.stringify(softInfo.shape) !== JSON.stringify(logitsInfo.shape)) {
      throw new XentErrors.INVALID_SAFETENSORS(
        `soft_targets must be F32 of the shape of logits, ${JSON.stringify(logitsInfo.shape)}; got ${softInfo.dtype} ${JSON.stringify(softInfo.shape)}`
      )
    }
    refuseForSoftTargets(options)
  }
  const weightInfo = file.tensors.get('weight')
  if (
    weightInfo !== undefined &&
    (weightInfo.dtype !== 'F32' || weightInfo.shape.length !== 1 || weightInfo.shape[0] !== vocab)
  ) {
    throw new XentErrors.INVALID_WEIGHT(
      `weight must be F32 of shape [${vocab}], got ${weightInfo.dtype} ${JSON.stringify(weightInfo.shape)}`
    )
  }
  const length = (info: typeof logitsInfo) => info.end - info.begin
  const shape = { rows, vocab, logitsShape: logitsInfo.shape, targetsShape }
  // The body is already in memory; what it still needs must fit beside it, or it never will.
  const views = admitCrossEntropy(
    engine,
    memory,
    shape,
    options,
    {
      format: 'safetensors',
      softTargets: softInfo !== undefined,
      weight: weightInfo !== undefined,
      copies: {
        logits: isMisaligned(bytes, logitsInfo) ? length(logitsInfo) : undefined,
        softTargets: softInfo !== undefined && isMisaligned(bytes, softInfo) ? length(softInfo) : undefined,
        weight: weightInfo !== undefined && isMisaligned(bytes, weightInfo) ? length(weightInfo) : undefined
      }
    },
    bytes.byteLength
  )
  let softTargets: Float32Array | null = null
  if (targetsInfo !== undefined) copyTargets(bytes, targetsInfo, vocab, options.ignoreIndex, views.targets)
  else if (softInfo !== undefined) {
    views.targets.fill(0)
    softTargets = float32View(bytes, softInfo, views.softTargetsCopy, engine.copy)
    checkSoftTargets(softTargets, vocab, targetsShape)
  }
  let weight: Float32Array | null = null
  if (weightInfo !== undefined) {
    weight = float32View(bytes, weightInfo, views.weightCopy, engine.copy)
    checkWeights(weight)
  }
  return {
    memory,
    shape,
    options,
    logits: logitsView(bytes, logitsInfo, views.logitsCopy, engine.copy),
    dtype: logitsInfo.dtype as LogitsDtype,
    targets: views.targets,
    softTargets,
    weight,
    views
  }
}

export function encodeCrossEntropySafetensors(
  job: CrossEntropyJob,
  result: CrossEntropyResult,
  gradDtype: 'F32' | 'BF16' | 'F16'
): Uint8Array[] {
  const tensors: Parameters<typeof writeSafetensors>[0] = []
  if (job.options.reduction === 'none') {
    tensors.push({
      name: 'loss',
      dtype: 'F32',
      shape: job.shape.targetsShape,
      data: Float32Array.from(result.tokenLoss)
    })
  } else {
    tensors.push({ name: 'loss', dtype: 'F64', shape: [], data: Float64Array.of(result.loss) })
  }
  tensors.push({
    name: 'perplexity',
    dtype: 'F64',
    shape: [],
    data: Float64Array.of(Number.isFinite(result.perplexity) ? result.perplexity : Number.NaN)
  })
  tensors.push({ name: 'count', dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(result.count)) })
  if (job.options.outputs.has('token_losses')) {
    tensors.push({
      name: 'token_losses',
      dtype: 'F32',
      shape: job.shape.targetsShape,
      data: Float32Array.from(result.tokenLoss)
    })
  }
  if (result.gradients !== null) {
    tensors.push({
      name: 'gradients',
      dtype: gradDtype,
      shape: job.shape.logitsShape,
      data: convertGradients(result.gradients, gradDtype)
    })
  }
  const analytics = result.analytics
  if (analytics !== null) {
    const wants = (name: OutputName) => job.options.outputs.has(name)
    const scalar = (name: string, value: number) =>
      tensors.push({ name, dtype: 'F64', shape: [], data: Float64Array.of(value) })
    const perPosition = (name: string, values: ArrayLike<number>) =>
      tensors.push({ name, dtype: 'F32', shape: job.shape.targetsShape, data: Float32Array.from(values) })
    const sequences = [analytics.sequenceLosses.length]
    if (wants('entropy')) perPosition('entropy', analytics.entropy)
    if (wants('target_logprobs')) perPosition('target_logprobs', analytics.targetLogprobs)
    if (wants('predictions')) {
      tensors.push({
        name: 'predictions',
        dtype: 'I64',
        shape: job.shape.targetsShape,
        data: BigInt64Array.from(analytics.predictions, (index) => BigInt(index))
      })
    }
    if (wants('accuracy')) scalar('accuracy', analytics.accuracy)
    if (wants('sequence_losses')) {
      tensors.push({ name: 'sequence_losses', dtype: 'F64', shape: sequences, data: analytics.sequenceLosses })
    }
    if (wants('sequence_perplexities')) {
      const perplexities = analytics.sequencePerplexities.map((value) => (Number.isFinite(value) ? value : Number.NaN))
      tensors.push({ name: 'sequence_perplexities', dtype: 'F64', shape: sequences, data: perplexities })
    }
    if (wants('bits_per_token')) scalar('bits_per_token', analytics.bitsPerToken)
    if (wants('z_loss')) scalar('z_loss', analytics.zLoss)
  }
  return writeSafetensors(tensors)
}

function convertGradients(gradients: Float32Array, dtype: 'F32' | 'BF16' | 'F16'): ArrayBufferView {
  if (dtype === 'F32') return gradients
  const convert = dtype === 'BF16' ? floatToBf16 : floatToF16
  const halves = new Uint16Array(gradients.length)
  for (let i = 0; i < gradients.length; i++) halves[i] = convert(gradients[i])
  return halves
}
