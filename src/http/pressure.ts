import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { XentErrors } from '../errors.js'
import { PROBE_ROUTES } from './auth.js'

/** What the main thread looks like: under-pressure's last sample. */
export interface PressureReadings {
  /** Mean event-loop delay over the last sample, in ms. */
  eventLoopDelay: number
  /** V8 heap in use, in bytes. */
  heapUsed: number
}

export interface PressureOptions {
  /** Mean event-loop delay past which new requests get 503 (MAX_EVENT_LOOP_DELAY_MS); 0 is off. */
  maxEventLoopDelayMs: number
  /** Main-thread V8 heap in use past which new requests get 503 (MAX_HEAP_USED_MB); 0 is off. */
  maxHeapUsedMb: number
  /** Readings to judge by instead of under-pressure's samples (tests inject them). */
  readings?: () => PressureReadings
}

/**
 * Sheds load when the main thread falls behind (it parses JSON and builds answers; the workers
 * compute): 503 XENT_UNDER_PRESSURE with Retry-After, never for the probes, so that an
 * orchestrator does not restart a process that is merely busy. @fastify/under-pressure samples
 * the event-loop delay and the heap once a second; the verdict is taken here, from its readings,
 * so that a test can hand in readings of its own instead of blocking the event loop and hoping a
 * sample lands.
 */
async function pressure(app: FastifyInstance, opts: PressureOptions): Promise<void> {
  // No limits of its own: it only samples (app.memoryUsage()).
  await app.register(underPressure, {})
  const readings = opts.readings ?? (() => app.memoryUsage())
  const maxHeapUsedBytes = opts.maxHeapUsedMb * 2 ** 20
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.url !== undefined && PROBE_ROUTES.has(request.routeOptions.url)) return
    const { eventLoopDelay, heapUsed } = readings()
    if (opts.maxEventLoopDelayMs > 0 && eventLoopDelay > opts.maxEventLoopDelayMs) {
      throw new XentErrors.UNDER_PRESSURE(`event-loop delay ${eventLoopDelay.toFixed(0)} ms`)
    }
    if (maxHeapUsedBytes > 0 && heapUsed > maxHeapUsedBytes) {
      throw new XentErrors.UNDER_PRESSURE(`heap in use ${(heapUsed / 2 ** 20).toFixed(0)} MB`)
    }
  })
}

export default fp(pressure, { name: 'pressure' })
