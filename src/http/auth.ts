import { createHash, timingSafeEqual } from 'node:crypto'
import bearerAuth from '@fastify/bearer-auth'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Which of API_KEYS the request authenticated with (a hash of the key as configured, never
     * the key), or null: the caller the rate limit counts, however the header spelled the key.
     */
    apiKeyId: string | null
  }
}

/** Probes stay open whatever API_KEYS says: orchestrators and scrapers hold no key. */
export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

/** The API: what API_KEYS guards. */
export function isGuardedRoute(request: FastifyRequest): boolean {
  return request.routeOptions.url?.startsWith('/v1/') === true
}

/** The API and its docs: what RATE_LIMIT_PER_MIN counts. */
export function isApiRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url
  return url !== undefined && (url.startsWith('/v1/') || url.startsWith('/docs') || url === '/openapi.json')
}

export interface AuthOptions {
  /** Accepted bearer keys; none means no authentication. */
  keys: string[]
}

const digest = (key: string) => createHash('sha256').update(key).digest()

/**
 * With API_KEYS set, `/v1/*` needs `Authorization: Bearer <key>`; the docs stay open, as they
 * hold no data. The scheme is matched case-insensitively (RFC 9110), and the key is compared
 * with every configured key in constant time; the one it matched names the caller
 * (request.apiKeyId). Failures reach the error handler, which answers 401 XENT_UNAUTHORIZED with
 * `WWW-Authenticate: Bearer`.
 */
async function auth(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  app.decorateRequest('apiKeyId', null)
  if (opts.keys.length === 0) return
  const digests = opts.keys.map(digest)
  await app.register(bearerAuth, {
    keys: new Set(opts.keys),
    addHook: false,
    verifyErrorLogLevel: 'info',
    // rfc6749 matches the scheme case-insensitively ("bearer", "BEARER").
    specCompliance: 'rfc6749',
    auth: (key: string, request: FastifyRequest) => {
      const sent = digest(key)
      let matched: Buffer | null = null
      // Every key is compared, so the time taken does not say which (if any) matched.
      for (const candidate of digests) if (timingSafeEqual(sent, candidate)) matched = candidate
      if (matched === null) return false
      request.apiKeyId = matched.toString('base64url')
      return true
    }
  })
  app.addHook('onRequest', (request, reply, done) => {
    if (!isGuardedRoute(request)) {
      done()
      return
    }
    app.verifyBearerAuth?.(request, reply, done)
  })
}

export default fp(auth, { name: 'auth' })
