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

/** Calls `fire` after `ms` and returns a function that stops it: setTimeout, unless a test injects a clock. */
export type DeadlineTimer = (fire: () => void, ms: number) => () => void

const realTimer: DeadlineTimer = (fire, ms) => {
  const timer = setTimeout(fire, ms)
  return () => clearTimeout(timer)
}

export interface DeadlineOptions {
  timeoutMs: number
  timer?: DeadlineTimer
}

async function deadline(app: FastifyInstance, opts: DeadlineOptions): Promise<void> {
  const startTimer = opts.timer ?? realTimer
  app.decorateRequest('deadline', null as unknown as AbortSignal)
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController()
    request.deadline = controller.signal
    const stop = startTimer(() => controller.abort(new XentErrors.TIMEOUT(String(opts.timeoutMs))), opts.timeoutMs)
    reply.raw.once('finish', stop)
    reply.raw.once('close', () => {
      stop()
      // Closed before the answer was all written: the client hung up.
      if (!reply.raw.writableFinished) controller.abort(new XentErrors.CLIENT_CLOSED())
    })
  })
}

export default fp(deadline, { name: 'deadline' })
