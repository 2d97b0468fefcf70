import type { LogprobsBatch } from '../batch.js'
import { decodeLogitRow } from '../codec/half.js'
import { formatPosition, rowPosition } from '../codec/schema-errors.js'
import { XentErrors } from '../errors.js'
import { LOGPROB_ROWS_VALID, type LogprobsOutputs, logprobRows } from '../kernel/logprobs.js'
import { LOGITS_DTYPE, ROWS_CANCELLED } from '../kernel/wasm.js'
import { type ComputeOptions, partitionRows } from './compute.js'
import { runRanges } from './tasks.js'

/** One row range of a logprobs batch: addresses into the shared memory (0 for an absent array). */
export interface LogprobsTask {
  logits: number
  logitsDtype: number
  targets: number
  rows: number
  rowStart: number
  rowEnd: number
  vocab: number
  ignoreIndex: number
  softcap: number
  temperature: number
  topK: number
  targetLogprobs: number
  topIds: number
  topLogprobs: number
  entropy: number
  control: number
  taskId: number
}

export type LogprobsRunner = (task: LogprobsTask, signal?: AbortSignal) => Promise<number>

/** Views into the batch's memory: valid until it is released. */
export interface LogprobsResult {
  targetLogprobs: Float64Array | null
  topIds: Int32Array | null
  topLogprobs: Float64Array | null
  entropy: Float64Array | null
}

/** Runs a task on this thread (in a worker, which has claimed it, or in tests) over `buffer`, the kernel's memory. */
export function runLogprobsTask(buffer: ArrayBufferLike, words: Int32Array, task: LogprobsTask): number {
  const length = task.rows * task.vocab
  const logits =
    task.logitsDtype === LOGITS_DTYPE.F32
      ? new Float32Array(buffer, task.logits, length)
      : new Uint16Array(buffer, task.logits, length)
  const view = <T>(make: (address: number) => T, address: number) => (address === 0 ? null : make(address))
  const out: LogprobsOutputs = {
    targetLogprobs: view((a) => new Float64Array(buffer, a, task.rows), task.targetLogprobs),
    topIds: view((a) => new Int32Array(buffer, a, task.rows * task.topK), task.topIds),
    topLogprobs: view((a) => new Float64Array(buffer, a, task.rows * task.topK), task.topLogprobs),
    entropy: view((a) => new Float64Array(buffer, a, task.rows), task.entropy)
  }
  const targets = view((a) => new Int32Array(buffer, a, task.rows), task.targets)
  // Cancellation is checked between slices of rows: the plain kernel has no control word of its own.
  const slice = 64
  for (let start = task.rowStart; start < task.rowEnd; start += slice) {
    if (task.control !== 0 && Atomics.load(words, task.control >> 2) < 0) return ROWS_CANCELLED
    const verdict = logprobRows(logits, targets, task, start, Math.min(task.rowEnd, start + slice), out)
    if (verdict !== LOGPROB_ROWS_VALID) return verdict
  }
  return LOGPROB_ROWS_VALID
}

/** Splits a logprobs batch across the pool, like computeCrossEntropy. */
export async function computeLogprobs(
  batch: LogprobsBatch,
  run: LogprobsRunner,
  maxTasks: number,
  options: ComputeOptions = {}
): Promise<LogprobsResult> {
  options.signal?.throwIfAborted()
  const { memory, rows, topK } = batch
  const result: LogprobsResult = {
    targetLogprobs: batch.targets === null ? null : memory.float64(rows),
    topIds: topK > 0 ? memory.int32(rows * topK) : null,
    topLogprobs: topK > 0 ? memory.float64(rows * topK) : null,
    entropy: batch.entropy ? memory.float64(rows) : null
  }
  const call = {
    logits: batch.logits.byteOffset,
    logitsDtype: LOGITS_DTYPE[batch.logitsDtype],
    targets: batch.targets?.byteOffset ?? 0,
    rows,
    vocab: batch.vocab,
    ignoreIndex: batch.ignoreIndex,
    softcap: batch.softcap,
    temperature: batch.temperature,
    topK,
    targetLogprobs: result.targetLogprobs?.byteOffset ?? 0,
    topIds: result.topIds?.byteOffset ?? 0,
    topLogprobs: result.topLogprobs?.byteOffset ?? 0,
    entropy: result.entropy?.byteOffset ?? 0
  }
  const verdicts = await runRanges(
    partitionRows(rows, batch.vocab, maxTasks),
    (rowStart, rowEnd, control, taskId) => ({ ...call, rowStart, rowEnd, control, taskId }),
    run,
    options
  )
  const invalidRow = verdicts.find((row) => row >= 0)
  if (invalidRow !== undefined) throw invalidLogprobsRow(batch, invalidRow)
  return result
}

function invalidLogprobsRow(batch: LogprobsBatch, row: number): Error {
  const where = formatPosition(rowPosition('logits', row, batch.leadingShape))
  const values = decodeLogitRow(batch.logits, batch.logitsDtype, row, batch.vocab)
  const column = values.findIndex((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)
  if (column >= 0) {
    return new XentErrors.NON_FINITE(`${where}[${column}] is ${values[column]}; logits must be finite or −Inf (masked)`)
  }
  if (values.every((x) => x === Number.NEGATIVE_INFINITY)) {
    return new XentErrors.NON_FINITE(`${where} is −Inf everywhere (every class masked)`)
  }
  return new XentErrors.NON_FINITE(`${where} has −Inf at the target's own class`)
}
