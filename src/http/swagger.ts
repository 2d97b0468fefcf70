import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const OPENAPI_INFO = {
  title: 'xent',
  description:
    'Cross-entropy loss for language-model logits, exactly as torch.nn.functional.cross_entropy: the loss, per-token losses, gradients with respect to the logits, and perplexity.',
  version: '0.1.0'
}

/** OpenAPI generated from the route schemas: /openapi.json, and Swagger UI at /docs. */
async function docs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      tags: [
        { name: 'loss', description: 'Cross-entropy computations' },
        { name: 'health', description: 'Probes and metrics for orchestrators, open without a key' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'Required on /v1/* when the server sets API_KEYS; otherwise not needed. The docs are open.'
          }
        }
      }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}

export default fp(docs, { name: 'swagger' })
