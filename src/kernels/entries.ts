import {
  ALL_ROWS_VALID,
  NUMBER_KIND,
  NUMBER_ROWS_CALL,
  PRINT_KIND,
  PRINT_ROWS_CALL,
  ROWS_CANCELLED,
  readCall,
  TASK_CANCELLED
} from '../engine/abi.js'
import type { Kernels, RowsEntry } from '../engine/kernels.js'

/**
 * The entry points as a worker runs them: the kernel's own, with the two parts of the JSON
 * kernels that belong in JavaScript added around them.
 *
 * - numberRows: a row holding a number the fast reading could not decide is read again, exactly,
 *   by JavaScript's own Number() (correctly rounded, as JSON.parse), then rounded to float32.
 * - printRows: float64 and int32 rows are printed by JavaScript itself, so they read exactly as
 *   JSON.stringify would write them; float32 rows are the kernel's (shortest round-trip digits).
 */
export function workerEntries(kernels: Kernels, buffer: ArrayBufferLike): Kernels {
  const bytes = new Uint8Array(buffer)
  const words = new Int32Array(buffer)
  const cancelled = (control: number) => control !== 0 && Atomics.load(words, control >> 2) === TASK_CANCELLED

  const numberRows: RowsEntry = (call, rowStart, rowEnd, control) => {
    const verdict = kernels.numberRows(call, rowStart, rowEnd, control)
    if (verdict === ROWS_CANCELLED) return verdict
    const last = verdict === ALL_ROWS_VALID ? rowEnd : verdict
    const fields = readCall(buffer, call, NUMBER_ROWS_CALL)
    for (let row = rowStart; row < last; row++) {
      if (bytes[fields.undecided + row] === 0) continue
      if (cancelled(control)) return ROWS_CANCELLED
      if (!readRowExactly(bytes, buffer, fields, row)) return row
    }
    return verdict
  }

  const printRows: RowsEntry = (call, rowStart, rowEnd, control) => {
    const fields = readCall(buffer, call, PRINT_ROWS_CALL)
    if (fields.kind === PRINT_KIND.F32) return kernels.printRows(call, rowStart, rowEnd, control)
    return printRowsHere(bytes, buffer, fields, rowStart, rowEnd, () => cancelled(control))
  }

  return { ...kernels, numberRows, printRows }
}

type NumberRowsFields = Record<keyof typeof NUMBER_ROWS_CALL.fields, number>
type PrintRowsFields = Record<keyof typeof PRINT_ROWS_CALL.fields, number>

/** Reads one row (already checked by the kernel) with Number(); false if a value does not fit its kind. */
function readRowExactly(bytes: Uint8Array, buffer: ArrayBufferLike, fields: NumberRowsFields, row: number): boolean {
  const starts = new Uint32Array(buffer, fields.rowStarts, fields.rows)
  const start = fields.text + starts[row] + 1
  const end = bytes.indexOf(0x5d, start)
  const texts = Buffer.from(bytes.buffer, start, end - start)
    .toString('latin1')
    .split(',')
  const offset = row * fields.count
  if (fields.kind === NUMBER_KIND.I32) {
    const out = new Int32Array(buffer, fields.out, offset + fields.count)
    for (let i = 0; i < texts.length; i++) {
      const value = Number(texts[i])
      if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) return false
      out[offset + i] = value
    }
    return true
  }
  const out = new Float32Array(buffer, fields.out, offset + fields.count)
  for (let i = 0; i < texts.length; i++) {
    out[offset + i] = Number(texts[i])
    if (!Number.isFinite(out[offset + i])) return false
  }
  return true
}

/** printRows for float64 (as JSON.stringify writes them: non-finite as null) and int32 values. */
function printRowsHere(
  bytes: Uint8Array,
  buffer: ArrayBufferLike,
  fields: PrintRowsFields,
  rowStart: number,
  rowEnd: number,
  cancelled: () => boolean
): number {
  const { count, rows, group, out, stride } = fields
  const values =
    fields.kind === PRINT_KIND.F64
      ? new Float64Array(buffer, fields.values, rows * count)
      : new Int32Array(buffer, fields.values, rows * count)
  const spans = new Uint32Array(buffer, fields.spans, 2 * rows)
  let p = out + rowStart * stride
  const write = (text: string) => {
    for (let i = 0; i < text.length; i++) bytes[p++] = text.charCodeAt(i)
  }
  for (let row = rowStart; row < rowEnd; row++) {
    if (cancelled()) return ROWS_CANCELLED
    spans[2 * row] = p - out
    let text = '['
    for (let i = 0; i < count; i++) {
      const value = values[row * count + i]
      if (i > 0) text += ','
      text += Number.isFinite(value) ? String(value) : 'null'
    }
    text += ']'
    if (row < rows - 1) text += group > 0 && (row + 1) % group === 0 ? '],[' : ','
    write(text)
    spans[2 * row + 1] = p - out
  }
  return ALL_ROWS_VALID
}
