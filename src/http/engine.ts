import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { ConfigError } from '../config.js'
import { createEngine, type Engine, type EngineOptions } from '../engine/engine.js'
import { QueueFullError } from '../engine/errors.js'
import { limitsConflict } from '../limits.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The engine: kernel memory, admission and the worker pool (src/engine/). */
    engine: Engine
    /**
     * A tensor route's onRequest hook: refuses (503 XENT_QUEUE_FULL) a request while as many are
     * already in hand as the workers and MAX_QUEUE can hold, before its body is read or parsed.
     */
    admitRequest: onRequestAsyncHookHandler
  }
}

export type EnginePluginOptions = Omit<EngineOptions, 'onCancelled' | 'onWorkerFailed' | 'beforeStart'>

/**
 * The engine as a Fastify plugin: it decorates the app with it, starts it with the app (ready
 * once a task has run) and closes it with the app, after every computation has settled. A
 * configuration whose kernel memory cannot hold the largest request MAX_ELEMENTS allows is a boot
 * error, before any worker starts.
 */
async function enginePlugin(app: FastifyInstance, opts: EnginePluginOptions): Promise<void> {
  const engine = createEngine({
    ...opts,
    beforeStart: (capacity) => {
      const conflict = limitsConflict(opts.maxElements, capacity, opts.memoryMegabytes)
      if (conflict !== null) throw new ConfigError(`invalid configuration: ${conflict}`)
    },
    onCancelled: (stage) => app.metrics.cancelledTasks.inc({ stage }),
    // The cause goes to the log, never to the client.
    onWorkerFailed: (error, requestId) => app.log.error({ err: error, reqId: requestId }, 'a worker failed')
  })
  app.decorate('engine', engine)
  // Shedding a request before its body is parsed keeps the main thread free for the requests it
  // has taken, and for the probes, under a flood.
  app.decorate('admitRequest', async (_request, reply) => {
    const release = engine.takeSlot()
    if (release === null) throw new QueueFullError()
    reply.raw.once('finish', release)
    reply.raw.once('close', release)
  })
  app.addHook('onReady', () => engine.start())
  app.addHook('preClose', async () => engine.stopReadiness())
  app.addHook('onClose', () => engine.close())
}

export default fp(enginePlugin, { name: 'engine', dependencies: ['metrics'] })
