import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

export interface BrowserOptions {
  /** Origins allowed to call from a browser (CORS_ORIGINS); none means no cross-origin access. */
  corsOrigins: string[]
}

/**
 * The one `<style>` element Swagger UI's bundle adds at run time (the locked swagger-ui-dist's);
 * test/browser/docs.test.ts fails, naming the new hash, if an upgrade changes it.
 */
const SWAGGER_UI_STYLE_HASH = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"

/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE = 600

/**
 * Dashboards call xent from browsers. CORS admits exactly the listed origins, for GET and POST
 * with the headers the API reads, and lets them read the headers it sets; a preflight is cached
 * for PREFLIGHT_MAX_AGE. Helmet sets its security headers on every answer, with a content
 * security policy that allows scripts and styles (the playground's, Swagger UI's) from xent
 * itself, Swagger UI's one inline style by hash, and nothing from elsewhere.
 */
async function browsers(app: FastifyInstance, opts: BrowserOptions): Promise<void> {
  await app.register(cors, {
    origin: opts.corsOrigins.length === 0 ? false : opts.corsOrigins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type', 'accept', 'authorization', 'x-request-id'],
    exposedHeaders: ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    credentials: false,
    maxAge: PREFLIGHT_MAX_AGE,
    strictPreflight: true
  })
  // Helmet's middleware, made once. (@fastify/helmet makes it anew for every request, parsing
  // the policy each time: a twentieth of a small request's main-thread time.)
  const securityHeaders = helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        scriptSrc: ["'self'", ...app.swaggerCSP.script],
        styleSrc: ["'self'", SWAGGER_UI_STYLE_HASH, ...app.swaggerCSP.style],
        // Helmet's default would have browsers fetch the page's own script over https. xent
        // serves plain HTTP inside a cluster (TLS ends at the ingress), where that breaks the
        // playground and the docs for anyone reaching a pod by its address.
        upgradeInsecureRequests: null
      }
    }
  })
  app.addHook('onRequest', (request, reply, done) => securityHeaders(request.raw, reply.raw, () => done()))
}

export default fp(browsers, { name: 'browsers', dependencies: ['swagger'] })
