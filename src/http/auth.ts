import bearerAuth from '@fastify/bearer-auth'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Probes stay open whatever API_KEYS says: orchestrators and scrapers hold no key. */
export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

/** The API and its docs: what API_KEYS guards and RATE_LIMIT_PER_MIN counts. */
export function isApiRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url
  return url !== undefined && (url.startsWith('/v1/') || url.startsWith('/docs') || url === '/openapi.json')
}

export interface AuthOptions {
  /** Accepted bearer keys; none means no authentication. */
  keys: string[]
}

/**
 * With API_KEYS set, `/v1/*` and the docs need `Authorization: Bearer <key>`. @fastify/bearer-auth
 * compares keys in constant time; its failures reach the error handler, which answers 401
 * XENT_UNAUTHORIZED with `WWW-Authenticate: Bearer`.
 */
async function auth(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  if (opts.keys.length === 0) return
  await app.register(bearerAuth, { keys: new Set(opts.keys), addHook: false, verifyErrorLogLevel: 'info' })
  app.addHook('onRequest', (request, reply, done) => {
    if (!isApiRoute(request)) {
      done()
      return
    }
    app.verifyBearerAuth?.(request, reply, done)
  })
}

export default fp(auth, { name: 'auth' })
