import type { KernelRows } from '../src/kernel/wasm.js'

/**
 * The kernel call the benchmarks time: every row of a (rows × vocab) batch at once, mean
 * reduction, no weights, smoothing, control word, stats or z-loss.
 */
export function wholeBatchCall(batch: {
  logits: number
  logitsDtype: number
  targets: number
  rows: number
  vocab: number
  tokenLoss: number
  nll: number
  gradients: number
}): KernelRows {
  return {
    logits: batch.logits,
    logitsDtype: batch.logitsDtype,
    targets: batch.targets,
    rowStart: 0,
    rowEnd: batch.rows,
    vocab: batch.vocab,
    ignoreIndex: -100,
    labelSmoothing: 0,
    weight: 0,
    classWeightSum: batch.vocab,
    gradScale: 1 / batch.rows,
    tokenLoss: batch.tokenLoss,
    nll: batch.nll,
    gradients: batch.gradients,
    control: 0,
    stats: 0,
    zGrad: 0
  }
}
