import { parseJson } from '../codec/json-parse.js'
import { fieldShape, fieldText, type IndexedJson, indexJson, type JsonField } from '../codec/json-text.js'
import { isTarget } from '../codec/positions.js'
import type { Engine, RunOptions } from '../engine/engine.js'
import type { RequestMemory } from '../engine/request.js'

/**
 * The fast reading of a JSON body in kernel memory, shared by the operations: the workers index
 * it, JSON.parse reads the small fields (with tiny stand-ins where the tensors are) and the
 * route's own schema validator checks them, then the operation has the workers parse its tensors.
 *
 * It never words an error. Anything unusual (malformed text, a field the schema refuses, a ragged
 * row, a string among numbers, a target out of range) makes it return null, and the route reads
 * the same bytes the general way, which answers exactly as it always has.
 */

/** The route's compiled validator for a JSON body (ajv: it fills in the defaults). */
export type BodyValidator = (body: unknown) => boolean

/** A tensor field's stand-in, of its depth: valid for the schema whatever the tensor holds. */
const STAND_INS: Record<number, string> = { 1: '[0]', 2: '[[0]]', 3: '[[[0]]]' }

/** What an operation's fast reading starts from. */
export interface FastJson {
  json: IndexedJson
  /** The small fields, validated, defaults in; the tensors' stand-ins beside them. */
  body: Record<string, unknown>
  /** The tensor fields that are present. */
  tensors: Map<string, JsonField>
}

/**
 * Indexes the body and reads its small fields; null when the body is not one the fast path takes.
 * `tensors` names the operation's tensor fields.
 */
export async function readSmallFields(
  engine: Pick<Engine, 'arena' | 'run' | 'runHere'>,
  memory: RequestMemory,
  bytes: Uint8Array,
  tensors: readonly string[],
  validate: BodyValidator,
  run: RunOptions
): Promise<FastJson | null> {
  const json = await indexJson(engine, memory, bytes, run)
  if (json === null) return null
  let text = '{'
  const found = new Map<string, JsonField>()
  for (const field of json.fields.values()) {
    // A key JSON.stringify would write otherwise than the body did (a control character) is left
    // to the general reading, as is any other irregularity.
    const key = JSON.stringify(field.key)
    if (key !== `"${field.key}"`) return null
    if (text.length > 1) text += ','
    text += `${key}:`
    if (tensors.includes(field.key)) {
      const standIn = STAND_INS[field.depth]
      if (standIn === undefined || fieldShape(field) === null) return null
      text += standIn
      found.set(field.key, field)
    } else {
      text += fieldText(json, field)
    }
  }
  text += '}'
  let body: unknown
  try {
    body = parseJson(text)
  } catch {
    return null
  }
  if (!validate(body)) return null
  return { json, body: body as Record<string, unknown>, tensors: found }
}

/** The shape of a tensor field (present and regular, as readSmallFields found it). */
export function shapeOf(fast: FastJson, name: string): number[] | null {
  const field = fast.tensors.get(name)
  return field === undefined ? null : fieldShape(field)
}

/** The logits' shape, (N, V) or (B, T, V): V, the shape before it, and its rows; null for any other. */
export function logitsShapeOf(
  fast: FastJson
): { shape: number[]; vocab: number; leading: number[]; rows: number } | null {
  const shape = shapeOf(fast, 'logits')
  if (shape === null || shape.length < 2) return null
  const leading = shape.slice(0, -1)
  return { shape, vocab: shape[shape.length - 1], leading, rows: leading.reduce((a, b) => a * b, 1) }
}

export function sameShape(a: readonly number[] | null, b: readonly number[]): boolean {
  return a !== null && a.length === b.length && a.every((n, i) => n === b[i])
}

/** Every target ignore_index or a class in [0, V). */
export function targetsInRange(targets: Int32Array, vocab: number, ignoreIndex: number): boolean {
  for (let i = 0; i < targets.length; i++) {
    if (!isTarget(targets[i], vocab, ignoreIndex)) return false
  }
  return true
}
