import secureJson from 'secure-json-parse'
import { XentErrors } from '../errors.js'
import { duplicateTopLevelKey } from './duplicate-keys.js'

/**
 * A JSON body read the general way: JSON.parse, keeping the parser's message so that a caller
 * learns where the JSON broke, refusing prototype-pollution keys and top-level fields given twice.
 */
export function readJsonText(text: string): unknown {
  if (text === '') throw new XentErrors.MALFORMED_JSON('the body is empty')
  let parsed: unknown
  try {
    parsed = parseJson(text)
  } catch (error) {
    throw new XentErrors.MALFORMED_JSON((error as Error).message)
  }
  const twice = duplicateTopLevelKey(text)
  if (twice !== undefined) throw new XentErrors.INVALID_REQUEST(`field "${twice}" is given twice; send each field once`)
  return parsed
}

/**
 * secure-json-parse scans the whole text with two regular expressions for `__proto__` and
 * `constructor` keys, escaped spellings included, which costs half as much again as JSON.parse
 * on megabytes of numbers. A key can only be spelt out or escaped with `\u`, so a text with none
 * of those substrings (and no byte-order mark) cannot carry one: it goes to JSON.parse directly.
 */
export function parseJson(text: string): unknown {
  const suspect =
    text.charCodeAt(0) === 0xfeff || text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')
  return suspect ? secureJson.parse(text, { protoAction: 'error', constructorAction: 'error' }) : JSON.parse(text)
}
