import { crossEntropyRows } from '../kernel/cross-entropy.js'

/**
 * One unit of pool work: a row range of a batch. Every typed array is a view of a
 * SharedArrayBuffer, so posting the task to a worker shares the memory instead of copying it,
 * and the worker's writes to `tokenLoss`, `nll` and `gradients` are what the main thread reads.
 */
export interface CrossEntropyTask {
  logits: Float32Array
  targets: Int32Array
  weight: Float32Array | null
  tokenLoss: Float64Array
  nll: Float64Array
  gradients: Float32Array | null
  vocab: number
  ignoreIndex: number
  labelSmoothing: number
  classWeightSum: number
  gradScale: number
  rowStart: number
  rowEnd: number
}

/** Runs a task where it stands (in a worker, or on this thread in tests); returns the rows done. */
export function runTask(task: CrossEntropyTask): number {
  crossEntropyRows(task.logits, task.targets, task, task.rowStart, task.rowEnd, task)
  return task.rowEnd - task.rowStart
}
