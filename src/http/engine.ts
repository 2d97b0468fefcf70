import type { FastifyInstance, onRequestAsyncHookHandler, preHandlerAsyncHookHandler } from 'fastify'
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
     * It takes nothing: an upload, however slow, holds no slot.
     */
    shedWhenFull: onRequestAsyncHookHandler
    /**
     * A tensor route's preHandler hook, once the body has arrived: takes the request's admission
     * slot (503 XENT_QUEUE_FULL when none is left), given back when the answer is sent or the
     * client leaves.
     */
    takeSlot: preHandlerAsyncHookHandler
    /** Tensor requests whose body is still arriving (they hold no slot). */
    uploadsInProgress: () => number
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
  let uploading = 0
  const uploadEnded = new WeakMap<object, () => void>()
  app.decorate('uploadsInProgress', () => uploading)
  app.decorate('shedWhenFull', async (request, reply) => {
    if (!engine.hasFreeSlot()) throw new QueueFullError()
    uploading++
    let ended = false
    const end = () => {
      if (!ended) uploading--
      ended = true
    }
    uploadEnded.set(request, end)
    reply.raw.once('close', end)
  })
  const holdingSlot = new WeakSet<object>()
  app.decorate('takeSlot', async (request, reply) => {
    // A request takes one slot, however many hooks ask for it.
    if (holdingSlot.has(request)) return
    holdingSlot.add(request)
    uploadEnded.get(request)?.()
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
