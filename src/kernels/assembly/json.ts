// JSON text in kernel memory: the index of a body's fields, its number rows parsed in parallel,
// and float32 rows printed back as text. The host (src/codec/json-fast.ts) holds everything else:
// it decides what a field means, and sends anything these kernels do not take down the general
// path, so they may refuse whatever is unusual without ever deciding an error's words.

import {
  ALL_ROWS_VALID,
  ENTRY_CHILDREN,
  ENTRY_DEPTH,
  ENTRY_FIRST_ROW,
  ENTRY_FLAGS,
  ENTRY_KEY_END,
  ENTRY_KEY_START,
  ENTRY_ROW_LENGTH,
  ENTRY_ROWS,
  ENTRY_VALUE_END,
  ENTRY_VALUE_START,
  ENTRY_WORDS,
  FLAG_ESCAPED_KEY,
  FLAG_IRREGULAR,
  INDEX_TOO_MANY_ROWS,
  INDEX_UNSUPPORTED,
  IX_ENTRIES,
  IX_ENTRY_COUNT,
  IX_LENGTH,
  IX_MAX_ENTRIES,
  IX_MAX_ROWS,
  IX_ROW_COUNT,
  IX_ROW_STARTS,
  IX_TEXT,
  NR_COUNT,
  NR_DEPTH,
  NR_GROUP,
  NR_KIND,
  NR_OUT,
  NR_ROW_STARTS,
  NR_ROWS,
  NR_TEXT,
  NR_UNDECIDED,
  NR_VALUE_END,
  NR_VALUE_START,
  NUMBER_I32,
  PR_COUNT,
  PR_GROUP,
  PR_OUT,
  PR_ROWS,
  PR_SPANS,
  PR_STRIDE,
  PR_VALUES,
  ROWS_CANCELLED,
  TASK_CANCELLED
} from './abi'
import { parsedUndecided, parsedValue, parseNumber, printFloat32 } from './numbers'

const OPEN_BRACKET: u32 = 0x5b
const CLOSE_BRACKET: u32 = 0x5d
const OPEN_BRACE: u32 = 0x7b
const CLOSE_BRACE: u32 = 0x7d
const QUOTE: u32 = 0x22
const BACKSLASH: u32 = 0x5c
const COMMA: u32 = 0x2c
const COLON: u32 = 0x3a
// ", " read as a little-endian u16.
const COMMA_SPACE: u32 = 0x202c

// @ts-ignore: decorator
@inline
function isSpace (c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09
}

// @ts-ignore: decorator
@inline
function skipSpace (p: usize, end: usize): usize {
  while (p < end && isSpace(<u32>load<u8>(p))) p++
  return p
}

// @ts-ignore: decorator
@inline
function byteAt (p: usize, end: usize): u32 {
  return p < end ? <u32>load<u8>(p) : 0
}

// Past a string whose opening quote is at p: the position after its closing quote, or 0.
// `escaped` is set when it holds a backslash.
let stringEscaped = false
function skipString (p: usize, end: usize): usize {
  stringEscaped = false
  p++
  while (p < end) {
    const c = <u32>load<u8>(p)
    if (c == QUOTE) return p + 1
    if (c == BACKSLASH) {
      stringEscaped = true
      p++
    }
    p++
  }
  return 0
}

// Where the next [ ] { } or " is at or after p (end if none): sixteen bytes a step.
// @ts-ignore: decorator
@inline
function nextStructural (p: usize, end: usize): usize {
  while (p + 16 <= end) {
    const chunk = v128.load(p)
    const found = v128.or(
      v128.or(i8x16.eq(chunk, i8x16.splat(0x5b)), i8x16.eq(chunk, i8x16.splat(0x5d))),
      v128.or(v128.or(i8x16.eq(chunk, i8x16.splat(0x7b)), i8x16.eq(chunk, i8x16.splat(0x7d))), i8x16.eq(chunk, i8x16.splat(0x22)))
    )
    const mask = i8x16.bitmask(found)
    if (mask != 0) return p + <usize>ctz(mask)
    p += 16
  }
  while (p < end) {
    const c = <u32>load<u8>(p)
    if (c == OPEN_BRACKET || c == CLOSE_BRACKET || c == OPEN_BRACE || c == CLOSE_BRACE || c == QUOTE) return p
    p++
  }
  return end
}

// Per-value bookkeeping of the array being indexed.
let rowCount: i32 = 0
let maxRows: i32 = 0
let rowStarts: usize = 0

// Indexes the array or object value at p (its opening bracket) into `entry`; returns the position
// after it, or 0 if it does not close.
function indexNested (text: usize, p: usize, end: usize, entry: usize): usize {
  let depth: i32 = 0
  let rowDepth: i32 = 0
  let flags = load<i32>(entry + ENTRY_FLAGS * 4)
  let children: i32 = 0
  let rows: i32 = 0
  store<i32>(entry + ENTRY_FIRST_ROW * 4, rowCount)
  if (<u32>load<u8>(p) == OPEN_BRACE) flags |= FLAG_IRREGULAR
  while (true) {
    p = nextStructural(p, end)
    if (p >= end) return 0
    const c = <u32>load<u8>(p)
    if (c == OPEN_BRACKET) {
      depth++
      if (depth == 2) children++
      const next = skipSpace(p + 1, end)
      if (byteAt(next, end) != OPEN_BRACKET) {
        // An innermost array: a row.
        if (rows == 0) {
          rowDepth = depth
          store<i32>(entry + ENTRY_ROW_LENGTH * 4, rowLength(next, end))
        } else if (depth != rowDepth) {
          flags |= FLAG_IRREGULAR
        }
        if (rowCount < maxRows) store<u32>(rowStarts + (<usize>rowCount << 2), <u32>(p - text))
        rowCount++
        rows++
      }
      p++
    } else if (c == CLOSE_BRACKET || c == CLOSE_BRACE) {
      depth--
      p++
      if (depth == 0) break
    } else if (c == OPEN_BRACE) {
      flags |= FLAG_IRREGULAR
      depth++
      p++
    } else {
      flags |= FLAG_IRREGULAR
      p = skipString(p, end)
      if (p == 0) return 0
    }
  }
  store<i32>(entry + ENTRY_FLAGS * 4, flags)
  store<i32>(entry + ENTRY_DEPTH * 4, rowDepth)
  store<i32>(entry + ENTRY_CHILDREN * 4, children)
  store<i32>(entry + ENTRY_ROWS * 4, rows)
  return p
}

// How many elements the row starting at p (past its bracket) holds: commas + 1, 0 if empty; -1
// if anything but numbers (a nested bracket, brace or string) comes before its closing bracket.
function rowLength (p: usize, end: usize): i32 {
  if (byteAt(p, end) == CLOSE_BRACKET) return 0
  let commas: i32 = 0
  while (p < end) {
    const c = <u32>load<u8>(p)
    if (c == CLOSE_BRACKET) return commas + 1
    if (c == COMMA) commas++
    else if (c == OPEN_BRACKET || c == OPEN_BRACE || c == QUOTE) return -1
    p++
  }
  return -1
}

/**
 * Indexes a JSON body that is one object: each field's key and value spans (the values are
 * skipped over, not checked: the host checks each), and every innermost array's start. Returns
 * ALL_ROWS_VALID, INDEX_UNSUPPORTED or INDEX_TOO_MANY_ROWS. One task does the whole body.
 */
export function jsonIndex (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const text = <usize>load<u32>(call + IX_TEXT)
  const end = text + <usize>load<u32>(call + IX_LENGTH)
  const entries = <usize>load<u32>(call + IX_ENTRIES)
  const maxEntries = load<i32>(call + IX_MAX_ENTRIES)
  rowStarts = <usize>load<u32>(call + IX_ROW_STARTS)
  maxRows = load<i32>(call + IX_MAX_ROWS)
  rowCount = 0
  store<i32>(call + IX_ENTRY_COUNT, 0)
  store<i32>(call + IX_ROW_COUNT, 0)
  if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
  let p = skipSpace(text, end)
  if (byteAt(p, end) != OPEN_BRACE) return INDEX_UNSUPPORTED
  p = skipSpace(p + 1, end)
  let count: i32 = 0
  if (byteAt(p, end) == CLOSE_BRACE) {
    p++
  } else {
    while (true) {
      if (count == maxEntries || byteAt(p, end) != QUOTE) return INDEX_UNSUPPORTED
      const entry = entries + <usize>(count * ENTRY_WORDS * 4)
      for (let i = 0; i < ENTRY_WORDS; i++) store<i32>(entry + (<usize>i << 2), 0)
      const keyEnd = skipString(p, end)
      if (keyEnd == 0) return INDEX_UNSUPPORTED
      store<i32>(entry + ENTRY_KEY_START * 4, <i32>(p + 1 - text))
      store<i32>(entry + ENTRY_KEY_END * 4, <i32>(keyEnd - 1 - text))
      if (stringEscaped) store<i32>(entry + ENTRY_FLAGS * 4, FLAG_ESCAPED_KEY)
      p = skipSpace(keyEnd, end)
      if (byteAt(p, end) != COLON) return INDEX_UNSUPPORTED
      p = skipSpace(p + 1, end)
      if (p >= end) return INDEX_UNSUPPORTED
      store<i32>(entry + ENTRY_VALUE_START * 4, <i32>(p - text))
      const c = <u32>load<u8>(p)
      if (c == OPEN_BRACKET || c == OPEN_BRACE) {
        p = indexNested(text, p, end, entry)
      } else if (c == QUOTE) {
        p = skipString(p, end)
      } else {
        // A scalar: up to the next separator (the host reads it exactly).
        while (p < end) {
          const d = <u32>load<u8>(p)
          if (d == COMMA || d == CLOSE_BRACE || isSpace(d)) break
          p++
        }
      }
      if (p == 0) return INDEX_UNSUPPORTED
      store<i32>(entry + ENTRY_VALUE_END * 4, <i32>(p - text))
      count++
      p = skipSpace(p, end)
      const separator = byteAt(p, end)
      p = skipSpace(p + 1, end)
      if (separator == CLOSE_BRACE) break
      if (separator != COMMA) return INDEX_UNSUPPORTED
    }
  }
  if (skipSpace(p, end) != end) return INDEX_UNSUPPORTED
  store<i32>(call + IX_ENTRY_COUNT, count)
  store<i32>(call + IX_ROW_COUNT, rowCount)
  return rowCount > maxRows ? INDEX_TOO_MANY_ROWS : ALL_ROWS_VALID
}

// Expects `c` at p (after spaces): the position after it, or 0.
// @ts-ignore: decorator
@inline
function expect (p: usize, end: usize, c: u32): usize {
  p = skipSpace(p, end)
  return byteAt(p, end) == c ? p + 1 : 0
}

/**
 * Parses rows [rowStart, rowEnd) of a nested array of numbers: each row `count` numbers, into
 * float32 (each finite there) or int32 (each an integer in int32's range), and checks the text
 * between a row and the next (and, for the first and last rows, up to the value's own brackets).
 * Returns the first row that fails, or ALL_ROWS_VALID. A row with a number the fast reading
 * cannot decide is marked in NR_UNDECIDED for the worker to read again exactly.
 */
export function numberRows (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const text = <usize>load<u32>(call + NR_TEXT)
  const starts = <usize>load<u32>(call + NR_ROW_STARTS)
  const out = <usize>load<u32>(call + NR_OUT)
  const undecided = <usize>load<u32>(call + NR_UNDECIDED)
  const count = load<i32>(call + NR_COUNT)
  const integers = load<i32>(call + NR_KIND) == NUMBER_I32
  const rows = load<i32>(call + NR_ROWS)
  const group = load<i32>(call + NR_GROUP)
  const depth = load<i32>(call + NR_DEPTH)
  const valueStart = text + <usize>load<u32>(call + NR_VALUE_START)
  const valueEnd = text + <usize>load<u32>(call + NR_VALUE_END)
  for (let row = rowStart; row < rowEnd; row++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const start = text + <usize>load<u32>(starts + (<usize>row << 2))
    if (start < valueStart || start >= valueEnd) return row
    if (row == 0) {
      // The value's opening brackets, up to the first row.
      let p = valueStart
      for (let level = 1; level < depth; level++) {
        p = expect(p, valueEnd, OPEN_BRACKET)
        if (p == 0) return row
      }
      if (skipSpace(p, valueEnd) != start) return row
    }
    let p = start + 1
    let flagged = false
    const target = out + (<usize>row * <usize>count << 2)
    for (let i = 0; i < count; i++) {
      // Most bodies separate numbers with "," (JavaScript's JSON.stringify) or ", " (Python's
      // json.dumps): one load and a compare or two; only other spacing takes the general way.
      if (i > 0) {
        const two = p + 2 <= valueEnd ? <u32>load<u16>(p) : byteAt(p, valueEnd)
        if (two == COMMA_SPACE) {
          p += 2
        } else if ((two & 0xff) == COMMA) {
          p++
        } else {
          p = expect(p, valueEnd, COMMA)
          if (p == 0) return row
        }
      }
      const c = byteAt(p, valueEnd)
      if (c <= 0x20 && isSpace(c)) p = skipSpace(p, valueEnd)
      p = parseNumber(p, valueEnd, !integers)
      if (p == 0) return row
      if (parsedUndecided) flagged = true
      const value = parsedValue
      if (integers) {
        if (!(value >= -2147483648 && value <= 2147483647) || Math.floor(value) != value) {
          if (!parsedUndecided) return row
        }
        store<i32>(target + (<usize>i << 2), <i32>value)
      } else {
        const single = <f32>value
        if (!isFinite(single) && !parsedUndecided) return row
        store<f32>(target + (<usize>i << 2), single)
      }
    }
    p = expect(p, valueEnd, CLOSE_BRACKET)
    if (p == 0) return row
    store<u8>(undecided + <usize>row, flagged ? 1 : 0)
    // What follows the row: the next row, a new second-level array, or the value's end.
    if (row == rows - 1) {
      for (let level = 1; level < depth; level++) {
        p = expect(p, valueEnd, CLOSE_BRACKET)
        if (p == 0) return row
      }
      if (skipSpace(p, valueEnd) != valueEnd) return row
    } else {
      if (group > 0 && (row + 1) % group == 0) {
        p = expect(p, valueEnd, CLOSE_BRACKET)
        if (p == 0) return row
        p = expect(p, valueEnd, COMMA)
        if (p == 0) return row
        p = expect(p, valueEnd, OPEN_BRACKET)
      } else {
        p = expect(p, valueEnd, COMMA)
      }
      if (p == 0 || skipSpace(p, valueEnd) != text + <usize>load<u32>(starts + (<usize>(row + 1) << 2))) return row
    }
  }
  return ALL_ROWS_VALID
}

/**
 * Prints rows [rowStart, rowEnd) of float32s (PR_COUNT a row) as JSON arrays, one after another
 * from PR_OUT + rowStart·PR_STRIDE, each followed by its separator ("," within a second-level
 * array of PR_GROUP rows, "],[" between them, nothing after the last row), and records each
 * row's span. PR_STRIDE must allow 24 bytes a number (-123456780000000000000,) and 8 more a row.
 */
export function printRows (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const values = <usize>load<u32>(call + PR_VALUES)
  const count = load<i32>(call + PR_COUNT)
  const rows = load<i32>(call + PR_ROWS)
  const group = load<i32>(call + PR_GROUP)
  const out = <usize>load<u32>(call + PR_OUT)
  const spans = <usize>load<u32>(call + PR_SPANS)
  let p = out + <usize>rowStart * <usize>load<u32>(call + PR_STRIDE)
  for (let row = rowStart; row < rowEnd; row++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    store<u32>(spans + (<usize>row << 3), <u32>(p - out))
    store<u8>(p++, OPEN_BRACKET)
    const source = values + (<usize>row * <usize>count << 2)
    for (let i = 0; i < count; i++) {
      if (i > 0) store<u8>(p++, COMMA)
      p += <usize>printFloat32(load<f32>(source + (<usize>i << 2)), p)
    }
    store<u8>(p++, CLOSE_BRACKET)
    if (row < rows - 1) {
      if (group > 0 && (row + 1) % group == 0) {
        store<u8>(p++, CLOSE_BRACKET)
        store<u8>(p++, COMMA)
        store<u8>(p++, OPEN_BRACKET)
      } else {
        store<u8>(p++, COMMA)
      }
    }
    store<u32>(spans + (<usize>row << 3) + 4, <u32>(p - out))
  }
  return ALL_ROWS_VALID
}
