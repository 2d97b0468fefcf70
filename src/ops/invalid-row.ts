import { formatPosition, rowPosition } from '../codec/positions.js'
import type { LogitsDtype } from '../engine/abi.js'
import { XentErrors } from '../errors.js'
import { decodeLogitRow } from '../kernels/half.js'

/**
 * The message for a row the kernel refused, read from the row itself (the kernel only says which
 * row): a NaN or +Inf first, wherever it is; else −Inf everywhere; else −Inf at the target.
 * `leading` is the shape before V, which names the row as `logits[b][t]` or `logits[n]`.
 */
export function invalidRowError(
  logits: Float32Array | Uint16Array,
  dtype: LogitsDtype,
  row: number,
  vocab: number,
  leading: readonly number[]
): Error {
  const where = formatPosition(rowPosition('logits', row, leading))
  const values = decodeLogitRow(logits, dtype, row, vocab)
  const column = values.findIndex((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)
  if (column >= 0) {
    return new XentErrors.NON_FINITE(`${where}[${column}] is ${values[column]}; logits must be finite or −Inf (masked)`)
  }
  if (values.every((x) => x === Number.NEGATIVE_INFINITY)) {
    return new XentErrors.NON_FINITE(`${where} is −Inf everywhere (every class masked)`)
  }
  return new XentErrors.NON_FINITE(`${where} has −Inf at the target's own class`)
}

/** The first invalid row among the tasks' verdicts (ranges are in row order), or undefined. */
export function firstInvalidRow(verdicts: readonly number[]): number | undefined {
  return verdicts.find((row) => row >= 0)
}
