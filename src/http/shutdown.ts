import { setTimeout as sleepFor } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The graceful shutdown: /readyz turns 503 at once, requests are still taken for `delayMs`
     * (SHUTDOWN_DELAY_MS, while load balancers notice), then the listener closes and in-flight
     * requests finish. `sleep` waits out the delay (tests hold it with a barrier of their own).
     */
    shutdown: (options: { delayMs: number; sleep?: (ms: number) => Promise<unknown> }) => Promise<void>
  }
}

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
  app.decorate('shutdown', async ({ delayMs, sleep = sleepFor }) => {
    app.engine.stopReadiness()
    if (delayMs > 0) await sleep(delayMs)
    await app.close()
  })
}

export default fp(shutdown, { name: 'shutdown' })
