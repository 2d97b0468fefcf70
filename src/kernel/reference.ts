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
  const { logits, targets, ignoreIndex, labelSmoothing, reduction } = input
  const vocab = logits[0].length
  const weight = input.weight ?? new Array<number>(vocab).fill(1)

  const nllLoss: number[] = [] // weighted: w[y]·(−log p[y])
  const smoothLoss: number[] = [] // Σ_c w[c]·(−log p[c])
  const plainNll: number[] = []
  let targetWeightSum = 0
  let count = 0
  for (let i = 0; i < logits.length; i++) {
    const logp = logSoftmax(logits[i])
    const y = targets[i]
    if (y === ignoreIndex) {
      nllLoss.push(0)
      smoothLoss.push(0)
      continue
    }
    count++
    targetWeightSum += weight[y]
    plainNll.push(-logp[y])
    nllLoss.push(-weight[y] * logp[y])
    smoothLoss.push(-logp.reduce((sum, lp, c) => sum + weight[c] * lp, 0))
  }

  // As PyTorch, the smoothing term exists only for label_smoothing > 0 (so a −Inf logit, whose
  // smoothing term is +Inf, costs nothing without smoothing instead of 0·Inf = NaN).
  const tokenLoss =
    labelSmoothing > 0
      ? nllLoss.map((nll, i) => (1 - labelSmoothing) * nll + (labelSmoothing / vocab) * smoothLoss[i])
      : nllLoss
  const sum = (xs: number[]) => xs.reduce((acc, x) => acc + x, 0)
  let loss: number | number[] = sum(tokenLoss)
  if (reduction === 'none') loss = tokenLoss
  if (reduction === 'mean') {
    // Both parts are divided by the total target weight, each on its own, as PyTorch does.
    loss =
      (1 - labelSmoothing) * (sum(nllLoss) / targetWeightSum) +
      (labelSmoothing / vocab) * (sum(smoothLoss) / targetWeightSum)
  }
  const perplexity = count === 0 ? Number.NaN : Math.exp(sum(plainNll) / count)
  return { loss, tokenLoss, perplexity }
}
