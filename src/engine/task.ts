import type { KernelEntry } from './abi.js'

/** One task as it crosses to a worker: a row range of the call struct at `call`. */
export interface Task {
  entry: KernelEntry
  /** Byte address of the call struct in the shared memory. */
  call: number
  rowStart: number
  rowEnd: number
  /** Byte address of the task's control word, or 0 for a task that cannot be cancelled. */
  control: number
  /** The id its control word holds while it waits. */
  taskId: number
}
