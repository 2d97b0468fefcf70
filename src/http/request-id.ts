import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** An incoming id is kept when it is short and plain; anything else is replaced, not echoed. */
const ACCEPTABLE_ID = /^[\w.:/+=@-]{1,128}$/

/** Fastify's genReqId: the caller's `x-request-id` when acceptable, else a fresh UUID. */
export function requestId(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && ACCEPTABLE_ID.test(incoming) ? incoming : randomUUID()
}

/** Every answer carries its request's id (the one in its log lines) as `x-request-id`. */
async function requestIdHeader(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
}

export default fp(requestIdHeader, { name: 'request-id' })
