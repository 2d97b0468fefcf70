import { ROW_STATS, STAT_ARGMAX, STAT_ENTROPY, STAT_LOG_SUM_EXP } from '../../engine/abi.js'

export interface Analytics {
  /** Per row: H of softmax(x), 0 where ignored. */
  entropy: Float64Array
  /** Per row: log p[target], 0 where ignored. */
  targetLogprobs: Float64Array
  /** Per row: the first index of the largest logit. */
  predictions: Int32Array
  /** Counted rows whose prediction is the target, over count; NaN when count is 0. */
  accuracy: number
  /** Mean plain NLL over each sequence's counted rows; NaN where none count. */
  sequenceLosses: Float64Array
  /** exp of each sequence loss (Infinity on overflow, NaN where none count). */
  sequencePerplexities: Float64Array
  /** Mean plain NLL / ln 2; NaN when count is 0. */
  bitsPerToken: number
  /** Mean lse² over counted rows; NaN when count is 0. */
  zLoss: number
}

/**
 * Reduces the kernels' per-row results (plain NLL and ROW_STATS stats) to the analytics outputs,
 * in row order on one thread, as reduceRows does for the loss. Sequences are consecutive runs of
 * `sequenceLength` rows: T for (B, T, V) logits, every row for (N, V).
 */
export function reduceAnalytics(
  targets: Int32Array,
  ignoreIndex: number,
  nll: Float64Array,
  stats: Float64Array,
  sequenceLength: number
): Analytics {
  const rows = targets.length
  const entropy = new Float64Array(rows)
  const targetLogprobs = new Float64Array(rows)
  const predictions = new Int32Array(rows)
  const sequences = Math.ceil(rows / sequenceLength)
  const sequenceLosses = new Float64Array(sequences)
  const sequencePerplexities = new Float64Array(sequences)
  let count = 0
  let correct = 0
  let nllSum = 0
  let lseSquareSum = 0
  for (let s = 0; s < sequences; s++) {
    let sequenceSum = 0
    let sequenceCount = 0
    for (let row = s * sequenceLength; row < Math.min(rows, (s + 1) * sequenceLength); row++) {
      const at = row * ROW_STATS
      predictions[row] = stats[at + STAT_ARGMAX]
      if (targets[row] === ignoreIndex) continue
      entropy[row] = stats[at + STAT_ENTROPY]
      targetLogprobs[row] = -nll[row]
      const lse = stats[at + STAT_LOG_SUM_EXP]
      lseSquareSum += lse * lse
      if (predictions[row] === targets[row]) correct++
      sequenceSum += nll[row]
      sequenceCount++
    }
    sequenceLosses[s] = sequenceCount === 0 ? Number.NaN : sequenceSum / sequenceCount
    sequencePerplexities[s] = Math.exp(sequenceLosses[s])
    count += sequenceCount
    nllSum += sequenceSum
  }
  const perToken = (sum: number) => (count === 0 ? Number.NaN : sum / count)
  return {
    entropy,
    targetLogprobs,
    predictions,
    accuracy: perToken(correct),
    sequenceLosses,
    sequencePerplexities,
    bitsPerToken: perToken(nllSum) / Math.LN2,
    zLoss: perToken(lseSquareSum)
  }
}
