import type { BinaryQuery } from '../../schemas/binary.js'
import { DEFAULT_IGNORE_INDEX, type OutputName } from '../../schemas/cross-entropy.js'
import { type Admission, type CrossEntropyBatch, crossEntropyAllocations, needsRowStats, planBytes } from '../batch.js'
import { XentErrors } from '../errors.js'
import type { LogitsDtype } from '../kernel/wasm.js'
import type { ArenaGroup } from '../pool/arena.js'
import type { CrossEntropyResult } from '../pool/compute.js'
import { floatToBf16, floatToF16 } from './half.js'
import {
  DTYPE_SIZES,
  type Dtype,
  readSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  type TensorInfo,
  writeSafetensors
} from './safetensors.js'
import { rowPosition, targetOutOfRange } from './schema-errors.js'
import { checkSoftTargetOptions, checkSoftTargets } from './soft-targets.js'

/** A safetensors request body, already in the kernel's shared memory. */
export interface BinaryBody {
  memory: ArenaGroup
  bytes: Uint8Array
}

const LOGITS_DTYPES: ReadonlySet<Dtype> = new Set(['F32', 'F16', 'BF16'])
const TARGETS_DTYPES: ReadonlySet<Dtype> = new Set(['I32', 'I64'])
const KNOWN_TENSORS = ['logits', 'targets', 'soft_targets', 'weight']

/**
 * A safetensors body → a batch, without copying the logits: they stay where the body landed in
 * shared memory (F16 and BF16 too; the kernel decodes them). Only the targets, which must be
 * checked one by one anyway, are rewritten as int32. Options come from the query string.
 */
export function decodeSafetensorsRequest(body: BinaryBody, query: BinaryQuery, admit: Admission): CrossEntropyBatch {
  const file = readRequestFile(
    body.bytes,
    KNOWN_TENSORS,
    'send logits, targets (or soft_targets) and optionally weight'
  )
  const logitsInfo = file.tensors.get('logits')
  const targetsInfo = file.tensors.get('targets')
  const softInfo = file.tensors.get('soft_targets')
  if (logitsInfo === undefined) throw new XentErrors.INVALID_SAFETENSORS('the file has no tensor "logits"')
  if ((targetsInfo === undefined) === (softInfo === undefined)) {
    throw new XentErrors.INVALID_SAFETENSORS(
      'the file must hold "targets" (class indices) or "soft_targets" (class probabilities): exactly one of the two'
    )
  }

  const options = readOptions(query)
  const { rows, vocab } = checkShapes(logitsInfo, targetsInfo)
  if (softInfo !== undefined) {
    if (softInfo.dtype !== 'F32' || JSON.stringify(softInfo.shape) !== JSON.stringify(logitsInfo.shape)) {
      throw new XentErrors.INVALID_SAFETENSORS(
        `soft_targets must be F32 of the shape of logits, ${JSON.stringify(logitsInfo.shape)}; got ${softInfo.dtype} ${JSON.stringify(softInfo.shape)}`
      )
    }
    checkSoftTargetOptions(options.ignoreIndex !== DEFAULT_IGNORE_INDEX, options.outputs)
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

  const { memory, bytes } = body
  // The body is already in memory; what it still needs must fit beside it, or it never will.
  const allocations = crossEntropyAllocations({
    rows,
    vocab,
    format: 'safetensors',
    softTargets: softInfo !== undefined,
    weight: weightInfo !== undefined,
    gradients: options.outputs.has('gradients'),
    rowStats: needsRowStats(options.outputs, options.zLoss),
    alignedCopies: misalignedTensors(bytes, [logitsInfo, softInfo, weightInfo])
  })
  admit({ elements: rows * vocab, logitsShape: logitsInfo.shape, bytes: planBytes(bytes.byteLength, allocations) })
  const targets = memory.int32(rows)
  let softTargets: Float32Array | null = null
  if (targetsInfo !== undefined) copyTargets(bytes, targetsInfo, vocab, options.ignoreIndex, targets)
  else if (softInfo !== undefined) {
    softTargets = float32View(bytes, softInfo, memory)
    checkSoftTargets(softTargets, vocab, logitsInfo.shape.slice(0, -1))
  }
  return {
    memory,
    logits: logitsView(bytes, logitsInfo, memory),
    logitsDtype: logitsInfo.dtype as LogitsDtype,
    targets,
    rows,
    vocab,
    logitsShape: logitsInfo.shape,
    targetsShape: logitsInfo.shape.slice(0, -1),
    weight: weightInfo === undefined ? null : weightView(bytes, weightInfo, memory),
    reduction: options.reduction,
    ignoreIndex: options.ignoreIndex,
    labelSmoothing: options.labelSmoothing,
    zLoss: options.zLoss,
    softcap: options.softcap,
    softTargets,
    outputs: options.outputs
  }
}

interface Options {
  reduction: CrossEntropyBatch['reduction']
  ignoreIndex: number
  labelSmoothing: number
  zLoss: number
  softcap: number
  outputs: Set<OutputName>
}

function readOptions(query: BinaryQuery): Options {
  const ignoreIndex = query.ignore_index === undefined ? DEFAULT_IGNORE_INDEX : Number(query.ignore_index)
  if (ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new XentErrors.INVALID_REQUEST(`ignore_index is ${query.ignore_index}; it must be a 32-bit integer`)
  }
  const labelSmoothing = query.label_smoothing === undefined ? 0 : Number(query.label_smoothing)
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) {
    throw new XentErrors.INVALID_REQUEST(`label_smoothing is ${query.label_smoothing}; it must be in [0, 1]`)
  }
  const zLoss = query.z_loss === undefined ? 0 : Number(query.z_loss)
  if (!Number.isFinite(zLoss))
    throw new XentErrors.INVALID_REQUEST(`z_loss is ${query.z_loss}; it must be a finite number ≥ 0`)
  const softcap = query.softcap === undefined ? 0 : Number(query.softcap)
  if (query.softcap !== undefined && !(softcap > 0 && Number.isFinite(softcap))) {
    throw new XentErrors.INVALID_REQUEST(`softcap is ${query.softcap}; it must be a finite number > 0`)
  }
  const names = query.outputs === undefined ? ['token_losses'] : query.outputs.split(',').filter((name) => name !== '')
  const outputs = new Set(names as OutputName[])
  if (outputs.size !== names.length)
    throw new XentErrors.INVALID_REQUEST(`outputs lists the same value twice: ${query.outputs}`)
  return { reduction: query.reduction ?? 'mean', ignoreIndex, labelSmoothing, zLoss, softcap, outputs }
}

/** A request body's safetensors header, with any tensor not in `known` refused (`hint` says what to send). */
export function readRequestFile(bytes: Uint8Array, known: readonly string[], hint: string): SafetensorsFile {
  let file: SafetensorsFile
  try {
    file = readSafetensors(bytes)
  } catch (error) {
    if (error instanceof SafetensorsError) throw new XentErrors.INVALID_SAFETENSORS(error.message)
    throw error
  }
  for (const name of file.tensors.keys()) {
    if (!known.includes(name)) throw new XentErrors.INVALID_SAFETENSORS(`tensor "${name}" was not asked for; ${hint}`)
  }
  return file
}

export function checkShapes(logits: TensorInfo, targets: TensorInfo | undefined): { rows: number; vocab: number } {
  if (!LOGITS_DTYPES.has(logits.dtype)) {
    throw new XentErrors.INVALID_SAFETENSORS(`logits are ${logits.dtype}; send F32, F16 or BF16`)
  }
  if (targets !== undefined && !TARGETS_DTYPES.has(targets.dtype)) {
    throw new XentErrors.INVALID_SAFETENSORS(`targets are ${targets.dtype}; send I32 or I64`)
  }
  if (logits.shape.length !== 2 && logits.shape.length !== 3) {
    throw new XentErrors.SHAPE_MISMATCH(
      `logits have shape ${JSON.stringify(logits.shape)}; they must be (N, V) or (B, T, V)`
    )
  }
  const emptyAt = logits.shape.indexOf(0)
  if (emptyAt !== -1)
    throw new XentErrors.EMPTY_DIMENSION(
      `logits have shape ${JSON.stringify(logits.shape)}; dimension ${emptyAt} is empty`
    )
  const leading = logits.shape.slice(0, -1)
  if (
    targets !== undefined &&
    (targets.shape.length !== leading.length || targets.shape.some((d, i) => d !== leading[i]))
  ) {
    throw new XentErrors.SHAPE_MISMATCH(
      `targets have shape ${JSON.stringify(targets.shape)}; logits of shape ${JSON.stringify(logits.shape)} need ${JSON.stringify(leading)}`
    )
  }
  const vocab = logits.shape[logits.shape.length - 1]
  return { rows: leading.reduce((product, d) => product * d, 1), vocab }
}

/** Byte lengths of the tensors that lie misaligned for their dtype, and so are copied once (see logitsView). */
export function misalignedTensors(bytes: Uint8Array, tensors: ReadonlyArray<TensorInfo | undefined>): number[] {
  return tensors
    .filter((info) => info !== undefined && (bytes.byteOffset + info.begin) % DTYPE_SIZES[info.dtype] !== 0)
    .map((info) => (info as TensorInfo).end - (info as TensorInfo).begin)
}

/** The logits where they lie, or, only if the sender misaligned them, one aligned copy. */
export function logitsView(bytes: Uint8Array, info: TensorInfo, memory: ArenaGroup): Float32Array | Uint16Array {
  const size = info.dtype === 'F32' ? 4 : 2
  const length = (info.end - info.begin) / size
  let start = bytes.byteOffset + info.begin
  if (start % size !== 0) start = alignedCopy(bytes, info, memory).byteOffset
  return size === 4 ? new Float32Array(bytes.buffer, start, length) : new Uint16Array(bytes.buffer, start, length)
}

/** An F32 tensor where it lies, or, only if the sender misaligned it, one aligned copy. */
function float32View(bytes: Uint8Array, info: TensorInfo, memory: ArenaGroup): Float32Array {
  let start = bytes.byteOffset + info.begin
  if (start % 4 !== 0) start = alignedCopy(bytes, info, memory).byteOffset
  return new Float32Array(bytes.buffer, start, (info.end - info.begin) / 4)
}

function weightView(bytes: Uint8Array, info: TensorInfo, memory: ArenaGroup): Float32Array {
  const weight = float32View(bytes, info, memory)
  for (let c = 0; c < weight.length; c++) {
    if (!Number.isFinite(weight[c]) || weight[c] < 0) {
      throw new XentErrors.INVALID_WEIGHT(`weight[${c}] is ${weight[c]}; weights must be finite and ≥ 0`)
    }
  }
  return weight
}

/** A tensor's bytes copied to a fresh allocation (the arena aligns every block to 64 bytes). */
function alignedCopy(bytes: Uint8Array, info: TensorInfo, memory: ArenaGroup): Uint8Array {
  const copy = memory.bytes(info.end - info.begin)
  copy.set(bytes.subarray(info.begin, info.end))
  return copy
}

export function copyTargets(
  bytes: Uint8Array,
  info: TensorInfo,
  vocab: number,
  ignoreIndex: number,
  into: Int32Array
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset + info.begin, info.end - info.begin)
  const wide = info.dtype === 'I64'
  for (let i = 0; i < into.length; i++) {
    const target = wide ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)
    if (target !== ignoreIndex && !(target >= 0 && target < vocab)) {
      throw targetOutOfRange(rowPosition('targets', i, info.shape), target, vocab, ignoreIndex)
    }
    into[i] = target
  }
}

/**
 * The answer as safetensors: loss (F64 [], or F32 shaped like targets for none; NaN where JSON
 * says null), perplexity (F64 []), count (I64 []), token_losses (F32) and gradients (F32 without a
 * copy, or BF16/F16); the analytics entropy and target_logprobs (F32 like targets), predictions
 * (I64 like targets), sequence_losses and sequence_perplexities (F64 [B], or [1]), accuracy,
 * bits_per_token and z_loss (F64 []), NaN wherever JSON says null. Chunks may view shared
 * memory: send them before the batch is released.
 */
export function encodeSafetensorsResponse(
  batch: CrossEntropyBatch,
  result: CrossEntropyResult,
  gradDtype: 'F32' | 'BF16' | 'F16'
): Uint8Array[] {
  const tensors: Parameters<typeof writeSafetensors>[0] = []
  if (batch.reduction === 'none') {
    tensors.push({ name: 'loss', dtype: 'F32', shape: batch.targetsShape, data: Float32Array.from(result.tokenLoss) })
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
  if (batch.outputs.has('token_losses')) {
    tensors.push({
      name: 'token_losses',
      dtype: 'F32',
      shape: batch.targetsShape,
      data: Float32Array.from(result.tokenLoss)
    })
  }
  if (result.gradients !== null) {
    tensors.push({
      name: 'gradients',
      dtype: gradDtype,
      shape: batch.logitsShape,
      data: convertGradients(result.gradients, gradDtype)
    })
  }
  const analytics = result.analytics
  if (analytics !== null) {
    const wants = (name: OutputName) => batch.outputs.has(name)
    const scalar = (name: string, value: number) =>
      tensors.push({ name, dtype: 'F64', shape: [], data: Float64Array.of(value) })
    const perPosition = (name: string, values: ArrayLike<number>) =>
      tensors.push({ name, dtype: 'F32', shape: batch.targetsShape, data: Float32Array.from(values) })
    const sequences = [analytics.sequenceLosses.length]
    if (wants('entropy')) perPosition('entropy', analytics.entropy)
    if (wants('target_logprobs')) perPosition('target_logprobs', analytics.targetLogprobs)
    if (wants('predictions')) {
      tensors.push({
        name: 'predictions',
        dtype: 'I64',
        shape: batch.targetsShape,
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
