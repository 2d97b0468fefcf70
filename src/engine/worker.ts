// The piscina worker: an instance of the kernel family over the pool's shared memory. Each task
// runs one row range of one call in place (with the stages before and after it) and returns the
// first invalid row, ALL_ROWS_VALID, ROWS_CANCELLED or STAGE_DECLINED. The protocol is the Task
// type of ./task.ts and the call structs of ./abi.ts.
import { setPriority } from 'node:os'
import { workerData } from 'piscina'
import { workerEntries } from '../kernels/entries.js'
import { ROWS_CANCELLED } from './abi.js'
import { claimTask } from './control.js'
import { type Fault, injectFault } from './faults.js'
import { instantiateKernels } from './kernels.js'
import { runStages, type Task } from './task.js'

const { memory, module, nice } = workerData as { memory: WebAssembly.Memory; module: WebAssembly.Module; nice: number }
// This thread only (Linux keeps a nice value a thread): the main thread, which answers the probes
// and moves every request's bytes, goes first when both want a core.
try {
  setPriority(nice)
} catch {
  // A platform that will not lower a thread's priority runs the worker at the process's own.
}
const kernels = workerEntries(instantiateKernels(memory, module).kernels, memory.buffer)
// The memory never grows (its initial size is its maximum), so one view serves every task.
const words = new Int32Array(memory.buffer)

/**
 * Claims the task before touching its memory (if it was cancelled first, that memory may already
 * be another request's), then runs it, through an injected fault when it has one.
 */
export default function runTask(task: Task & { fault?: Fault }): number {
  if (task.control !== 0 && !claimTask(words, task.control, task.taskId)) return ROWS_CANCELLED
  const run = (range: Task) =>
    runStages(range, (stage) => kernels[stage.entry](stage.call, range.rowStart, range.rowEnd, range.control))
  return task.fault === undefined ? run(task) : injectFault(task.fault, task, run)
}
