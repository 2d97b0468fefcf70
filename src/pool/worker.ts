// The piscina worker: an instance of the kernel over the pool's shared memory. Each task runs one
// row range of a batch in place and returns the first invalid row, −1, or ROWS_CANCELLED.
import { workerData } from 'piscina'
import { instantiateKernel, type KernelRows, ROWS_CANCELLED } from '../kernel/wasm.js'
import { claimTask } from './control.js'
import { type Fault, injectFault } from './faults.js'
import { type LogprobsTask, runLogprobsTask } from './logprobs.js'
import { runPlainCrossEntropyTask } from './plain.js'

const { memory, module } = workerData as { memory: WebAssembly.Memory; module: WebAssembly.Module }
const kernel = instantiateKernel(memory, module)
// The memory never grows (its initial size is its maximum), so one view serves every task.
const words = new Int32Array(memory.buffer)

interface Claimable {
  control: number
  taskId?: number
  rowStart: number
  rowEnd: number
  fault?: Fault
}

/**
 * Claims the task before touching its batch (if it was cancelled first, its batch may already be
 * released, and another request's), then runs it, through an injected fault when it has one.
 */
function runClaimed<Task extends Claimable>(task: Task, run: (task: Task) => number): number {
  if (task.control !== 0 && !claimTask(words, task.control, task.taskId ?? 0)) return ROWS_CANCELLED
  return task.fault === undefined ? run(task) : injectFault(task.fault, task, run)
}

export default function runRows(task: KernelRows & { fault?: Fault }): number {
  return runClaimed(task, kernel)
}

/** Named task (piscina's `name`): one row range of a logprobs batch. */
export function logprobs(task: LogprobsTask & { fault?: Fault }): number {
  return runClaimed(task, (range) => runLogprobsTask(memory.buffer, words, range))
}

/** Named task: a cross-entropy row range for the plain kernel (a softcap, which the SIMD one lacks). */
export function crossEntropyPlain(task: KernelRows & { fault?: Fault }): number {
  return runClaimed(task, (range) => runPlainCrossEntropyTask(memory.buffer, words, range))
}
