import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** Why a request was turned away, as /metrics counts it. */
export type RejectionReason =
  | 'queue_full'
  | 'too_large'
  | 'timeout'
  | 'bad_input'
  | 'unauthorized'
  | 'rate_limited'
  | 'under_pressure'
  | 'memory_busy'
  | 'shutting_down'
  | 'client_closed'

export interface XentMetrics {
  registry: Registry
  rejections: Counter<'reason'>
  elements: Counter
  cancelledTasks: Counter<'stage'>
  jsonBodies: Counter<'reading'>
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: XentMetrics
  }
}

/**
 * Prometheus metrics at GET /metrics (prom-client, one registry per app): request durations by
 * route and status, the pool's queue and workers, elements processed, rejections by reason, and
 * the process's own (memory, event loop, GC).
 */
async function metrics(app: FastifyInstance): Promise<void> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const duration = new Histogram({
    name: 'xent_http_request_duration_seconds',
    help: 'Time from request to response, by route, method and status code.',
    labelNames: ['route', 'method', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry]
  })
  const stats = () => app.engine.stats()
  new Gauge({
    name: 'xent_pool_queue_depth',
    help: 'Tasks waiting for a worker.',
    registers: [registry],
    collect() {
      this.set(stats().queued)
    }
  })
  new Gauge({
    name: 'xent_pool_active_workers',
    help: 'Workers running a task now.',
    registers: [registry],
    collect() {
      this.set(stats().running)
    }
  })
  new Gauge({
    name: 'xent_pool_workers',
    help: 'Workers alive in the pool.',
    registers: [registry],
    collect() {
      this.set(stats().workers)
    }
  })
  new Gauge({
    name: 'xent_pool_workers_started',
    help: 'Workers started since the pool began: its threads, and one more for each that died and was replaced.',
    registers: [registry],
    collect() {
      this.set(stats().workersStarted)
    }
  })
  new Gauge({
    name: 'xent_pool_utilization',
    help: "The pool's utilization since it started, 0 to 1 (piscina's measure).",
    registers: [registry],
    collect() {
      this.set(stats().utilization)
    }
  })
  new Gauge({
    name: 'xent_kernel_memory_used_bytes',
    help: 'Kernel memory held by requests now: bodies, tensors and outputs (a request whose client left holds its memory until its tasks settle).',
    registers: [registry],
    collect() {
      this.set(app.engine.arena.usedBytes)
    }
  })
  new Gauge({
    name: 'xent_kernel_memory_capacity_bytes',
    help: 'Kernel memory requests can use in all (KERNEL_MEMORY_MB less the module and the control words).',
    registers: [registry],
    collect() {
      this.set(app.engine.arena.capacity)
    }
  })
  new Gauge({
    name: 'xent_admission_slots_taken',
    help: 'Admission slots held by requests in hand, of xent_admission_slots (POOL_THREADS + MAX_QUEUE).',
    registers: [registry],
    collect() {
      this.set(stats().slotsTaken)
    }
  })
  new Gauge({
    name: 'xent_admission_slots',
    help: 'Admission slots in all: POOL_THREADS + MAX_QUEUE.',
    registers: [registry],
    collect() {
      this.set(stats().slots)
    }
  })
  new Gauge({
    name: 'xent_uploads_in_progress',
    help: 'Tensor requests whose body is still arriving; they hold no admission slot.',
    registers: [registry],
    collect() {
      this.set(app.uploadsInProgress())
    }
  })
  const xent: XentMetrics = {
    registry,
    rejections: new Counter({
      name: 'xent_rejections_total',
      help: 'Requests turned away, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry]
    }),
    elements: new Counter({
      name: 'xent_elements_processed_total',
      help: 'Logits (B·T·V) of every computed request.',
      registers: [registry]
    }),
    jsonBodies: new Counter({
      name: 'xent_json_bodies_total',
      help: 'JSON bodies by how they were read: by the workers from kernel memory, or the general way (JSON.parse), as anything unusual is.',
      labelNames: ['reading'] as const,
      registers: [registry]
    }),
    cancelledTasks: new Counter({
      name: 'xent_cancelled_tasks_total',
      help: 'Pool tasks cancelled (client gone, timeout, or a failed sibling task), by how far they had got.',
      labelNames: ['stage'] as const,
      registers: [registry]
    })
  }
  app.decorate('metrics', xent)

  app.addHook('onResponse', async (request, reply) => {
    duration.observe(
      { route: request.routeOptions.url ?? 'unmatched', method: request.method, status_code: reply.statusCode },
      reply.elapsedTime / 1000
    )
  })

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text: request durations by route and status, pool queue depth, active workers and utilization, kernel memory held and admission slots taken, elements processed, rejections by reason, JSON bodies by how they were read, and process metrics. Open to probes even when API_KEYS is set.',
        response: {
          200: {
            description: 'Prometheus text exposition format.',
            content: { 'text/plain': { schema: { type: 'string' } } }
          }
        }
      }
    },
    async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    }
  )
}

export default fp(metrics, { name: 'metrics' })
