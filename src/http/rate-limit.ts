import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { XentErrors } from '../errors.js'
import { isApiRoute } from './auth.js'

export interface RateLimitOptions {
  /** Requests a minute per key (or per IP without one); 0 turns the limit off. */
  perMinute: number
  /** A Redis all replicas share, so that a caller's budget is one across pods; '' keeps it per pod. */
  redisUrl?: string
  /** How long a count may wait for Redis before the request goes on uncounted (RATE_LIMIT_REDIS_TIMEOUT_MS). */
  redisTimeoutMs?: number
}

/**
 * A caller is the API key that authentication matched (request.apiKeyId: a hash of the key as
 * configured, so every spelling of one header counts against one budget); without API_KEYS, or on
 * the open docs, a key proves nothing (a fresh one would be a fresh budget), so the caller is its IP.
 */
function callerKey(request: FastifyRequest): string {
  return request.apiKeyId === null ? `ip:${request.ip}` : `key:${request.apiKeyId}`
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
    errorResponseBuilder: (_request, context) => new XentErrors.RATE_LIMITED(context.max, context.after),
    ...(opts.redisUrl ? await sharedStore(app, opts.redisUrl, opts.redisTimeoutMs ?? 500) : {})
  })
}

/**
 * The counts in Redis (RATE_LIMIT_REDIS_URL), shared by every replica. A limit is there to spare
 * the service, not to guard data, so while Redis is unreachable requests go on uncounted (fail
 * open, logged once per outage) rather than fail: no command waits in a queue for a connection,
 * and none waits longer than RATE_LIMIT_REDIS_TIMEOUT_MS.
 */
async function sharedStore(app: FastifyInstance, url: string, timeoutMs: number) {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false
  })
  let reachable = true
  redis.on('error', (error: Error) => {
    if (reachable)
      app.log.warn({ err: error }, 'the rate-limit store (RATE_LIMIT_REDIS_URL) is unreachable: requests go uncounted')
    reachable = false
  })
  redis.on('ready', () => {
    if (!reachable) app.log.info('the rate-limit store is reachable again')
    reachable = true
  })
  app.addHook('onClose', async () => {
    redis.disconnect()
  })
  // Booting does not wait on Redis: without it the limit is off, and it reconnects by itself.
  await redis.connect().catch(() => {})
  return { redis, nameSpace: 'xent-rate-limit-', skipOnError: true }
}

export default fp(rateLimiting, { name: 'rate-limit' })
