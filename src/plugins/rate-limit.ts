import { createHash } from 'node:crypto'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { XentErrors } from '../errors.js'
import { isApiRoute } from './auth.js'

export interface RateLimitOptions {
  /** Requests a minute per key (or per IP without one); 0 turns the limit off. */
  perMinute: number
}

/** A caller is its bearer key when it sends one (hashed: keys never sit in memory maps), else its IP. */
function callerKey(request: FastifyRequest): string {
  const authorization = request.headers.authorization
  if (authorization?.startsWith('Bearer ') === true) {
    return `key:${createHash('sha256').update(authorization.slice(7)).digest('base64url')}`
  }
  return `ip:${request.ip}`
}

/**
 * RATE_LIMIT_PER_MIN over the API and docs (never the probes), with @fastify/rate-limit's
 * x-ratelimit-* headers on every answer and Retry-After on its 429 (XENT_RATE_LIMITED).
 */
async function rateLimiting(app: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  if (opts.perMinute === 0) return
  await app.register(rateLimit, {
    max: opts.perMinute,
    timeWindow: 60_000,
    keyGenerator: callerKey,
    allowList: (request) => !isApiRoute(request),
    errorResponseBuilder: (_request, context) => new XentErrors.RATE_LIMITED(context.max, context.after)
  })
}

export default fp(rateLimiting, { name: 'rate-limit' })
