import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { XentErrors } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Aborts when the request has taken REQUEST_TIMEOUT_MS (reason XENT_TIMEOUT) or its client
     * has gone (XENT_CLIENT_CLOSED); the pool cancels the request's work on it.
     */
    deadline: AbortSignal
  }
}

export interface DeadlineOptions {
  timeoutMs: number
}

async function deadline(app: FastifyInstance, opts: DeadlineOptions): Promise<void> {
  app.decorateRequest('deadline', null as unknown as AbortSignal)
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController()
    request.deadline = controller.signal
    const timer = setTimeout(() => controller.abort(new XentErrors.TIMEOUT(String(opts.timeoutMs))), opts.timeoutMs)
    reply.raw.once('finish', () => clearTimeout(timer))
    reply.raw.once('close', () => {
      clearTimeout(timer)
      // Closed before the answer was all written: the client hung up.
      if (!reply.raw.writableFinished) controller.abort(new XentErrors.CLIENT_CLOSED())
    })
  })
}

export default fp(deadline, { name: 'deadline' })
