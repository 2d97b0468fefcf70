import { crossEntropyRows, PLAIN_ROWS_VALID } from '../kernel/cross-entropy.js'
import { ROW_STATS } from '../kernel/stats.js'
import { type KernelRows, LOGITS_DTYPE, ROWS_CANCELLED } from '../kernel/wasm.js'

/** Rows between two looks at the control word: the plain kernel has no control word of its own. */
const ROWS_PER_SLICE = 64

/**
 * A cross-entropy task run by the plain TypeScript kernel, over views of `buffer` (the kernel's
 * shared memory), already claimed by the worker. The service uses it for what the SIMD kernel does not do, a softcap; the tests
 * use it as the oracle.
 */
export function runPlainCrossEntropyTask(buffer: ArrayBufferLike, words: Int32Array, task: KernelRows): number {
  const rows = task.rowEnd
  const length = rows * task.vocab
  const logits =
    task.logitsDtype === LOGITS_DTYPE.F32
      ? new Float32Array(buffer, task.logits, length)
      : new Uint16Array(buffer, task.logits, length)
  const weight = task.weight === 0 ? null : new Float32Array(buffer, task.weight, task.vocab)
  const out = {
    tokenLoss: new Float64Array(buffer, task.tokenLoss, rows),
    nll: new Float64Array(buffer, task.nll, rows),
    gradients: task.gradients === 0 ? null : new Float32Array(buffer, task.gradients, length),
    stats: task.stats === 0 ? null : new Float64Array(buffer, task.stats, rows * ROW_STATS)
  }
  const targets = new Int32Array(buffer, task.targets, rows)
  const softTargets = task.softTargets ? new Float32Array(buffer, task.softTargets, length) : null
  for (let start = task.rowStart; start < task.rowEnd; start += ROWS_PER_SLICE) {
    if (task.control !== 0 && Atomics.load(words, task.control >> 2) < 0) return ROWS_CANCELLED
    const end = Math.min(task.rowEnd, start + ROWS_PER_SLICE)
    const verdict = crossEntropyRows(logits, targets, { ...task, weight, softTargets }, start, end, out)
    // The caller reads the reason from the row itself (see invalidRowError).
    if (verdict !== PLAIN_ROWS_VALID) return verdict
  }
  return PLAIN_ROWS_VALID
}
