import type { Reduction } from '../../schemas/cross-entropy.js'

/**
 * A plain, obviously correct transcription of PyTorch's cross_entropy (LossNLL.cpp,
 * `cross_entropy_loss_label_smoothing`) over nested float64 arrays: log_softmax, then the
 * weighted NLL, then the smoothing term, then the reduction. It is slow on purpose and has no
 * gradient: tests hold the fused kernel to it, and its finite differences to the kernel's gradient.
 */
export interface ReferenceInput {
  logits: number[][]
  targets: number[]
  weight?: number[]
  ignoreIndex: number
  labelSmoothing: number
  reduction: Reduction
  /** z-loss coefficient: z·logsumexp(x)² joins each counted row's loss; under mean, divided by count. */
  zLoss?: number
  /** c > 0: every logit becomes c·tanh(x/c) first. */
  softcap?: number
  /** Class probabilities instead of `targets` (PyTorch's probability targets). */
  softTargets?: number[][]
}

export interface ReferenceOutput {
  /** A number for mean and sum (NaN for a mean over zero weight), one per row for none. */
  loss: number | number[]
  tokenLoss: number[]
  /** exp(mean plain −log p[target]) over counted rows; NaN when none count. */
  perplexity: number
}

export function logSoftmax(row: number[]): number[] {
  const max = Math.max(...row)
  const logSum = Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0))
  return row.map((x) => x - max - logSum)
}

export function referenceCrossEntropy(input: ReferenceInput): ReferenceOutput {
  const { targets, ignoreIndex, labelSmoothing, reduction } = input
  const cap = input.softcap ?? 0
  const logits = cap > 0 ? input.logits.map((row) => row.map((x) => cap * Math.tanh(x / cap))) : input.logits
  if (input.softTargets !== undefined) return referenceSoftTargets({ ...input, logits }, input.softTargets)
  const vocab = logits[0].length
  const weight = input.weight ?? new Array<number>(vocab).fill(1)

  const nllLoss: number[] = [] // weighted: w[y]·(−log p[y])
  const smoothLoss: number[] = [] // Σ_c w[c]·(−log p[c])
  const plainNll: number[] = []
  const zTerms: number[] = [] // z·lse², 0 where ignored
  const z = input.zLoss ?? 0
  let targetWeightSum = 0
  let count = 0
  for (let i = 0; i < logits.length; i++) {
    const logp = logSoftmax(logits[i])
    const y = targets[i]
    if (y === ignoreIndex) {
      nllLoss.push(0)
      smoothLoss.push(0)
      zTerms.push(0)
      continue
    }
    const row = logits[i]
    const max = Math.max(...row)
    const lse = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0))
    zTerms.push(z * lse * lse)
    count++
    targetWeightSum += weight[y]
    plainNll.push(-logp[y])
    nllLoss.push(-weight[y] * logp[y])
    smoothLoss.push(-logp.reduce((sum, lp, c) => sum + weight[c] * lp, 0))
  }

  // As PyTorch, the smoothing term exists only for label_smoothing > 0 (so a −Inf logit, whose
  // smoothing term is +Inf, costs nothing without smoothing instead of 0·Inf = NaN).
  const crossEntropy =
    labelSmoothing > 0
      ? nllLoss.map((nll, i) => (1 - labelSmoothing) * nll + (labelSmoothing / vocab) * smoothLoss[i])
      : nllLoss
  const tokenLoss = z > 0 ? crossEntropy.map((loss, i) => loss + zTerms[i]) : crossEntropy
  const sum = (xs: number[]) => xs.reduce((acc, x) => acc + x, 0)
  let loss: number | number[] = sum(tokenLoss)
  if (reduction === 'none') loss = tokenLoss
  if (reduction === 'mean') {
    // Both parts are divided by the total target weight, each on its own, as PyTorch does.
    loss =
      (1 - labelSmoothing) * (sum(nllLoss) / targetWeightSum) +
      (labelSmoothing / vocab) * (sum(smoothLoss) / targetWeightSum)
    // The z-loss part divides by the count, whatever the weights.
    if (z > 0) loss += sum(zTerms) / count
  }
  const perplexity = count === 0 ? Number.NaN : Math.exp(sum(plainNll) / count)
  return { loss, tokenLoss, perplexity }
}

export interface ReferenceAnalytics {
  entropy: number[]
  targetLogprobs: number[]
  predictions: number[]
  /** NaN when nothing counts (the API says null). */
  accuracy: number
  sequenceLosses: number[]
  sequencePerplexities: number[]
  bitsPerToken: number
  zLoss: number
}

/**
 * The analytics outputs, textbook style, over nested float64 arrays: entropy as −Σ p·log p, the
 * prediction as the first index of the largest logit, the rest from −log p[target] and
 * logsumexp. `sequenceLength` is T for (B, T, V) logits, or the row count for (N, V).
 */
export function referenceAnalytics(
  logits: number[][],
  targets: number[],
  ignoreIndex: number,
  sequenceLength: number
): ReferenceAnalytics {
  const entropy: number[] = []
  const targetLogprobs: number[] = []
  const predictions: number[] = []
  const nll: Array<number | null> = []
  const lseSquares: number[] = []
  let correct = 0
  for (let i = 0; i < logits.length; i++) {
    const row = logits[i]
    const max = Math.max(...row)
    predictions.push(row.indexOf(max))
    if (targets[i] === ignoreIndex) {
      entropy.push(0)
      targetLogprobs.push(0)
      nll.push(null)
      continue
    }
    const logp = logSoftmax(row)
    entropy.push(-logp.reduce((sum, lp) => (lp === Number.NEGATIVE_INFINITY ? sum : sum + Math.exp(lp) * lp), 0))
    targetLogprobs.push(logp[targets[i]])
    nll.push(-logp[targets[i]])
    const lse = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0))
    lseSquares.push(lse * lse)
    if (row.indexOf(max) === targets[i]) correct++
  }
  const counted = nll.filter((value): value is number => value !== null)
  const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
  const sequenceLosses: number[] = []
  for (let start = 0; start < logits.length; start += sequenceLength) {
    sequenceLosses.push(mean(nll.slice(start, start + sequenceLength).filter((v): v is number => v !== null)))
  }
  return {
    entropy,
    targetLogprobs,
    predictions,
    accuracy: counted.length === 0 ? Number.NaN : correct / counted.length,
    sequenceLosses,
    sequencePerplexities: sequenceLosses.map(Math.exp),
    bitsPerToken: mean(counted) / Math.LN2,
    zLoss: mean(lseSquares)
  }
}

export interface ReferenceLogprobs {
  targetLogprobs: number[]
  topIds: number[][]
  topLogprobs: number[][]
  entropy: number[]
}

/**
 * Logprobs, textbook style: each logit soft-capped (c·tanh(x/c)), then divided by the
 * temperature, then log_softmax; the top k by sorting every class (the lower id first on ties);
 * entropy as −Σ p·log p.
 */
export function referenceLogprobs(
  logits: number[][],
  targets: number[] | null,
  options: { softcap: number; temperature: number; topK: number; ignoreIndex: number }
): ReferenceLogprobs {
  const result: ReferenceLogprobs = { targetLogprobs: [], topIds: [], topLogprobs: [], entropy: [] }
  logits.forEach((row, i) => {
    const scaled = row.map(
      (x) =>
        (options.softcap > 0 && x !== Number.NEGATIVE_INFINITY ? options.softcap * Math.tanh(x / options.softcap) : x) /
        options.temperature
    )
    const logp = logSoftmax(scaled)
    if (targets !== null) result.targetLogprobs.push(targets[i] === options.ignoreIndex ? 0 : logp[targets[i]])
    // Ranked by the scaled logits, the exact order of the log-probabilities: a large temperature
    // can round two different log-probabilities to one double, which is not a tie.
    const order = logp.map((_, c) => c).sort((a, b) => scaled[b] - scaled[a] || a - b)
    result.topIds.push(order.slice(0, options.topK))
    result.topLogprobs.push(order.slice(0, options.topK).map((c) => logp[c]))
    result.entropy.push(-logp.reduce((sum, lp) => (lp === Number.NEGATIVE_INFINITY ? sum : sum + Math.exp(lp) * lp), 0))
  })
  return result
}

/**
 * PyTorch's cross_entropy with class probabilities (`cross_entropy_loss_prob_target`): the target
 * becomes q·(1 − ε) + ε/V, each row's loss is −Σ_c w_c·q'_c·log p_c, mean divides by the number
 * of rows; z-loss adds z·lse² a row. Perplexity: exp of the mean of −Σ_c q_c·log p_c.
 */
function referenceSoftTargets(input: ReferenceInput, softTargets: number[][]): ReferenceOutput {
  const { logits, labelSmoothing, reduction } = input
  const vocab = logits[0].length
  const weight = input.weight ?? new Array<number>(vocab).fill(1)
  const z = input.zLoss ?? 0
  const tokenLoss: number[] = []
  const plain: number[] = []
  for (let i = 0; i < logits.length; i++) {
    const logp = logSoftmax(logits[i])
    const row = logits[i]
    const max = Math.max(...row)
    const lse = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0))
    let loss = 0
    let plainLoss = 0
    for (let c = 0; c < vocab; c++) {
      const smoothed = softTargets[i][c] * (1 - labelSmoothing) + labelSmoothing / vocab
      if (smoothed > 0) loss -= weight[c] * smoothed * logp[c]
      if (softTargets[i][c] > 0) plainLoss -= softTargets[i][c] * logp[c]
    }
    tokenLoss.push(loss + z * lse * lse)
    plain.push(plainLoss)
  }
  const sum = (xs: number[]) => xs.reduce((acc, x) => acc + x, 0)
  const loss = reduction === 'none' ? tokenLoss : reduction === 'sum' ? sum(tokenLoss) : sum(tokenLoss) / logits.length
  return { loss, tokenLoss, perplexity: Math.exp(sum(plain) / logits.length) }
}
