import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import secureJson from 'secure-json-parse'
import { duplicateTopLevelKey } from '../codec/duplicate-keys.js'
import { XentErrors } from '../errors.js'

/**
 * JSON is the only body xent reads here; anything else is a 415. The parser is Fastify's own
 * choice (secure-json-parse, refusing `__proto__` and `constructor.prototype` keys), but it keeps
 * the parser's message, so a caller learns where the JSON broke.
 */
async function contentTypes(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') {
      done(new XentErrors.MALFORMED_JSON('the body is empty'), undefined)
      return
    }
    let parsed: unknown
    try {
      parsed = parseJson(body as string)
    } catch (error) {
      done(new XentErrors.MALFORMED_JSON((error as Error).message), undefined)
      return
    }
    const twice = duplicateTopLevelKey(body as string)
    if (twice !== undefined) {
      done(new XentErrors.INVALID_REQUEST(`field "${twice}" is given twice; send each field once`), undefined)
      return
    }
    done(null, parsed)
  })
}

/**
 * secure-json-parse scans the whole text with two regular expressions for `__proto__` and
 * `constructor` keys, escaped spellings included, which costs half as much again as JSON.parse
 * on megabytes of numbers. A key can only be spelt out or escaped with `\u`, so a text with none
 * of those substrings (and no byte-order mark) cannot carry one: it goes to JSON.parse directly.
 */
function parseJson(text: string): unknown {
  const suspect =
    text.charCodeAt(0) === 0xfeff || text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')
  return suspect ? secureJson.parse(text, { protoAction: 'error', constructorAction: 'error' }) : JSON.parse(text)
}

export default fp(contentTypes, { name: 'content-types' })
