import { describe, expect, it } from 'vitest'
import { ALL_ROWS_VALID, ROWS_CANCELLED } from '../../src/engine/abi.js'
import { runStages, STAGE_DECLINED, type Stage, type Task } from '../../src/engine/task.js'

// A task's stages: those before its entry read its inputs, those after print its outputs; each
// runs only while every one before it took all its rows.

const task = (before: number, after: number): Task => ({
  entry: 'hardTargetRows',
  call: 100,
  rowStart: 0,
  rowEnd: 8,
  control: 0,
  taskId: 1,
  before: Array.from({ length: before }, (_, i): Stage => ({ entry: 'numberRows', call: 10 + i })),
  after: Array.from({ length: after }, (_, i): Stage => ({ entry: 'printRows', call: 200 + i }))
})

/** Runs the stages, each answering from `verdicts` by its call, and records the calls made. */
function trace(t: Task, verdicts: Record<number, number> = {}) {
  const calls: number[] = []
  const verdict = runStages(t, (stage) => {
    calls.push(stage.call)
    return verdicts[stage.call] ?? ALL_ROWS_VALID
  })
  return { verdict, calls }
}

describe('runStages', () => {
  it('runs the stages before, the entry, then the stages after, in order', () => {
    expect(trace(task(2, 1))).toEqual({ verdict: ALL_ROWS_VALID, calls: [10, 11, 100, 200] })
    expect(trace({ ...task(0, 0), before: undefined, after: undefined })).toEqual({
      verdict: ALL_ROWS_VALID,
      calls: [100]
    })
  })

  it('stops at a stage before that refuses a row: the entry does not run, and the task says STAGE_DECLINED', () => {
    expect(trace(task(2, 1), { 10: 3 })).toEqual({ verdict: STAGE_DECLINED, calls: [10] })
    expect(trace(task(2, 1), { 11: 0 })).toEqual({ verdict: STAGE_DECLINED, calls: [10, 11] })
  })

  it("gives the entry's invalid row, with nothing printed after it", () => {
    expect(trace(task(1, 1), { 100: 5 })).toEqual({ verdict: 5, calls: [10, 100] })
  })

  it('says ROWS_CANCELLED from whichever stage was cancelled', () => {
    expect(trace(task(1, 1), { 10: ROWS_CANCELLED })).toEqual({ verdict: ROWS_CANCELLED, calls: [10] })
    expect(trace(task(1, 1), { 100: ROWS_CANCELLED })).toEqual({ verdict: ROWS_CANCELLED, calls: [10, 100] })
    expect(trace(task(1, 2), { 200: ROWS_CANCELLED })).toEqual({ verdict: ROWS_CANCELLED, calls: [10, 100, 200] })
  })

  it('throws when a stage after the entry refuses a row (printing takes every row)', () => {
    expect(() => trace(task(0, 1), { 200: 2 })).toThrow(/printRows after the entry refused row 2/)
  })
})
