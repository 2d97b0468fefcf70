import type { FastifySchemaValidationError } from 'fastify/types/schema.js'
import { XentErrors } from '../errors.js'
import { formatPosition } from './positions.js'

/**
 * Turns Ajv's errors into one coded error whose message names the field and the first
 * offending position, e.g. `targets[1][4] must be an integer, got 1.5`.
 *
 * With `allErrors: false`, Ajv stops at the first failure, but a union (logits may be (B,T,V) or
 * (N,V)) reports one failure per branch plus an `anyOf` summary. The deepest failure is the one
 * that got furthest into the data, so it is the most precise thing to tell the caller.
 */

type AjvError = FastifySchemaValidationError & { data?: unknown; parentSchema?: { properties?: object } }

/** Lower ranks win among failures at the same depth: a specific complaint beats a type mismatch. */
const KEYWORD_RANK: Record<string, number> = {
  additionalProperties: 0,
  required: 1,
  minItems: 2,
  enum: 3,
  minimum: 4,
  maximum: 4,
  uniqueItems: 5,
  type: 9
}

const TENSOR_HINT: Record<string, string> = {
  logits: 'logits are nested arrays of numbers shaped (B, T, V) or (N, V)',
  targets: 'targets are nested arrays of integers shaped (B, T) or (N)'
}

export function formatSchemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const error = pickMostPrecise(errors as AjvError[])
  if (error === undefined) return new XentErrors.INVALID_REQUEST(`the ${dataVar} is invalid`)
  const segments = parsePointer(error.instancePath)
  const where = segments.length === 0 ? `the ${dataVar}` : formatPosition(segments)
  const params = error.params as Record<string, unknown>
  const got = describeValue(error.data)

  switch (error.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys(error.parentSchema?.properties ?? {}).join(', ')
      return new XentErrors.UNKNOWN_FIELD(
        `unknown field "${String(params.additionalProperty)}" in ${where}; the allowed fields are ${allowed}`
      )
    }
    case 'required':
      return new XentErrors.INVALID_REQUEST(
        `${where} is missing the required field "${String(params.missingProperty)}"`
      )
    case 'minItems':
      return new XentErrors.EMPTY_DIMENSION(`${where} is empty; every dimension needs at least one element`)
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')
      return new XentErrors.INVALID_REQUEST(`${where} is ${got}; it must be one of ${allowed}`)
    }
    case 'minimum':
    case 'maximum': {
      const bound = `${error.keyword === 'minimum' ? '≥' : '≤'} ${String(params.limit)}`
      const Err = segments[0] === 'weight' ? XentErrors.INVALID_WEIGHT : XentErrors.INVALID_REQUEST
      return new Err(`${where} is ${got}; it must be ${bound}`)
    }
    case 'uniqueItems':
      return new XentErrors.INVALID_REQUEST(
        `${where} lists the same value twice (positions ${String(params.j)} and ${String(params.i)})`
      )
    case 'type': {
      if (typeof error.data === 'number' && !Number.isFinite(error.data)) {
        // JSON's 1e999 parses to Infinity: a number, but not one the schema's "number" admits.
        const Err = segments[0] === 'weight' ? XentErrors.INVALID_WEIGHT : XentErrors.NON_FINITE
        return new Err(`${where} is ${got}; it must be a finite number`)
      }
      const expected = withArticle(String(params.type))
      const hint = TENSOR_HINT[String(segments[0])]
      return new XentErrors.INVALID_REQUEST(
        `${where} must be ${expected}, got ${got}${hint === undefined ? '' : ` (${hint})`}`
      )
    }
    default:
      return new XentErrors.INVALID_REQUEST(`${where} ${error.message ?? 'is invalid'}`)
  }
}

function pickMostPrecise(errors: AjvError[]): AjvError | undefined {
  let best: AjvError | undefined
  for (const error of errors) {
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf') continue
    if (best === undefined) {
      best = error
      continue
    }
    const order = compareDocumentOrder(parsePointer(error.instancePath), parsePointer(best.instancePath))
    if (order > 0 || (order === 0 && rank(error) < rank(best))) best = error
  }
  return best
}

function rank(error: AjvError): number {
  if (error.keyword !== 'type') return KEYWORD_RANK[error.keyword] ?? 6
  // Between "must be an array" and "must be a number" at one place, the scalar is the likelier intent.
  const type = (error.params as { type?: string }).type
  return type === 'number' || type === 'integer' ? 8 : 9
}

/**
 * Which of two places comes later in the data, as a parser walks it: Ajv stops each branch of a
 * union at its first failure, so the later failure belongs to the branch that matched more.
 */
function compareDocumentOrder(a: Array<string | number>, b: Array<string | number>): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue
    if (typeof a[i] === 'number' && typeof b[i] === 'number') return (a[i] as number) - (b[i] as number)
    return 0
  }
  return a.length - b.length
}

/** `/logits/0/1` → ['logits', 0, 1], undoing JSON Pointer escapes. */
function parsePointer(pointer: string): Array<string | number> {
  if (pointer === '') return []
  return pointer
    .slice(1)
    .split('/')
    .map((part) => {
      const key = part.replaceAll('~1', '/').replaceAll('~0', '~')
      return /^(0|[1-9]\d*)$/.test(key) ? Number(key) : key
    })
}

function withArticle(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`
}

/** A short description of the offending value; never echoes a large array back. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') {
    return value.length > 40
      ? `the string ${JSON.stringify(value.slice(0, 40))}…`
      : `the string ${JSON.stringify(value)}`
  }
  return String(value)
}
