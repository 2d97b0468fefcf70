import type { Reduction } from '../../schemas/cross-entropy.js'
import { decodeJsonRequest } from '../../src/codec/json.js'
import { instantiateKernel, type KernelRows } from '../../src/kernel/wasm.js'
import { KernelArena } from '../../src/pool/arena.js'
import { computeCrossEntropy, type TaskRunner } from '../../src/pool/compute.js'
import { runPlainCrossEntropyTask } from '../../src/pool/plain.js'

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
