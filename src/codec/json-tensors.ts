import { XentErrors } from '../errors.js'
import { formatPosition, isTarget, targetOutOfRange } from './positions.js'
import { checkWeights } from './weights.js'

/**
 * Tensors in the JSON wire format ⇄ typed arrays. The schema has already checked every type
 * (numbers, integers, nesting depth, non-empty arrays); this checks what a schema cannot (ragged
 * rows, shapes that agree, targets inside the vocabulary, float32 range) while it copies the
 * numbers into kernel memory, and names the first offending position.
 */

/** Logits (or soft targets) as JSON: (B, T, V) or (N, V). */
export type JsonTensor = number[][][] | number[][]
/** Targets as JSON: (B, T) or (N). */
export type JsonTargets = number[][] | number[]

export interface Shapes {
  rows: number
  vocab: number
  logitsShape: number[]
  targetsShape: number[]
}

function isMatrix(logits: JsonTensor): logits is number[][] {
  return !Array.isArray(logits[0][0])
}

export function measureShapes(logits: JsonTensor, targets: JsonTargets | undefined): Shapes {
  const targetsAreMatrix = targets !== undefined && Array.isArray(targets[0])
  if (isMatrix(logits)) {
    const n = logits.length
    const vocab = logits[0].length
    for (let i = 1; i < n; i++) expectLength(logits[i], vocab, ['logits', i], 'logits[0]')
    if (targets === undefined) return { rows: n, vocab, logitsShape: [n, vocab], targetsShape: [n] }
    if (targetsAreMatrix) {
      throw new XentErrors.SHAPE_MISMATCH(
        `targets must be a flat array of ${n} integers to match logits shaped (N, V) = (${n}, ${vocab}), got a nested array`
      )
    }
    expectTargetsLength(targets as number[], n, [], `N = ${n}`)
    return { rows: n, vocab, logitsShape: [n, vocab], targetsShape: [n] }
  }

  const batch = logits as number[][][]
  const b = batch.length
  const t = batch[0].length
  const vocab = batch[0][0].length
  for (let i = 0; i < b; i++) {
    if (i > 0) expectLength(batch[i], t, ['logits', i], 'logits[0]')
    for (let j = 0; j < t; j++) {
      if (i > 0 || j > 0) expectLength(batch[i][j], vocab, ['logits', i, j], 'logits[0][0]')
    }
  }
  if (targets === undefined) return { rows: b * t, vocab, logitsShape: [b, t, vocab], targetsShape: [b, t] }
  if (!targetsAreMatrix) {
    throw new XentErrors.SHAPE_MISMATCH(
      `targets must be shaped (B, T) = (${b}, ${t}) to match logits shaped (B, T, V) = (${b}, ${t}, ${vocab}), got a flat array`
    )
  }
  const targetRows = targets as number[][]
  expectTargetsLength(targetRows, b, [], `B = ${b}`)
  for (let i = 0; i < b; i++) expectTargetsLength(targetRows[i], t, [i], `T = ${t}`)
  return { rows: b * t, vocab, logitsShape: [b, t, vocab], targetsShape: [b, t] }
}

function expectLength(row: unknown[], expected: number, position: Array<string | number>, like: string): void {
  if (row.length !== expected) {
    throw new XentErrors.SHAPE_MISMATCH(
      `${formatPosition(position)} has length ${row.length}, expected ${expected} like ${like} (rows must not be ragged)`
    )
  }
}

function expectTargetsLength(row: unknown[], expected: number, position: number[], dimension: string): void {
  if (row.length !== expected) {
    throw new XentErrors.SHAPE_MISMATCH(
      `${formatPosition(['targets', ...position])} has length ${row.length}, expected ${dimension} from the shape of logits`
    )
  }
}

/** Logits into float32, each finite there (a finite double can still overflow float32). */
export function copyLogits(source: JsonTensor, shape: number[], into: Float32Array): void {
  const vocab = shape[shape.length - 1]
  const rowsOf = isMatrix(source) ? [source] : (source as number[][][])
  let offset = 0
  for (let i = 0; i < rowsOf.length; i++) {
    const matrix = rowsOf[i]
    for (let j = 0; j < matrix.length; j++) {
      const row = matrix[j]
      for (let c = 0; c < vocab; c++) into[offset + c] = row[c]
      // A finite double can still overflow float32 (e.g. 1e39), and JSON's 1e999 parses to Infinity.
      for (let c = 0; c < vocab; c++) {
        if (!Number.isFinite(into[offset + c])) {
          const position = isMatrix(source) ? ['logits', j, c] : ['logits', i, j, c]
          throw new XentErrors.NON_FINITE(
            `${formatPosition(position)} is ${row[c]}, which is not a finite float32 (|x| ≤ 3.4028235e38)`
          )
        }
      }
      offset += vocab
    }
  }
}

/** soft_targets, which must have the shape of logits, into float32 (range and sums checked after). */
export function copySoftTargets(source: JsonTensor, shape: number[], into: Float32Array): void {
  const vocab = shape[shape.length - 1]
  const matrices = isMatrix(source) ? [source] : (source as number[][][])
  const leading = shape.slice(0, -1)
  const expected = leading.length === 1 ? [1, leading[0]] : leading
  if (!isMatrix(source) !== (shape.length === 3) || matrices.length !== expected[0]) {
    throw new XentErrors.SHAPE_MISMATCH(`soft_targets must have the shape of logits, ${JSON.stringify(shape)}`)
  }
  let offset = 0
  for (let i = 0; i < matrices.length; i++) {
    const matrix = matrices[i]
    const at = (j?: number) =>
      isMatrix(source)
        ? ['soft_targets', ...(j === undefined ? [] : [j])]
        : ['soft_targets', i, ...(j === undefined ? [] : [j])]
    expectLength(matrix, expected[1], at(), 'logits')
    for (let j = 0; j < matrix.length; j++) {
      expectLength(matrix[j], vocab, at(j), 'logits')
      for (let c = 0; c < vocab; c++) into[offset + c] = matrix[j][c]
      offset += vocab
    }
  }
}

/** Targets into int32, each ignore_index or in [0, V). */
export function copyTargets(source: JsonTargets, vocab: number, ignoreIndex: number, into: Int32Array): void {
  const nested = Array.isArray(source[0])
  const rowsOf = nested ? (source as number[][]) : [source as number[]]
  let offset = 0
  for (let i = 0; i < rowsOf.length; i++) {
    const row = rowsOf[i]
    for (let j = 0; j < row.length; j++) {
      const target = row[j]
      if (!isTarget(target, vocab, ignoreIndex)) {
        throw targetOutOfRange(nested ? ['targets', i, j] : ['targets', j], target, vocab, ignoreIndex)
      }
      into[offset + j] = target
    }
    offset += row.length
  }
}

/** A weight of length V into float32: one per class, each a finite float32 ≥ 0 there. */
export function copyWeight(source: number[], vocab: number, into: Float32Array): void {
  if (source.length !== vocab) {
    throw new XentErrors.INVALID_WEIGHT(`weight has length ${source.length}, expected V = ${vocab} (one per class)`)
  }
  into.set(source)
  checkWeights(into, source)
}

type Nested = number[] | number[][] | number[][][]

/** A flat typed array → nested plain arrays of the given shape (1 to 3 dimensions). */
export function reshape(flat: Float32Array | Float64Array | Int32Array, shape: number[]): Nested {
  const last = shape[shape.length - 1]
  const leaves: number[][] = []
  for (let offset = 0; offset < flat.length; offset += last) {
    // A plain loop: Array.from on a typed array is an order of magnitude slower here.
    const leaf = new Array<number>(last)
    for (let i = 0; i < last; i++) leaf[i] = flat[offset + i]
    leaves.push(leaf)
  }
  if (shape.length === 1) return leaves[0]
  if (shape.length === 2) return leaves
  const outer: number[][][] = []
  for (let i = 0; i < shape[0]; i++) outer.push(leaves.slice(i * shape[1], (i + 1) * shape[1]))
  return outer
}
