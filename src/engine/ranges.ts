import type { ControlWords, TaskControl } from './control.js'
import { QueueFullError } from './errors.js'

/** Below this many logits a task is not worth posting to another worker. */
export const MIN_ELEMENTS_PER_TASK = 1 << 16

/** How far cancelled work had got: still queued, or already running on a worker. */
export type CancelledStage = 'queued' | 'running'

/**
 * Splits [0, rows) into at most `maxTasks` contiguous ranges of near-equal size, with at least
 * MIN_ELEMENTS_PER_TASK logits each, so a large request uses every worker and a small one
 * costs a single hop.
 */
export function partitionRows(rows: number, vocab: number, maxTasks: number): Array<[number, number]> {
  const worthwhile = Math.max(1, Math.floor((rows * vocab) / MIN_ELEMENTS_PER_TASK))
  const tasks = Math.min(maxTasks, worthwhile, rows)
  const ranges: Array<[number, number]> = []
  for (let i = 0; i < tasks; i++) {
    ranges.push([Math.floor((i * rows) / tasks), Math.floor(((i + 1) * rows) / tasks)])
  }
  return ranges
}

export interface RangeOptions {
  /** Control words for the tasks; without them a task cannot be stopped once it runs. */
  controls?: ControlWords
  /** Aborting it cancels the tasks; the run then rejects with its reason. */
  signal?: AbortSignal
  /** Told of each task that was cancelled, and at which stage. */
  onCancelled?: (stage: CancelledStage) => void
}

/**
 * Runs one task per row range through `run` and resolves to their verdicts, in range order. With
 * control words, aborting the signal cancels them: a task still waiting for a worker is dropped
 * from the engine's queue, one handed to a worker returns at its claim or stops at its next row
 * (see ControlWords). Either way every task settles
 * before this returns or throws, so the memory a task reads is never given back under it.
 */
export async function runRanges<Task>(
  ranges: Array<[number, number]>,
  makeTask: (rowStart: number, rowEnd: number, control: number, taskId: number) => Task,
  run: (task: Task, signal?: AbortSignal) => Promise<number>,
  options: RangeOptions
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
        if (control === undefined) return Promise.reject(new QueueFullError())
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
