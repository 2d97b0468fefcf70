import type { CrossEntropyBatch } from '../batch.js'
import { decodeLogitRow } from '../codec/half.js'
import { formatPosition, rowPosition } from '../codec/schema-errors.js'
import { XentErrors } from '../errors.js'
import { classWeightSum, summarizeTargets } from '../kernel/cross-entropy.js'
import { gradientScale, reduceRows } from '../kernel/reduce.js'
import {
  ALL_ROWS_VALID,
  INVALID_NOT_FINITE,
  INVALID_ROW_REASON,
  type KernelRows,
  LOGITS_DTYPE
} from '../kernel/wasm.js'

/** Below this many logits a task is not worth posting to another worker. */
export const MIN_ELEMENTS_PER_TASK = 1 << 16

/** Runs one row range (in a worker, or on this thread); resolves to the first invalid row or −1. */
export type TaskRunner = (task: KernelRows) => Promise<number>

export interface CrossEntropyResult {
  /** Scalar loss for mean and sum (NaN for a mean over zero weight); unused for none. */
  loss: number
  perplexity: number
  count: number
  /** Views into the batch's memory: valid until the batch is released. */
  tokenLoss: Float64Array
  gradients: Float32Array | null
}

/**
 * Splits [0, rows) into at most `maxTasks` contiguous ranges of near-equal size, with at least
 * MIN_ELEMENTS_PER_TASK logits each, so a large request uses every worker and a small one
 * costs a single hop.
 */
export function partitionRows(rows: number, vocab: number, maxTasks: number): Array<[number, number]> {
  const worthwhile = Math.max(1, Math.floor((rows * vocab) / MIN_ELEMENTS_PER_TASK))
  const tasks = Math.min(maxTasks, worthwhile, rows)
  const ranges: Array<[number, number]> = []
  for (let i = 0; i < tasks; i++) {
    ranges.push([Math.floor((i * rows) / tasks), Math.floor(((i + 1) * rows) / tasks)])
  }
  return ranges
}

/**
 * Runs a batch through `run` (the pool, or this thread) and reduces the per-row results. The
 * outputs are allocated in the batch's memory; tasks carry only addresses into it.
 */
export async function computeCrossEntropy(
  batch: CrossEntropyBatch,
  run: TaskRunner,
  maxTasks: number
): Promise<CrossEntropyResult> {
  const summary = summarizeTargets(batch.targets, batch.ignoreIndex, batch.weight)
  const tokenLoss = batch.memory.float64(batch.rows)
  const nll = batch.memory.float64(batch.rows)
  const gradients = batch.outputs.has('gradients') ? batch.memory.float32(batch.rows * batch.vocab) : null
  const call = {
    logits: batch.logits.byteOffset,
    logitsDtype: LOGITS_DTYPE[batch.logitsDtype],
    targets: batch.targets.byteOffset,
    vocab: batch.vocab,
    ignoreIndex: batch.ignoreIndex,
    labelSmoothing: batch.labelSmoothing,
    weight: batch.weight?.byteOffset ?? 0,
    classWeightSum: classWeightSum(batch.weight, batch.vocab),
    gradScale: gradientScale(batch.reduction, summary),
    tokenLoss: tokenLoss.byteOffset,
    nll: nll.byteOffset,
    gradients: gradients?.byteOffset ?? 0
  }
  const ranges = partitionRows(batch.rows, batch.vocab, maxTasks)
  const verdicts = await Promise.all(ranges.map(([rowStart, rowEnd]) => run({ ...call, rowStart, rowEnd })))
  // Ranges are in row order, so the first verdict that names a row names the first bad row.
  const invalidRow = verdicts.find((row) => row !== ALL_ROWS_VALID)
  if (invalidRow !== undefined) throw invalidRowError(batch, invalidRow, tokenLoss[invalidRow])

  const { loss, perplexity } = reduceRows(tokenLoss, nll, batch.reduction, summary)
  return { loss, perplexity, count: summary.count, tokenLoss, gradients }
}

/** The kernel found a row it cannot take (NaN, +Inf, or −Inf where it matters): name the place. */
function invalidRowError(batch: CrossEntropyBatch, row: number, reasonCode: number): Error {
  const where = formatPosition(rowPosition('logits', row, batch.targetsShape))
  // A NaN or +Inf comes first, whatever the kernel saw first: find its exact class for the
  // message. This row is one of at most a few scanned in JS.
  const values = decodeLogitRow(batch.logits, batch.logitsDtype, row, batch.vocab)
  const column = values.findIndex((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)
  if (column >= 0) {
    return new XentErrors.NON_FINITE(`${where}[${column}] is ${values[column]}; logits must be finite or −Inf (masked)`)
  }
  const reason = reasonCode === INVALID_NOT_FINITE ? undefined : INVALID_ROW_REASON[reasonCode]
  return new XentErrors.NON_FINITE(`${where} ${reason ?? 'is invalid'}`)
}
