import type { KernelRows } from '../kernel/wasm.js'

/**
 * Faults a test can inject into a worker, to prove that one failing task fails only its own
 * request. Only an app built with `injectFaults` passes them on (from the `x-xent-fault` header);
 * the service as started by server.ts never does.
 *
 * - throw: the task throws.
 * - exit: the worker thread exits mid-task.
 * - oom: the worker allocates until it meets its heap limit (WORKER_MAX_OLD_GENERATION_MB).
 * - slow: the rows run one at a time, 20 ms apart, so that a test can cancel them part-way.
 */
export const FAULTS = ['throw', 'exit', 'oom', 'slow'] as const
export type Fault = (typeof FAULTS)[number]

export function isFault(value: unknown): value is Fault {
  return FAULTS.includes(value as Fault)
}

const SLOW_ROW_MS = 20
const pause = new Int32Array(new SharedArrayBuffer(4))

export function injectFault(fault: Fault, task: KernelRows, kernel: (call: KernelRows) => number): number {
  switch (fault) {
    case 'throw':
      throw new Error('injected fault: the task threw')
    case 'exit':
      process.exit(1)
      break
    case 'oom': {
      const hoard: number[][] = []
      for (;;) hoard.push(Array.from({ length: 1 << 16 }, (_, i) => i + hoard.length))
    }
    case 'slow':
      for (let row = task.rowStart; row < task.rowEnd; row++) {
        const verdict = kernel({ ...task, rowStart: row, rowEnd: row + 1 })
        if (verdict !== -1) return verdict
        // Atomics.wait: a plain sleep that a worker thread is allowed to do.
        Atomics.wait(pause, 0, 0, SLOW_ROW_MS)
      }
      return -1
  }
  return -1
}
