import { XentErrors } from '../errors.js'
import type { ComputeOptions } from './compute.js'
import type { TaskControl } from './control.js'

/**
 * Runs one task per row range through `run` and resolves to their verdicts, in range order. With
 * control words (options.controls), aborting options.signal cancels them: a task still queued is
 * dropped from piscina's queue, one running stops at its next row (see ControlWords). Either way
 * every task settles before this returns or throws, so the batch's memory is never released
 * under a running task.
 */
export async function runRanges<Task>(
  ranges: Array<[number, number]>,
  makeTask: (rowStart: number, rowEnd: number, control: number, taskId: number) => Task,
  run: (task: Task, signal?: AbortSignal) => Promise<number>,
  options: ComputeOptions
): Promise<number[]> {
  const { signal } = options
  const controls: Array<{ control: TaskControl; dequeue: AbortController }> = []
  const cancel = () => {
    for (const { control, dequeue } of controls) {
      const stage = control.cancel()
      if (stage === 'queued') dequeue.abort()
      if (stage !== null) options.onCancelled?.(stage)
    }
  }
  signal?.addEventListener('abort', cancel, { once: true })
  let settled: Array<PromiseSettledResult<number>>
  try {
    const tasks = ranges.map(([rowStart, rowEnd]) => {
      const dequeue = new AbortController()
      let control: TaskControl | undefined
      if (options.controls !== undefined) {
        control = options.controls.acquire()
        if (control === undefined) return Promise.reject(new XentErrors.QUEUE_FULL())
        controls.push({ control, dequeue })
      }
      const task = makeTask(rowStart, rowEnd, control?.address ?? 0, control?.id ?? 0)
      return run(task, dequeue.signal).catch((error: unknown) => {
        // One task failed (a full queue, a worker that died): the others need not run on.
        if (signal?.aborted !== true) cancel()
        throw error
      })
    })
    settled = await Promise.allSettled(tasks)
  } finally {
    signal?.removeEventListener('abort', cancel)
    for (const { control } of controls) control.release()
  }
  if (signal?.aborted === true) throw signal.reason
  const failed = settled.find((outcome) => outcome.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<number>).value)
}
