import { ALL_ROWS_VALID, type KernelEntry } from './abi.js'

/**
 * Faults a test can inject into a worker: to prove that one failing task fails only its own
 * request, and to hold a task at a known point while the test acts. Only an app built with the
 * `faults` option (tests wire it in; see test/faults.ts) attaches them to tasks; nothing a
 * request carries can.
 *
 * - throw: the task throws.
 * - exit: the worker thread exits mid-task.
 * - oom: the worker allocates until it meets its heap limit (WORKER_MAX_OLD_GENERATION_MB).
 * - hold: the task runs its first `afterRows` rows, then says so at the barrier and waits there
 *   until the test releases it, then runs the rest; a task cancelled meanwhile stops at its next row.
 */
export type Fault = (
  | { kind: 'throw' }
  | { kind: 'exit' }
  | { kind: 'oom' }
  | { kind: 'hold'; barrier: Int32Array; afterRows?: number }
) & {
  /** The entry whose tasks it hits; by default the computing ones (COMPUTING_ENTRIES), not the JSON reading and printing. */
  entry?: KernelEntry
}

/** The entries that compute an operation, which a fault hits unless it names another. */
export const COMPUTING_ENTRIES: readonly KernelEntry[] = ['hardTargetRows', 'softTargetRows', 'logprobRows']

/** Whether `fault` hits the tasks of `entry`. */
export function faultHits(fault: Fault, entry: KernelEntry): boolean {
  return fault.entry === undefined ? COMPUTING_ENTRIES.includes(entry) : fault.entry === entry
}

/** Chooses the fault for each computation, by the id of the request it serves (tests only). */
export type FaultSource = (requestId: string | undefined) => Fault | undefined

/** Slots of a hold fault's barrier (an Int32Array over a SharedArrayBuffer, which the task carries). */
export const BARRIER_ARRIVED = 0
export const BARRIER_RELEASED = 1

interface RowRange {
  rowStart: number
  rowEnd: number
}

/** Runs `task` (rows [rowStart, rowEnd) through `run`) with the fault in its way. */
export function injectFault<Task extends RowRange>(fault: Fault, task: Task, run: (task: Task) => number): number {
  switch (fault.kind) {
    case 'throw':
      throw new Error('injected fault: the task threw')
    case 'exit':
      process.exit(1)
      break
    case 'oom': {
      const hoard: number[][] = []
      for (;;) hoard.push(Array.from({ length: 1 << 16 }, (_, i) => i + hoard.length))
    }
    case 'hold': {
      const middle = Math.min(task.rowEnd, task.rowStart + (fault.afterRows ?? 0))
      if (middle > task.rowStart) {
        const verdict = run({ ...task, rowEnd: middle })
        if (verdict !== ALL_ROWS_VALID) return verdict
      }
      // Atomics: the test thread waits (asynchronously) on ARRIVED, and this worker blocks on
      // RELEASED until the test stores 1 there; a worker thread may block, the test's may not.
      Atomics.add(fault.barrier, BARRIER_ARRIVED, 1)
      Atomics.notify(fault.barrier, BARRIER_ARRIVED)
      while (Atomics.load(fault.barrier, BARRIER_RELEASED) === 0) Atomics.wait(fault.barrier, BARRIER_RELEASED, 0)
      return run({ ...task, rowStart: middle })
    }
  }
  return ALL_ROWS_VALID
}
