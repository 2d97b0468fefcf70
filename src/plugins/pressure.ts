import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { XentErrors } from '../errors.js'
import { PROBE_ROUTES } from './auth.js'

export interface PressureOptions {
  /** Mean event-loop delay past which new requests get 503 (MAX_EVENT_LOOP_DELAY_MS); 0 is off. */
  maxEventLoopDelayMs: number
  /** Main-thread V8 heap in use past which new requests get 503 (MAX_HEAP_USED_MB); 0 is off. */
  maxHeapUsedMb: number
  /** How often the main thread is measured. */
  sampleIntervalMs?: number
}

const WHAT = {
  eventLoopDelay: (value: number) => `event-loop delay ${value.toFixed(0)} ms`,
  heapUsedBytes: (value: number) => `heap in use ${(value / 2 ** 20).toFixed(0)} MB`
} as Record<string, (value: number) => string>

/**
 * @fastify/under-pressure sheds load when the main thread falls behind (it parses JSON and builds
 * answers; the workers compute): 503 XENT_UNDER_PRESSURE with Retry-After, never for the probes,
 * so that an orchestrator does not restart a process that is merely busy.
 */
async function pressure(app: FastifyInstance, opts: PressureOptions): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxHeapUsedBytes: opts.maxHeapUsedMb * 2 ** 20,
    sampleInterval: opts.sampleIntervalMs,
    pressureHandler: (request, _reply, type, value) => {
      if (request.routeOptions.url !== undefined && PROBE_ROUTES.has(request.routeOptions.url)) return
      const what = WHAT[type]?.(Number(value)) ?? type
      return Promise.reject(new XentErrors.UNDER_PRESSURE(what))
    }
  })
}

export default fp(pressure, { name: 'pressure' })
