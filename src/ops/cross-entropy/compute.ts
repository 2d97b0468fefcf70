import { ANALYTICS_OUTPUTS } from '../../../schemas/cross-entropy.js'
import { CROSS_ENTROPY_CALL, LOGITS_DTYPE, ROW_STATS, STAT_LOG_SUM_EXP, writeCall } from '../../engine/abi.js'
import type { Engine, RunOptions } from '../../engine/engine.js'
import type { Stage } from '../../engine/task.js'
import { firstInvalidRow, invalidRowError } from '../invalid-row.js'
import { type Analytics, reduceAnalytics } from './analytics.js'
import { checkFinite } from './finite.js'
import type { CrossEntropyJob } from './plan.js'
import { classWeightSum, gradientScale, reduceRows, summarizeTargets } from './reduce.js'

export interface CrossEntropyResult {
  /** Scalar loss for mean and sum (NaN for a mean over zero weight); unused for none. */
  loss: number
  perplexity: number
  count: number
  /** Views into the request's memory: valid until it is released. */
  tokenLoss: Float64Array
  gradients: Float32Array | null
  /** The analytics outputs, when any was asked for. */
  analytics: Analytics | null
}

/**
 * Runs a job's rows on the engine's workers, then reduces the per-row results in row order on
 * this thread, so the answer is bit for bit the same however the rows were split. The job's
 * reading stages run first in the same tasks, and `after` (printing the gradients) after it; a
 * reading stage that refuses a row makes it reject with StageDeclinedError.
 */
export async function computeCrossEntropy(
  engine: Pick<Engine, 'run' | 'arena'>,
  job: CrossEntropyJob,
  run: RunOptions = {},
  after: readonly Stage[] = []
): Promise<CrossEntropyResult> {
  const { shape, options, views } = job
  const { rows, vocab } = shape
  // With class probabilities every row counts, and mean divides by the number of rows (PyTorch).
  const summary =
    job.softTargets === null
      ? summarizeTargets(job.targets, options.ignoreIndex, job.weight)
      : { count: rows, targetWeightSum: rows }
  // Under mean the z-loss part divides by count, whatever the class weights.
  const zScale = options.reduction === 'mean' ? (summary.count > 0 ? 1 / summary.count : 0) : 1
  const gradScale = gradientScale(options.reduction, summary)
  const weightSum = classWeightSum(job.weight, vocab)
  const zGrad = 2 * options.zLoss * zScale
  writeCall(engine.arena.buffer, views.call.byteOffset, CROSS_ENTROPY_CALL, {
    logits: job.logits.byteOffset,
    dtype: LOGITS_DTYPE[job.dtype],
    targets: job.targets.byteOffset,
    vocab,
    ignoreIndex: options.ignoreIndex,
    weight: job.weight?.byteOffset ?? 0,
    tokenLoss: views.tokenLoss.byteOffset,
    nll: views.nll.byteOffset,
    gradients: views.gradients?.byteOffset ?? 0,
    stats: views.stats?.byteOffset ?? 0,
    softTargets: job.softTargets?.byteOffset ?? 0,
    labelSmoothing: options.labelSmoothing,
    classWeightSum: weightSum,
    gradScale,
    zGrad,
    softcap: options.softcap
  })
  const entry = job.softTargets === null ? 'hardTargetRows' : 'softTargetRows'
  const verdicts = await engine.run(job.memory, entry, views.call.byteOffset, rows, vocab, {
    ...run,
    before: job.reading,
    after
  })
  const invalidRow = firstInvalidRow(verdicts)
  if (invalidRow !== undefined) {
    throw invalidRowError(job.logits, job.dtype, invalidRow, vocab, shape.targetsShape)
  }

  let { loss, perplexity } = reduceRows(views.tokenLoss, views.nll, options.reduction, summary)
  if (options.zLoss > 0 && views.stats !== null) {
    loss += addZLoss(job, views.tokenLoss, views.stats) * zScale
  }
  checkFinite(job, loss, views.tokenLoss, views.gradients, gradientBound(job, weightSum, gradScale, zGrad))
  const analytics =
    views.stats === null || !ANALYTICS_OUTPUTS.some((name) => options.outputs.has(name))
      ? null
      : reduceAnalytics(job.targets, options.ignoreIndex, views.nll, views.stats, sequenceLength(shape.targetsShape))
  return { loss, perplexity, count: summary.count, tokenLoss: views.tokenLoss, gradients: views.gradients, analytics }
}

/**
 * Adds z·lse² to each counted row's token loss (in place, so token_losses and reduction="none"
 * include it) and returns their sum, in row order.
 */
function addZLoss(job: CrossEntropyJob, tokenLoss: Float64Array, stats: Float64Array): number {
  let sum = 0
  for (let row = 0; row < job.shape.rows; row++) {
    if (job.targets[row] === job.options.ignoreIndex) continue
    const lse = stats[row * ROW_STATS + STAT_LOG_SUM_EXP]
    const term = job.options.zLoss * lse * lse
    tokenLoss[row] += term
    sum += term
  }
  return sum
}

/**
 * A bound on every |gradient|: p ≤ 1 and the softcap's slope ≤ 1, so |g| ≤ scale·(2·w_max + W)
 * + |2z·lse| (W = Σ w; the z part with each row's own lse).
 */
function gradientBound(job: CrossEntropyJob, weightSum: number, gradScale: number, zGrad: number): number {
  const { weight, views } = job
  let maxWeight = 1
  if (weight !== null) {
    maxWeight = 0
    for (const w of weight) maxWeight = Math.max(maxWeight, w)
  }
  let largestLse = 0
  if (zGrad !== 0 && views.stats !== null) {
    for (let row = 0; row < job.shape.rows; row++) {
      largestLse = Math.max(largestLse, Math.abs(views.stats[row * ROW_STATS + STAT_LOG_SUM_EXP]))
    }
  }
  return Math.abs(gradScale) * (2 * maxWeight + weightSum) + Math.abs(zGrad) * largestLse
}

/** T for (B, T) targets; every row is one sequence for (N) targets. */
function sequenceLength(targetsShape: readonly number[]): number {
  return targetsShape.length === 2 ? targetsShape[1] : targetsShape[0]
}
