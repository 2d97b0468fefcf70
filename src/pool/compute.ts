import { type CrossEntropyBatch, needsRowStats } from '../batch.js'
import { decodeLogitRow } from '../codec/half.js'
import { formatPosition, rowPosition } from '../codec/schema-errors.js'
import { XentErrors } from '../errors.js'
import { ANALYTICS_OUTPUTS, type Analytics, reduceAnalytics } from '../kernel/analytics.js'
import { classWeightSum, summarizeTargets } from '../kernel/cross-entropy.js'
import { gradientScale, reduceRows } from '../kernel/reduce.js'
import { ROW_STATS, STAT_LOG_SUM_EXP } from '../kernel/stats.js'
import {
  INVALID_ALL_MASKED,
  INVALID_ROW_REASON,
  INVALID_TARGET_MASKED,
  type KernelRows,
  LOGITS_DTYPE
} from '../kernel/wasm.js'
import type { ControlWords } from './control.js'
import { runRanges } from './tasks.js'

/** Below this many logits a task is not worth posting to another worker. */
export const MIN_ELEMENTS_PER_TASK = 1 << 16

/**
 * Runs one row range (in a worker, or on this thread); resolves to the first invalid row, −1, or
 * ROWS_CANCELLED. `signal` aborts a task that no worker has claimed yet (see runRanges).
 */
export type TaskRunner = (task: KernelRows, signal?: AbortSignal) => Promise<number>

/** How far cancelled work had got: still queued, or already running on a worker. */
export type CancelledStage = 'queued' | 'running'

export interface ComputeOptions {
  /** Control words for the tasks; without them a task cannot be stopped once it runs. */
  controls?: ControlWords
  /** Aborting it cancels the batch's tasks; the computation then rejects with its reason. */
  signal?: AbortSignal
  /** Told of each task that was cancelled, and at which stage. */
  onCancelled?: (stage: CancelledStage) => void
}

export interface CrossEntropyResult {
  /** Scalar loss for mean and sum (NaN for a mean over zero weight); unused for none. */
  loss: number
  perplexity: number
  count: number
  /** Views into the batch's memory: valid until the batch is released. */
  tokenLoss: Float64Array
  gradients: Float32Array | null
  /** The analytics outputs, when any was asked for. */
  analytics: Analytics | null
}

/**
 * Adds z·lse² to each counted row's token loss (in place, so token_losses and reduction="none"
 * include it) and returns their sum, in row order.
 */
function addZLoss(batch: CrossEntropyBatch, tokenLoss: Float64Array, stats: Float64Array): number {
  let sum = 0
  for (let row = 0; row < batch.rows; row++) {
    if (batch.targets[row] === batch.ignoreIndex) continue
    const lse = stats[row * ROW_STATS + STAT_LOG_SUM_EXP]
    const term = batch.zLoss * lse * lse
    tokenLoss[row] += term
    sum += term
  }
  return sum
}

/** T for (B, T) targets; every row is one sequence for (N) targets. */
function sequenceLength(targetsShape: readonly number[]): number {
  return targetsShape.length === 2 ? targetsShape[1] : targetsShape[0]
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
  maxTasks: number,
  options: ComputeOptions = {}
): Promise<CrossEntropyResult> {
  options.signal?.throwIfAborted()
  // With class probabilities every row counts, and mean divides by the number of rows (PyTorch).
  const summary =
    batch.softTargets === null
      ? summarizeTargets(batch.targets, batch.ignoreIndex, batch.weight)
      : { count: batch.rows, targetWeightSum: batch.rows }
  const tokenLoss = batch.memory.float64(batch.rows)
  const nll = batch.memory.float64(batch.rows)
  const gradients = batch.outputs.has('gradients') ? batch.memory.float32(batch.rows * batch.vocab) : null
  // z-loss needs each row's log-sum-exp, which the stats carry.
  const stats = needsRowStats(batch.outputs, batch.zLoss) ? batch.memory.float64(batch.rows * ROW_STATS) : null
  // Under mean the z-loss part divides by count, whatever the class weights.
  const zScale = batch.reduction === 'mean' ? (summary.count > 0 ? 1 / summary.count : 0) : 1
  const ranges = partitionRows(batch.rows, batch.vocab, maxTasks)
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
    gradients: gradients?.byteOffset ?? 0,
    stats: stats?.byteOffset ?? 0,
    zGrad: 2 * batch.zLoss * zScale,
    softcap: batch.softcap,
    softTargets: batch.softTargets?.byteOffset ?? 0
  }
  const verdicts = await runRanges(
    ranges,
    (rowStart, rowEnd, control, taskId) => ({ ...call, rowStart, rowEnd, control, taskId }),
    run,
    options
  )
  // Ranges are in row order, so the first verdict that names a row names the first bad row.
  const invalidRow = verdicts.find((row) => row >= 0)
  if (invalidRow !== undefined) throw invalidRowError(batch, invalidRow, tokenLoss[invalidRow])

  let { loss, perplexity } = reduceRows(tokenLoss, nll, batch.reduction, summary)
  if (batch.zLoss > 0 && stats !== null) loss += addZLoss(batch, tokenLoss, stats) * zScale
  const analytics =
    stats === null || !ANALYTICS_OUTPUTS.some((name) => batch.outputs.has(name))
      ? null
      : reduceAnalytics(batch.targets, batch.ignoreIndex, nll, stats, sequenceLength(batch.targetsShape))
  return { loss, perplexity, count: summary.count, tokenLoss, gradients, analytics }
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
  // Otherwise a −Inf where it matters: read which from the row itself.
  let reason = INVALID_ROW_REASON[reasonCode]
  if (values.every((x) => x === Number.NEGATIVE_INFINITY)) reason = INVALID_ROW_REASON[INVALID_ALL_MASKED]
  else if (values[batch.targets[row]] === Number.NEGATIVE_INFINITY) reason = INVALID_ROW_REASON[INVALID_TARGET_MASKED]
  return new XentErrors.NON_FINITE(`${where} ${reason ?? 'is invalid'}`)
}
