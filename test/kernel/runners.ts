import type { Reduction } from '../../schemas/cross-entropy.js'
import { decodeJsonRequest } from '../../src/codec/json.js'
import { instantiateKernel, type KernelRows } from '../../src/kernel/wasm.js'
import { KernelArena } from '../../src/pool/arena.js'
import { computeCrossEntropy, type TaskRunner } from '../../src/pool/compute.js'
import { runPlainCrossEntropyTask } from '../../src/pool/plain.js'
import { expectArrayClose, expectScalarClose } from '../helper.js'

/** Kernel memory for a test file, and the two kernels as task runners on this thread. */
export const arena = new KernelArena(128)

/** The WebAssembly SIMD kernel, instantiated on this thread over the arena. */
const wasmKernel = instantiateKernel(arena.memory)
export const wasmRunner: TaskRunner = (task) => Promise.resolve(wasmKernel(task))

/** The plain TypeScript kernel, on views of the same memory. */
const words = new Int32Array(arena.buffer)
export const referenceRunner: TaskRunner = (task: KernelRows) =>
  Promise.resolve(runPlainCrossEntropyTask(arena.buffer, words, task))

export interface Problem {
  logits: number[][]
  targets: number[]
  weight?: number[]
  ignore_index: number
  label_smoothing: number
  reduction: Reduction
}

export interface Computed {
  loss: number
  perplexity: number
  count: number
  tokenLoss: Float64Array
  gradients: Float32Array
}

/** Decodes a problem into the arena, runs it in `tasks` ranges, copies the results out, frees. */
export async function compute(problem: Problem, run: TaskRunner, tasks = 1): Promise<Computed> {
  const batch = decodeJsonRequest({ ...problem, outputs: ['token_losses', 'gradients'] }, arena)
  try {
    const result = await computeCrossEntropy(batch, run, tasks)
    return {
      loss: result.loss,
      perplexity: result.perplexity,
      count: result.count,
      tokenLoss: result.tokenLoss.slice(),
      gradients: (result.gradients as Float32Array).slice()
    }
  } finally {
    batch.memory.release()
  }
}

/**
 * The kernel's gradient against central finite differences (h = 1e-4) of `scalarLoss`, a float64
 * reference loss, at every logit: |analytic − numeric| < 1e-5 + 1e-4·|numeric|.
 */
export function expectFiniteDifferenceGradient(
  logits: number[][],
  scalarLoss: (logits: number[][]) => number,
  gradients: Float32Array
): void {
  const h = 1e-4
  const vocab = logits[0].length
  for (let r = 0; r < logits.length; r++) {
    for (let c = 0; c < vocab; c++) {
      const plus = logits.map((row) => row.slice())
      const minus = logits.map((row) => row.slice())
      plus[r][c] += h
      minus[r][c] -= h
      const numeric = (scalarLoss(plus) - scalarLoss(minus)) / (2 * h)
      const analytic = gradients[r * vocab + c]
      if (!(Math.abs(analytic - numeric) < 1e-5 + 1e-4 * Math.abs(numeric))) {
        throw new Error(`gradient[${r}][${c}] is ${analytic}; finite differences give ${numeric}`)
      }
    }
  }
}

/** A reference loss as one number: the sum for reduction none (PyTorch's gradient is that of the sum). */
export function scalarLossOf(loss: number | number[]): number {
  return Array.isArray(loss) ? loss.reduce((a, b) => a + b, 0) : loss
}

/** The kernel's token losses and (unless none) its loss against a float64 reference, NaN as null. */
export function expectLossesMatch(
  result: Computed,
  expected: { loss: number | number[]; tokenLoss: number[] },
  reduction: Reduction
): void {
  expectArrayClose(Array.from(result.tokenLoss), expected.tokenLoss, 'token losses')
  if (reduction === 'none') return
  const loss = expected.loss as number
  expectScalarClose(Number.isNaN(result.loss) ? null : result.loss, Number.isNaN(loss) ? null : loss, 'loss')
}
