import { ALL_ROWS_VALID, type KernelEntry, ROWS_CANCELLED } from './abi.js'

/** An entry point over a call struct: one stage of a task. */
export interface Stage {
  entry: KernelEntry
  /** Byte address of the call struct in the shared memory. */
  call: number
}

/** One task as it crosses to a worker: a row range of the call struct at `call`. */
export interface Task extends Stage {
  rowStart: number
  rowEnd: number
  /** Byte address of the task's control word, or 0 for a task that cannot be cancelled. */
  control: number
  /** The id its control word holds while it waits. */
  taskId: number
  /**
   * Stages run over the same rows before the entry (reading its inputs) and after it (printing
   * its outputs), in the same task: one hand-off where there would be three. The rows of every
   * stage must be the entry's rows.
   */
  before?: readonly Stage[]
  after?: readonly Stage[]
}

/** A task's verdict when a stage before its entry refused one of its rows (the entry did not run). */
export const STAGE_DECLINED = -3

/**
 * Runs a task's stages over its rows with `run`: the stages before, the entry, the stages after,
 * each only while the ones before it took every row. The entry's verdict; STAGE_DECLINED if a
 * stage before it did not take a row; ROWS_CANCELLED if any stage was cancelled.
 */
export function runStages(task: Task, run: (stage: Stage) => number): number {
  for (const stage of task.before ?? []) {
    const verdict = run(stage)
    if (verdict === ROWS_CANCELLED) return verdict
    if (verdict !== ALL_ROWS_VALID) return STAGE_DECLINED
  }
  const verdict = run(task)
  if (verdict !== ALL_ROWS_VALID) return verdict
  for (const stage of task.after ?? []) {
    const after = run(stage)
    if (after === ROWS_CANCELLED) return after
    if (after !== ALL_ROWS_VALID) throw new Error(`stage ${stage.entry} after the entry refused row ${after}`)
  }
  return ALL_ROWS_VALID
}
