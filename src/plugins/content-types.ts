import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import secureJson from 'secure-json-parse'
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
    try {
      done(null, secureJson.parse(body as string, { protoAction: 'error', constructorAction: 'error' }))
    } catch (error) {
      done(new XentErrors.MALFORMED_JSON((error as Error).message), undefined)
    }
  })
}

export default fp(contentTypes, { name: 'content-types' })
