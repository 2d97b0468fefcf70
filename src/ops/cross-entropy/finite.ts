import { formatPosition, rowPosition } from '../../codec/positions.js'
import { ROW_STATS, STAT_LOG_SUM_EXP } from '../../engine/abi.js'
import { XentErrors } from '../../errors.js'
import { decodeLogitRow } from '../../kernels/half.js'
import type { CrossEntropyJob } from './plan.js'

/**
 * A 200 never holds null where the contract promises a number. A token loss or gradient that is
 * not finite has one of these causes, each refused with a 400 that names it and where:
 * - label smoothing (or a soft target) puts weight on a masked (−Inf) logit: its loss is +Inf,
 *   as in PyTorch, which no optimiser can use;
 * - z_loss·logsumexp² (or the gradient's 2·z_loss·logsumexp) overflows.
 */
export function checkFinite(
  job: CrossEntropyJob,
  loss: number,
  tokenLoss: Float64Array,
  gradients: Float32Array | null,
  gradientBound: number
): void {
  const { vocab, targetsShape } = job.shape
  let row = firstNonFinite(tokenLoss)
  // The scalar loss overflowing while every token loss is finite: blame the largest.
  if (row < 0 && Math.abs(loss) === Number.POSITIVE_INFINITY) row = indexOfLargest(tokenLoss)
  // A bound on every |gradient| says, for almost every request, that none can have overflowed
  // without looking at them; only past it are they read.
  if (row < 0 && gradients !== null && !(gradientBound < 1e38)) {
    const at = firstNonFinite(gradients)
    if (at >= 0) row = Math.floor(at / vocab)
  }
  if (row < 0) return
  const { options } = job
  const where = formatPosition(rowPosition('logits', row, targetsShape))
  const values = decodeLogitRow(job.logits, job.dtype, row, vocab)
  const masked = values.indexOf(Number.NEGATIVE_INFINITY)
  if (masked >= 0 && options.labelSmoothing > 0) {
    throw new XentErrors.NON_FINITE(
      `${where}[${masked}] is −Inf (a masked class), and label_smoothing ${options.labelSmoothing} gives every class a share of the target, so the loss would be infinite; send label_smoothing 0 with masked logits`
    )
  }
  if (masked >= 0 && job.softTargets !== null) {
    const column = values.findIndex(
      (x, c) => x === Number.NEGATIVE_INFINITY && (job.softTargets as Float32Array)[row * vocab + c] > 0
    )
    if (column >= 0) {
      throw new XentErrors.NON_FINITE(
        `${where}[${column}] is −Inf (a masked class), and ${formatPosition(['soft_targets', ...rowPosition('', row, targetsShape).slice(1), column])} gives it probability ${(job.softTargets as Float32Array)[row * vocab + column]}, so the loss would be infinite`
      )
    }
  }
  if (options.zLoss > 0) {
    const lse = job.views.stats === null ? Number.NaN : job.views.stats[row * ROW_STATS + STAT_LOG_SUM_EXP]
    throw new XentErrors.INVALID_REQUEST(
      `z_loss ${options.zLoss} is too large for ${where}: its logsumexp is ${lse}, and z_loss·logsumexp² must stay below 1.8e308 (a double) and 2·z_loss·logsumexp below 3.4e38 (a float32 gradient); lower z_loss`
    )
  }
  // Not reached by any input we know of (logits and weights are float32, so the sums above stay
  // within a double): kept so that an overflow still gets a 400 rather than nulls in a 200.
  throw new XentErrors.INVALID_REQUEST(
    `the loss or gradient of ${where} overflows (a float32 gradient stays below 3.4e38, a loss below 1.8e308); scale the logits or weight down`
  )
}

function firstNonFinite(values: Float64Array | Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i
  return -1
}

function indexOfLargest(values: Float64Array): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i
  return best
}
