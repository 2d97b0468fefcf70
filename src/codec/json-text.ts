import {
  ENTRY,
  FLAG_ESCAPED_KEY,
  FLAG_IRREGULAR,
  INDEX_TOO_MANY_ROWS,
  JSON_INDEX_CALL,
  NUMBER_KIND,
  NUMBER_ROWS_CALL,
  PRINT_KIND,
  PRINT_ROWS_CALL,
  readCall,
  writeCall
} from '../engine/abi.js'
import type { Engine, RunOptions } from '../engine/engine.js'
import { i32, u8 } from '../engine/plan.js'
import type { RequestMemory } from '../engine/request.js'
import type { Stage } from '../engine/task.js'

/**
 * JSON text in kernel memory, read and written by the workers: a body's fields indexed, its
 * number arrays parsed straight into typed arrays, and typed arrays printed back as text. Nothing
 * here decides an error's words: whatever the kernels do not take makes these return null, and
 * the caller reads the body the general way (JSON.parse and the schema), which says what is wrong.
 */

type TextEngine = Pick<Engine, 'arena' | 'run'>

/** One top-level field of a JSON body. */
export interface JsonField {
  key: string
  /** Its value's text: [valueStart, valueEnd) of the body. */
  valueStart: number
  valueEnd: number
  /** For an array of arrays of numbers: its depth (1: [..], 2: [[..]], 3: [[[..]]]), else 0. */
  depth: number
  /** Arrays directly inside it, innermost arrays in it, and the first one's length. */
  children: number
  rows: number
  rowLength: number
  /** Address of its innermost arrays' starts (u32 offsets into the body). */
  rowStarts: number
}

export interface IndexedJson {
  bytes: Uint8Array
  fields: Map<string, JsonField>
}

const MAX_FIELDS = 64
const FIRST_ROWS_GUESS = 16_384
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Bodies shorter than this are indexed on the main thread (a few tens of microseconds): a task's hand-off costs more. */
export const INDEX_HERE_BELOW = 512 * 1024

/**
 * Indexes a body that is one JSON object (one worker task, or here for a body shorter than
 * `hereBelow`): its fields, or null when it is not one the fast path takes (malformed, a key given
 * twice or escaped, more fields than any request has).
 */
export async function indexJson(
  engine: Pick<Engine, 'arena' | 'run' | 'runHere'>,
  memory: RequestMemory,
  bytes: Uint8Array,
  run: RunOptions,
  hereBelow = INDEX_HERE_BELOW
): Promise<IndexedJson | null> {
  const buffer = engine.arena.buffer
  let maxRows = Math.min(FIRST_ROWS_GUESS, Math.ceil(bytes.length / 3) + 1)
  for (;;) {
    const mark = memory.mark()
    const views = memory.allocate({
      call: u8(JSON_INDEX_CALL.bytes),
      entries: i32(MAX_FIELDS * ENTRY.words),
      rowStarts: i32(maxRows)
    })
    writeCall(buffer, views.call.byteOffset, JSON_INDEX_CALL, {
      text: bytes.byteOffset,
      length: bytes.length,
      entries: views.entries.byteOffset,
      maxEntries: MAX_FIELDS,
      rowStarts: views.rowStarts.byteOffset,
      maxRows,
      entryCount: 0,
      rowCount: 0
    })
    const verdict =
      bytes.length < hereBelow
        ? engine.runHere('jsonIndex', views.call.byteOffset, 1)
        : (await engine.run(memory, 'jsonIndex', views.call.byteOffset, 1, 1, run))[0]
    const { entryCount, rowCount } = readCall(buffer, views.call.byteOffset, JSON_INDEX_CALL)
    if (verdict === INDEX_TOO_MANY_ROWS) {
      // Again with room for every row; the run has settled, so the first table goes back.
      maxRows = rowCount
      memory.freeAfter(mark)
      continue
    }
    if (verdict !== -1) return null
    const fields = new Map<string, JsonField>()
    for (let i = 0; i < entryCount; i++) {
      const entry = views.entries.subarray(i * ENTRY.words, (i + 1) * ENTRY.words)
      if ((entry[ENTRY.flags] & FLAG_ESCAPED_KEY) !== 0) return null
      let key: string
      try {
        key = decoder.decode(bytes.subarray(entry[ENTRY.keyStart], entry[ENTRY.keyEnd]))
      } catch {
        return null
      }
      if (fields.has(key)) return null
      const regular = (entry[ENTRY.flags] & FLAG_IRREGULAR) === 0 && entry[ENTRY.rowLength] > 0
      fields.set(key, {
        key,
        valueStart: entry[ENTRY.valueStart],
        valueEnd: entry[ENTRY.valueEnd],
        depth: regular ? entry[ENTRY.depth] : 0,
        children: entry[ENTRY.children],
        rows: entry[ENTRY.rows],
        rowLength: entry[ENTRY.rowLength],
        rowStarts: views.rowStarts.byteOffset + 4 * entry[ENTRY.firstRow]
      })
    }
    return { bytes, fields }
  }
}

/** A field's raw text (for the small fields, which JSON.parse reads). */
export function fieldText(json: IndexedJson, field: JsonField): string {
  return Buffer.from(
    json.bytes.buffer,
    json.bytes.byteOffset + field.valueStart,
    field.valueEnd - field.valueStart
  ).toString('utf8')
}

/** The shape a regular number array has: (rows) for depth 1, (rows, length) or (groups, rows/groups, length). */
export function fieldShape(field: JsonField): number[] | null {
  if (field.depth === 1) return field.rows === 1 ? [field.rowLength] : null
  if (field.depth === 2) return field.children === field.rows ? [field.rows, field.rowLength] : null
  if (field.depth === 3) {
    if (field.children === 0 || field.rows % field.children !== 0) return null
    return [field.children, field.rows / field.children, field.rowLength]
  }
  return null
}

/**
 * Parses a regular number field (its shape from fieldShape) into `into`, float32 or int32, in
 * row ranges across the workers. False when any of it is not what that shape and kind take: a
 * ragged row, a non-number, a float32 overflow, a non-integer or out-of-range int32.
 */
export async function parseNumbers(
  engine: TextEngine,
  memory: RequestMemory,
  json: IndexedJson,
  field: JsonField,
  into: Float32Array | Int32Array,
  run: RunOptions,
  integersHereBelow = INTEGERS_HERE_BELOW
): Promise<boolean> {
  // A few integers (the targets of most requests) are read here: a task's hand-off costs more.
  if (into instanceof Int32Array && into.length < integersHereBelow) {
    const shape = fieldShape(field)
    if (shape === null || into.length !== field.rows * shape[shape.length - 1]) return false
    return parseHere(fieldText(json, field), shape, into)
  }
  // numbersStage checks the shape against `into` for the workers' reading.
  const reading = numbersStage(engine, memory, json, field, into)
  if (reading === null) return false
  const { stage, rows, count } = reading
  const verdicts = await engine.run(memory, stage.entry, stage.call, rows, count, run)
  return verdicts.every((verdict) => verdict === -1)
}

/**
 * The workers' reading of a regular number field into `into`, as a stage (of `rows` rows of
 * `count` numbers) to run alone or before the computation that reads it; null when the field's
 * shape does not fit `into`. The stage refuses the first row that is not what the shape and kind
 * take.
 */
export function numbersStage(
  engine: Pick<Engine, 'arena'>,
  memory: RequestMemory,
  json: IndexedJson,
  field: JsonField,
  into: Float32Array | Int32Array
): { stage: Stage; rows: number; count: number } | null {
  const shape = fieldShape(field)
  if (shape === null) return null
  const count = shape[shape.length - 1]
  const rows = field.rows
  if (into.length !== rows * count) return null
  const views = memory.allocate({ call: u8(NUMBER_ROWS_CALL.bytes), undecided: u8(rows) })
  writeCall(engine.arena.buffer, views.call.byteOffset, NUMBER_ROWS_CALL, {
    text: json.bytes.byteOffset,
    rowStarts: field.rowStarts,
    out: into.byteOffset,
    undecided: views.undecided.byteOffset,
    count,
    kind: into instanceof Int32Array ? NUMBER_KIND.I32 : NUMBER_KIND.F32,
    rows,
    group: shape.length === 3 ? shape[1] : 0,
    depth: field.depth,
    valueStart: field.valueStart,
    valueEnd: field.valueEnd
  })
  return { stage: { entry: 'numberRows', call: views.call.byteOffset }, rows, count }
}

/** Integer fields of fewer numbers than this are parsed on the main thread (parseHere). */
export const INTEGERS_HERE_BELOW = 1024

/**
 * An integer field parsed by JSON.parse itself, with what the workers check: exactly `shape`,
 * every element a number, an integer (as Number() reads it, so `1.0` and `1e2` are targets) and
 * in int32's range. False for anything else. (Float fields are always the workers': their
 * exactness is the kernel's, tested against JSON.parse.)
 */
function parseHere(text: string, shape: readonly number[], into: Int32Array): boolean {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return false
  }
  let at = 0
  const take = (node: unknown, depth: number): boolean => {
    if (!Array.isArray(node) || node.length !== shape[depth]) return false
    if (depth < shape.length - 1) return node.every((child) => take(child, depth + 1))
    for (const x of node) {
      // Number.isInteger is false for anything but a number.
      if (!Number.isInteger(x) || x < -2147483648 || x > 2147483647) return false
      into[at++] = x
    }
    return true
  }
  return take(value, 0)
}

/** Bytes of text a number of each kind may take, its comma included. */
const BYTES_PER_NUMBER = { [PRINT_KIND.F32]: 24, [PRINT_KIND.F64]: 25, [PRINT_KIND.I32]: 12 }

/**
 * Prints `values` (rows × count, grouped as `shape` says: the last dimension a row) as a JSON
 * array, in row ranges across the workers, into the request's memory: the text as chunks (views
 * of that memory, valid until it is released). float32 values are printed as the shortest
 * decimal that reads back to them; float64 and int32 ones as JSON.stringify would.
 */
export async function printNumbers(
  engine: TextEngine,
  memory: RequestMemory,
  values: Float32Array | Float64Array | Int32Array,
  shape: readonly number[],
  run: RunOptions
): Promise<Uint8Array[]> {
  const print = preparePrint(engine, memory, values, shape)
  await engine.run(memory, print.stage.entry, print.stage.call, print.rows, print.count, run)
  return print.chunks()
}

/** The printing of an array, prepared: its stage, and its text once the stage has run over every row. */
export interface PreparedPrint {
  values: Float32Array | Float64Array | Int32Array
  stage: Stage
  rows: number
  count: number
  /** The text, as chunks (views of the request's memory). */
  chunks(): Uint8Array[]
}

/**
 * Prepares printNumbers' work as a stage (of rows of the last dimension's length): to run alone,
 * or after the computation that writes `values`, in its tasks. Throws ArenaFullError when the
 * request's memory has no room for the text.
 */
export function preparePrint(
  engine: Pick<Engine, 'arena'>,
  memory: RequestMemory,
  values: Float32Array | Float64Array | Int32Array,
  shape: readonly number[]
): PreparedPrint {
  const count = shape[shape.length - 1]
  const rows = values.length / count
  const kind =
    values instanceof Float32Array ? PRINT_KIND.F32 : values instanceof Float64Array ? PRINT_KIND.F64 : PRINT_KIND.I32
  const stride = count * BYTES_PER_NUMBER[kind] + 8
  const views = memory.allocate({ call: u8(PRINT_ROWS_CALL.bytes), out: u8(rows * stride), spans: i32(2 * rows) })
  writeCall(engine.arena.buffer, views.call.byteOffset, PRINT_ROWS_CALL, {
    values: values.byteOffset,
    count,
    rows,
    group: shape.length === 3 ? shape[1] : 0,
    out: views.out.byteOffset,
    stride,
    spans: views.spans.byteOffset,
    kind
  })
  const chunks = () => {
    const open = '['.repeat(shape.length - 1)
    const text: Uint8Array[] = [Buffer.from(open)]
    const spans = new Uint32Array(views.spans.buffer, views.spans.byteOffset, 2 * rows)
    let start = spans[0]
    for (let row = 0; row < rows; row++) {
      const end = spans[2 * row + 1]
      if (row === rows - 1 || spans[2 * row + 2] !== end) {
        text.push(views.out.subarray(start, end))
        start = spans[2 * row + 2]
      }
    }
    text.push(Buffer.from(']'.repeat(shape.length - 1)))
    return text
  }
  return { values, stage: { entry: 'printRows', call: views.call.byteOffset }, rows, count, chunks }
}
