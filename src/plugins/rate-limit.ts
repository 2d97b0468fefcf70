import { createHash } from 'node:crypto'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { XentErrors } from '../errors.js'
import { isApiRoute } from './auth.js'

export interface RateLimitOptions {
  /** Requests a minute per key (or per IP without one); 0 turns the limit off. */
  perMinute: number
  /** Whether API keys are checked: only then does a key name the caller. */
  keyed: boolean
}

/**
 * A caller is its bearer key (hashed: keys never sit in the limiter's map), which auth has
 * already checked; without API_KEYS a key proves nothing (a fresh one would be a fresh budget),
 * so the caller is its IP.
 */
function callerKey(keyed: boolean): (request: FastifyRequest) => string {
  return (request) => {
    const authorization = request.headers.authorization
    if (keyed && authorization?.startsWith('Bearer ') === true) {
      return `key:${createHash('sha256').update(authorization.slice(7)).digest('base64url')}`
    }
    return `ip:${request.ip}`
  }
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
    keyGenerator: callerKey(opts.keyed),
    allowList: (request) => !isApiRoute(request),
    errorResponseBuilder: (_request, context) => new XentErrors.RATE_LIMITED(context.max, context.after)
  })
}

export default fp(rateLimiting, { name: 'rate-limit' })
