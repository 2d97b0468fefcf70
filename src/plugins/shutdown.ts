import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Graceful shutdown for keep-alive clients. Closing the server stops new connections and drops
 * idle ones, but a connection busy with an in-flight request would stay open after its answer and
 * hold the process until the grace period ran out. From the start of shutdown every answer says
 * `Connection: close`, so each such connection ends with its last response.
 */
async function shutdown(app: FastifyInstance): Promise<void> {
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
}

export default fp(shutdown, { name: 'shutdown' })
