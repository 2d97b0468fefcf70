import type { CrossEntropyBatch } from '../batch.js'
import { sharedFloat32, sharedFloat64 } from '../batch.js'
import { classWeightSum, summarizeTargets } from '../kernel/cross-entropy.js'
import { gradientScale, reduceRows } from '../kernel/reduce.js'
import type { CrossEntropyTask } from './task.js'

/** Below this many logits a task is not worth posting to another worker. */
export const MIN_ELEMENTS_PER_TASK = 1 << 16

export type TaskRunner = (task: CrossEntropyTask) => Promise<unknown>

export interface CrossEntropyResult {
  /** Scalar loss for mean and sum (NaN for a mean over zero weight); unused for none. */
  loss: number
  perplexity: number
  count: number
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

/** Runs a batch through `run` (the pool, or this thread) and reduces the per-row results. */
export async function computeCrossEntropy(
  batch: CrossEntropyBatch,
  run: TaskRunner,
  maxTasks: number
): Promise<CrossEntropyResult> {
  const summary = summarizeTargets(batch.targets, batch.ignoreIndex, batch.weight)
  const tokenLoss = sharedFloat64(batch.rows)
  const nll = sharedFloat64(batch.rows)
  const gradients = batch.outputs.has('gradients') ? sharedFloat32(batch.rows * batch.vocab) : null
  const shared = {
    logits: batch.logits,
    targets: batch.targets,
    weight: batch.weight,
    tokenLoss,
    nll,
    gradients,
    vocab: batch.vocab,
    ignoreIndex: batch.ignoreIndex,
    labelSmoothing: batch.labelSmoothing,
    classWeightSum: classWeightSum(batch.weight, batch.vocab),
    gradScale: gradientScale(batch.reduction, summary)
  }
  const ranges = partitionRows(batch.rows, batch.vocab, maxTasks)
  await Promise.all(ranges.map(([rowStart, rowEnd]) => run({ ...shared, rowStart, rowEnd })))

  const { loss, perplexity } = reduceRows(tokenLoss, nll, batch.reduction, summary)
  return { loss, perplexity, count: summary.count, tokenLoss, gradients }
}
