import type { CrossEntropyRequest, CrossEntropyResponse, OutputName } from '../../schemas/cross-entropy.js'
import { DEFAULT_IGNORE_INDEX } from '../../schemas/cross-entropy.js'
import type { LogprobsRequest, LogprobsResponse } from '../../schemas/logprobs.js'
import {
  type Admission,
  type CrossEntropyBatch,
  crossEntropyAllocations,
  type LogprobsBatch,
  logprobsAllocations,
  needsRowStats,
  planBytes
} from '../batch.js'
import { XentErrors } from '../errors.js'
import type { ArenaGroup } from '../pool/arena.js'
import type { CrossEntropyResult } from '../pool/compute.js'
import type { LogprobsResult } from '../pool/logprobs.js'
import { nothingAsked } from './logprobs-binary.js'
import { formatPosition, targetOutOfRange } from './schema-errors.js'
import { checkSoftTargetOptions, checkSoftTargets } from './soft-targets.js'

/**
 * The JSON wire format ⇄ typed arrays. The schema has already checked every type (numbers,
 * integers, nesting depth, non-empty arrays); this pass checks what a schema cannot (ragged rows,
 * shapes that agree, targets inside the vocabulary, float32 range) while it copies the numbers
 * into the kernel's shared memory, and names the first offending position.
 */

/** Where a batch's memory comes from: the arena itself, or a request's scope. */
export interface MemorySource {
  group: () => ArenaGroup
  /** Refuses, before anything is allocated, a request too large to take. */
  admit: Admission
}

export function decodeJsonRequest(body: CrossEntropyRequest, memorySource: MemorySource): CrossEntropyBatch {
  const ignoreIndex = body.ignore_index ?? DEFAULT_IGNORE_INDEX
  const soft = body.soft_targets
  if ((body.targets === undefined) === (soft === undefined)) {
    throw new XentErrors.INVALID_REQUEST(
      'send targets (class indices) or soft_targets (class probabilities): exactly one of the two'
    )
  }
  const { rows, vocab, logitsShape, targetsShape } = measureShapes(body.logits, body.targets)

  const outputs = new Set<OutputName>(body.outputs ?? ['token_losses'])
  // The schema fills ignore_index's default: only another value was really asked for.
  if (soft !== undefined) checkSoftTargetOptions(ignoreIndex !== DEFAULT_IGNORE_INDEX, outputs)
  const allocations = crossEntropyAllocations({
    rows,
    vocab,
    format: 'json',
    softTargets: soft !== undefined,
    weight: body.weight !== undefined,
    gradients: outputs.has('gradients'),
    rowStats: needsRowStats(outputs, body.z_loss ?? 0)
  })
  memorySource.admit({ elements: rows * vocab, logitsShape, bytes: planBytes(0, allocations) })
  const memory = memorySource.group()
  try {
    const logits = memory.float32(rows * vocab)
    copyLogits(body.logits, logitsShape, logits)
    const targets = memory.int32(rows)
    let softTargets: Float32Array | null = null
    if (body.targets !== undefined) copyTargets(body.targets, vocab, ignoreIndex, targets)
    else if (soft !== undefined) {
      softTargets = memory.float32(rows * vocab)
      copySoftTargets(soft, logitsShape, softTargets)
      checkSoftTargets(softTargets, vocab, targetsShape)
    }
    return {
      memory,
      logits,
      logitsDtype: 'F32',
      targets,
      rows,
      vocab,
      logitsShape,
      targetsShape,
      weight: body.weight === undefined ? null : decodeWeight(body.weight, vocab, memory),
      reduction: body.reduction ?? 'mean',
      ignoreIndex,
      labelSmoothing: body.label_smoothing ?? 0,
      zLoss: body.z_loss ?? 0,
      softcap: body.softcap ?? 0,
      softTargets,
      outputs
    }
  } catch (error) {
    memory.release()
    throw error
  }
}

interface Shapes {
  rows: number
  vocab: number
  logitsShape: number[]
  targetsShape: number[]
}

function isMatrix(logits: CrossEntropyRequest['logits']): logits is number[][] {
  return !Array.isArray(logits[0][0])
}

function measureShapes(
  logits: CrossEntropyRequest['logits'],
  targets: CrossEntropyRequest['targets'] | undefined
): Shapes {
  const targetsAreMatrix = targets !== undefined && Array.isArray(targets[0])
  if (isMatrix(logits)) {
    const n = logits.length
    const vocab = logits[0].length
    for (let i = 1; i < n; i++) expectLength(logits[i], vocab, ['logits', i], 'logits[0]')
    if (targets === undefined) return { rows: n, vocab, logitsShape: [n, vocab], targetsShape: [n] }
    if (targetsAreMatrix) {
      throw new XentErrors.SHAPE_MISMATCH(
        `targets must be a flat array of ${n} integers to match logits shaped (N, V) = (${n}, ${vocab}), got a nested array`
      )
    }
    expectTargetsLength(targets as number[], n, [], `N = ${n}`)
    return { rows: n, vocab, logitsShape: [n, vocab], targetsShape: [n] }
  }

  const batch = logits as number[][][]
  const b = batch.length
  const t = batch[0].length
  const vocab = batch[0][0].length
  for (let i = 0; i < b; i++) {
    if (i > 0) expectLength(batch[i], t, ['logits', i], 'logits[0]')
    for (let j = 0; j < t; j++) {
      if (i > 0 || j > 0) expectLength(batch[i][j], vocab, ['logits', i, j], 'logits[0][0]')
    }
  }
  if (targets === undefined) return { rows: b * t, vocab, logitsShape: [b, t, vocab], targetsShape: [b, t] }
  if (!targetsAreMatrix) {
    throw new XentErrors.SHAPE_MISMATCH(
      `targets must be shaped (B, T) = (${b}, ${t}) to match logits shaped (B, T, V) = (${b}, ${t}, ${vocab}), got a flat array`
    )
  }
  const targetRows = targets as number[][]
  expectTargetsLength(targetRows, b, [], `B = ${b}`)
  for (let i = 0; i < b; i++) expectTargetsLength(targetRows[i], t, [i], `T = ${t}`)
  return { rows: b * t, vocab, logitsShape: [b, t, vocab], targetsShape: [b, t] }
}

function expectLength(row: unknown[], expected: number, position: Array<string | number>, like: string): void {
  if (row.length !== expected) {
    throw new XentErrors.SHAPE_MISMATCH(
      `${formatPosition(position)} has length ${row.length}, expected ${expected} like ${like} (rows must not be ragged)`
    )
  }
}

function expectTargetsLength(row: unknown[], expected: number, position: number[], dimension: string): void {
  if (row.length !== expected) {
    throw new XentErrors.SHAPE_MISMATCH(
      `${formatPosition(['targets', ...position])} has length ${row.length}, expected ${dimension} from the shape of logits`
    )
  }
}

function copyLogits(source: CrossEntropyRequest['logits'], shape: number[], into: Float32Array): void {
  const vocab = shape[shape.length - 1]
  const rowsOf = isMatrix(source) ? [source] : (source as number[][][])
  let offset = 0
  for (let i = 0; i < rowsOf.length; i++) {
    const matrix = rowsOf[i]
    for (let j = 0; j < matrix.length; j++) {
      const row = matrix[j]
      for (let c = 0; c < vocab; c++) into[offset + c] = row[c]
      // A finite double can still overflow float32 (e.g. 1e39), and JSON's 1e999 parses to Infinity.
      for (let c = 0; c < vocab; c++) {
        if (!Number.isFinite(into[offset + c])) {
          const position = isMatrix(source) ? ['logits', j, c] : ['logits', i, j, c]
          throw new XentErrors.NON_FINITE(
            `${formatPosition(position)} is ${row[c]}, which is not a finite float32 (|x| ≤ 3.4028235e38)`
          )
        }
      }
      offset += vocab
    }
  }
}

/** soft_targets, which must have the shape of logits, into float32 (range and sums checked after). */
function copySoftTargets(source: CrossEntropyRequest['logits'], shape: number[], into: Float32Array): void {
  const vocab = shape[shape.length - 1]
  const matrices = isMatrix(source) ? [source] : (source as number[][][])
  const leading = shape.slice(0, -1)
  const expected = leading.length === 1 ? [1, leading[0]] : leading
  if (!isMatrix(source) !== (shape.length === 3) || matrices.length !== expected[0]) {
    throw new XentErrors.SHAPE_MISMATCH(`soft_targets must have the shape of logits, ${JSON.stringify(shape)}`)
  }
  let offset = 0
  for (let i = 0; i < matrices.length; i++) {
    const matrix = matrices[i]
    const at = (j?: number) =>
      isMatrix(source)
        ? ['soft_targets', ...(j === undefined ? [] : [j])]
        : ['soft_targets', i, ...(j === undefined ? [] : [j])]
    expectLength(matrix, expected[1], at(), 'logits')
    for (let j = 0; j < matrix.length; j++) {
      expectLength(matrix[j], vocab, at(j), 'logits')
      for (let c = 0; c < vocab; c++) into[offset + c] = matrix[j][c]
      offset += vocab
    }
  }
}

function copyTargets(
  source: NonNullable<CrossEntropyRequest['targets']>,
  vocab: number,
  ignoreIndex: number,
  into: Int32Array
): void {
  const nested = Array.isArray(source[0])
  const rowsOf = nested ? (source as number[][]) : [source as number[]]
  let offset = 0
  for (let i = 0; i < rowsOf.length; i++) {
    const row = rowsOf[i]
    for (let j = 0; j < row.length; j++) {
      const target = row[j]
      if (target !== ignoreIndex && !(target >= 0 && target < vocab)) {
        throw targetOutOfRange(nested ? ['targets', i, j] : ['targets', j], target, vocab, ignoreIndex)
      }
      into[offset + j] = target
    }
    offset += row.length
  }
}

function decodeWeight(source: number[], vocab: number, memory: ArenaGroup): Float32Array {
  if (source.length !== vocab) {
    throw new XentErrors.INVALID_WEIGHT(`weight has length ${source.length}, expected V = ${vocab} (one per class)`)
  }
  const weight = memory.float32(vocab)
  weight.set(source)
  for (let c = 0; c < vocab; c++) {
    if (!Number.isFinite(weight[c])) {
      throw new XentErrors.INVALID_WEIGHT(`weight[${c}] is ${source[c]}, which is not a finite float32`)
    }
  }
  return weight
}

/** Builds the JSON answer: non-finite scalars become null, large outputs take the caller's shapes. */
export function encodeJsonResponse(batch: CrossEntropyBatch, result: CrossEntropyResult): CrossEntropyResponse {
  const response: CrossEntropyResponse = {
    loss:
      batch.reduction === 'none'
        ? (reshape(result.tokenLoss, batch.targetsShape) as number[] | number[][])
        : finiteOrNull(result.loss),
    perplexity: finiteOrNull(result.perplexity),
    count: result.count
  }
  if (batch.outputs.has('token_losses')) {
    response.token_losses = reshape(result.tokenLoss, batch.targetsShape) as number[] | number[][]
  }
  if (result.gradients !== null) {
    response.gradients = reshape(result.gradients, batch.logitsShape) as number[][] | number[][][]
  }
  const analytics = result.analytics
  if (analytics !== null) {
    const like = (values: Float64Array | Int32Array) => reshape(values, batch.targetsShape) as number[] | number[][]
    const wants = (name: OutputName) => batch.outputs.has(name)
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

type Nested = number[] | number[][] | number[][][]

/** A flat typed array → nested plain arrays of the given shape (1 to 3 dimensions). */
export function reshape(flat: Float32Array | Float64Array | Int32Array, shape: number[]): Nested {
  const last = shape[shape.length - 1]
  const leaves: number[][] = []
  for (let offset = 0; offset < flat.length; offset += last) {
    // A plain loop: Array.from on a typed array is an order of magnitude slower here.
    const leaf = new Array<number>(last)
    for (let i = 0; i < last; i++) leaf[i] = flat[offset + i]
    leaves.push(leaf)
  }
  if (shape.length === 1) return leaves[0]
  if (shape.length === 2) return leaves
  const outer: number[][][] = []
  for (let i = 0; i < shape[0]; i++) outer.push(leaves.slice(i * shape[1], (i + 1) * shape[1]))
  return outer
}

/** A logprobs request into kernel memory: the same shapes and checks as a cross-entropy one. */
export function decodeLogprobsJson(body: LogprobsRequest, memorySource: MemorySource): LogprobsBatch {
  const ignoreIndex = body.ignore_index ?? DEFAULT_IGNORE_INDEX
  const { rows, vocab, logitsShape, targetsShape } = measureShapes(body.logits, body.targets)
  const topK = body.top_k ?? 0
  if (body.targets === undefined && topK === 0 && body.outputs?.includes('entropy') !== true) {
    throw nothingAsked()
  }
  if (topK > vocab) throw new XentErrors.INVALID_REQUEST(`top_k is ${topK}, more than the ${vocab} classes of logits`)
  const allocations = logprobsAllocations({
    rows,
    vocab,
    format: 'json',
    targets: body.targets !== undefined,
    topK,
    entropy: body.outputs?.includes('entropy') === true
  })
  memorySource.admit({ elements: rows * vocab, logitsShape, bytes: planBytes(0, allocations) })
  const memory = memorySource.group()
  try {
    const logits = memory.float32(rows * vocab)
    copyLogits(body.logits, logitsShape, logits)
    let targets: Int32Array | null = null
    if (body.targets !== undefined) {
      targets = memory.int32(rows)
      copyTargets(body.targets, vocab, ignoreIndex, targets)
    }
    return {
      memory,
      logits,
      logitsDtype: 'F32',
      targets,
      rows,
      vocab,
      logitsShape,
      leadingShape: targetsShape,
      ignoreIndex,
      topK,
      softcap: body.softcap ?? 0,
      temperature: body.temperature ?? 1,
      entropy: body.outputs?.includes('entropy') === true
    }
  } catch (error) {
    memory.release()
    throw error
  }
}

/** Builds the JSON answer of a logprobs request. */
export function encodeLogprobsJson(batch: LogprobsBatch, result: LogprobsResult): LogprobsResponse {
  const response: LogprobsResponse = {}
  const leading = batch.leadingShape
  if (result.targetLogprobs !== null) {
    response.target_logprobs = reshape(result.targetLogprobs, leading) as number[] | number[][]
  }
  if (result.topIds !== null && result.topLogprobs !== null) {
    const shape = [...leading, batch.topK]
    response.top_k = {
      ids: reshape(result.topIds, shape) as number[][] | number[][][],
      logprobs: reshape(result.topLogprobs, shape) as number[][] | number[][][]
    }
  }
  if (result.entropy !== null) response.entropy = reshape(result.entropy, leading) as number[] | number[][]
  return response
}
