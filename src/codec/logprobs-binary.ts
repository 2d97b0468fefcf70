import { DEFAULT_IGNORE_INDEX } from '../../schemas/cross-entropy.js'
import { type LogprobsQuery, MAX_TOP_K } from '../../schemas/logprobs.js'
import { type Admission, type LogprobsBatch, logprobsAllocations, planBytes } from '../batch.js'
import { XentErrors } from '../errors.js'
import type { LogitsDtype } from '../kernel/wasm.js'
import type { LogprobsResult } from '../pool/logprobs.js'
import { type BinaryBody, checkShapes, copyTargets, logitsView, misalignedTensors, readRequestFile } from './binary.js'
import { writeSafetensors } from './safetensors.js'

/** A safetensors logprobs body (logits, optionally targets) → a batch; options from the query. */
export function decodeLogprobsSafetensors(body: BinaryBody, query: LogprobsQuery, admit: Admission): LogprobsBatch {
  const file = readRequestFile(body.bytes, ['logits', 'targets'], 'send logits and optionally targets')
  const logitsInfo = file.tensors.get('logits')
  if (logitsInfo === undefined) throw new XentErrors.INVALID_SAFETENSORS('the file has no tensor "logits"')
  const targetsInfo = file.tensors.get('targets')
  const { rows, vocab } = checkShapes(logitsInfo, targetsInfo)

  const ignoreIndex = query.ignore_index === undefined ? DEFAULT_IGNORE_INDEX : Number(query.ignore_index)
  if (ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new XentErrors.INVALID_REQUEST(`ignore_index is ${query.ignore_index}; it must be a 32-bit integer`)
  }
  const topK = query.top_k === undefined ? 0 : Number(query.top_k)
  if (query.top_k !== undefined && !(topK >= 1 && topK <= MAX_TOP_K)) {
    throw new XentErrors.INVALID_REQUEST(`top_k is ${query.top_k}; it must be an integer in [1, ${MAX_TOP_K}]`)
  }
  if (topK > vocab) throw new XentErrors.INVALID_REQUEST(`top_k is ${topK}, more than the ${vocab} classes of logits`)
  const positive = (name: 'softcap' | 'temperature', fallback: number) => {
    const value = query[name] === undefined ? fallback : Number(query[name])
    if (!(value > 0 && Number.isFinite(value))) {
      throw new XentErrors.INVALID_REQUEST(`${name} is ${query[name]}; it must be a finite number > 0`)
    }
    return value
  }
  const softcap = query.softcap === undefined ? 0 : positive('softcap', 0)
  const temperature = positive('temperature', 1)

  if (targetsInfo === undefined && topK === 0 && query.outputs !== 'entropy') throw nothingAsked()
  const { memory, bytes } = body
  const allocations = logprobsAllocations({
    rows,
    vocab,
    format: 'safetensors',
    targets: targetsInfo !== undefined,
    topK,
    entropy: query.outputs === 'entropy',
    alignedCopies: misalignedTensors(bytes, [logitsInfo])
  })
  admit({ elements: rows * vocab, logitsShape: logitsInfo.shape, bytes: planBytes(bytes.byteLength, allocations) })
  let targets: Int32Array | null = null
  if (targetsInfo !== undefined) {
    targets = memory.int32(rows)
    copyTargets(bytes, targetsInfo, vocab, ignoreIndex, targets)
  }
  return {
    memory,
    logits: logitsView(bytes, logitsInfo, memory),
    logitsDtype: logitsInfo.dtype as LogitsDtype,
    targets,
    rows,
    vocab,
    logitsShape: logitsInfo.shape,
    leadingShape: logitsInfo.shape.slice(0, -1),
    ignoreIndex,
    topK,
    softcap,
    temperature,
    entropy: query.outputs === 'entropy'
  }
}

/**
 * A logprobs answer as safetensors: target_logprobs (F32, like targets), top_k_ids (I64) and
 * top_k_logprobs (F32), both (…, k), and entropy (F32, like the leading dimensions).
 */
export function encodeLogprobsSafetensors(batch: LogprobsBatch, result: LogprobsResult): Uint8Array[] {
  const tensors: Parameters<typeof writeSafetensors>[0] = []
  const leading = batch.leadingShape
  if (result.targetLogprobs !== null) {
    tensors.push({
      name: 'target_logprobs',
      dtype: 'F32',
      shape: leading,
      data: Float32Array.from(result.targetLogprobs)
    })
  }
  if (result.topIds !== null && result.topLogprobs !== null) {
    const shape = [...leading, batch.topK]
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

/** A logprobs request that asks for nothing. */
export function nothingAsked(): Error {
  return new XentErrors.INVALID_REQUEST('nothing to compute: send targets, top_k, or outputs with entropy')
}
