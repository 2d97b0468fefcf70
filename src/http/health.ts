import type { FastifyInstance } from 'fastify'
import { HealthSchema } from '../../schemas/health.js'

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness',
        description: 'Answers 200 for as long as the process lives.',
        response: { 200: HealthSchema }
      }
    },
    async () => ({ status: 'ok' as const })
  )

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness',
        description: 'Answers 200 once the worker pool has run a task, and 503 from the start of shutdown.',
        response: { 200: HealthSchema, 503: HealthSchema }
      }
    },
    async (_request, reply) => {
      if (app.engine.isReady()) return { status: 'ready' as const }
      return reply.code(503).send({ status: 'shutting_down' as const })
    }
  )
}
