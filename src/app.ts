import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { formatSchemaErrors } from './codec/schema-errors.js'
import { type Config, listSetting, loadConfig } from './config.js'
import { createLogger } from './logger.js'
import auth from './plugins/auth.js'
import binaryBody from './plugins/binary-body.js'
import browsers from './plugins/browsers.js'
import contentTypes from './plugins/content-types.js'
import deadline, { type DeadlineTimer } from './plugins/deadline.js'
import errors from './plugins/errors.js'
import metrics from './plugins/metrics.js'
import playground from './plugins/playground.js'
import pool from './plugins/pool.js'
import pressure, { type PressureReadings } from './plugins/pressure.js'
import rateLimit from './plugins/rate-limit.js'
import requestIdHeader, { requestId } from './plugins/request-id.js'
import shutdown from './plugins/shutdown.js'
import swagger from './plugins/swagger.js'
import type { FaultSource } from './pool/faults.js'
import crossEntropyRoutes from './routes/cross-entropy.js'
import healthRoutes from './routes/health.js'
import logprobsRoutes from './routes/logprobs.js'

const MIB = 1024 * 1024

/** Everything but where to listen. */
export type AppConfig = Omit<Config, 'PORT' | 'HOST'>

export interface AppOptions {
  /** Fastify options over serverOptions(config). */
  fastify?: FastifyServerOptions
  /** Worker faults for chosen requests (tests only; see src/pool/faults.ts and test/faults.ts). */
  faults?: FaultSource
  /** The main thread's readings for load shedding, instead of under-pressure's (tests only). */
  pressureReadings?: () => PressureReadings
  /** Starts a request's REQUEST_TIMEOUT_MS clock, instead of setTimeout (tests only). */
  deadlineTimer?: DeadlineTimer
}

export function serverOptions(config: AppConfig): FastifyServerOptions {
  return {
    loggerInstance: createLogger(config.LOG_LEVEL),
    bodyLimit: Math.floor(config.BODY_LIMIT_MB * MIB),
    genReqId: requestId,
    requestIdHeader: false,
    ajv: {
      // The contract: no coercion ("1" is not 1), unknown fields are errors rather than dropped.
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, verbose: true }
    },
    schemaErrorFormatter: formatSchemaErrors
  }
}

/** The configuration with every default, under `settings`. */
export function appConfig(settings: Partial<AppConfig> = {}): AppConfig {
  const { PORT: _port, HOST: _host, ...defaults } = loadConfig({})
  return { ...defaults, ...settings }
}

/** Builds the whole service without listening: external plugins, our plugins, then routes. */
export async function buildApp(settings: Partial<AppConfig> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const config = appConfig(settings)
  const app = Fastify({ ...serverOptions(config), ...options.fastify }).withTypeProvider<TypeBoxTypeProvider>()
  await app.register(swagger)
  await app.register(requestIdHeader)
  await app.register(metrics)
  await app.register(contentTypes)
  await app.register(errors)
  await app.register(shutdown)
  await app.register(browsers, { corsOrigins: listSetting(config.CORS_ORIGINS) })
  const apiKeys = listSetting(config.API_KEYS)
  await app.register(auth, { keys: apiKeys })
  await app.register(rateLimit, {
    perMinute: config.RATE_LIMIT_PER_MIN,
    keyed: apiKeys.length > 0,
    redisUrl: config.RATE_LIMIT_REDIS_URL,
    redisTimeoutMs: config.RATE_LIMIT_REDIS_TIMEOUT_MS
  })
  await app.register(pressure, {
    maxEventLoopDelayMs: config.MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedMb: config.MAX_HEAP_USED_MB,
    readings: options.pressureReadings
  })
  await app.register(deadline, { timeoutMs: config.REQUEST_TIMEOUT_MS, timer: options.deadlineTimer })
  await app.register(pool, {
    threads: config.POOL_THREADS,
    memoryMegabytes: config.KERNEL_MEMORY_MB,
    maxQueue: config.MAX_QUEUE,
    maxElements: config.MAX_ELEMENTS,
    workerMaxOldGenerationMb: config.WORKER_MAX_OLD_GENERATION_MB,
    faults: options.faults
  })
  await app.register(binaryBody, { maxElements: config.MAX_ELEMENTS })
  await app.register(healthRoutes)
  await app.register(crossEntropyRoutes)
  await app.register(logprobsRoutes)
  await app.register(playground)
  return app
}
