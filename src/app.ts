import type { Server } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import { formatSchemaErrors } from './codec/schema-errors.js'
import { type Config, listSetting, loadConfig } from './config.js'
import type { FaultSource } from './engine/faults.js'
import auth from './http/auth.js'
import browsers from './http/browsers.js'
import { clientErrorHandler } from './http/client-errors.js'
import contentTypes from './http/content-types.js'
import deadline, { type DeadlineTimer } from './http/deadline.js'
import engine from './http/engine.js'
import errors from './http/errors.js'
import healthRoutes from './http/health.js'
import kernelBody from './http/kernel-body.js'
import metrics from './http/metrics.js'
import playground from './http/playground.js'
import pressure, { type PressureReadings } from './http/pressure.js'
import rateLimit from './http/rate-limit.js'
import requestIdHeader, { requestId } from './http/request-id.js'
import shutdown from './http/shutdown.js'
import swagger from './http/swagger.js'
import { registerTensorRoute } from './http/tensor-route.js'
import { createLogger } from './logger.js'
import { crossEntropyOperation } from './ops/cross-entropy/index.js'
import { logprobsOperation } from './ops/logprobs/index.js'

const MIB = 1024 * 1024

/** Everything but where to listen. */
export type AppConfig = Omit<Config, 'PORT' | 'HOST'>

export interface AppOptions {
  /** Fastify options over serverOptions(config). */
  fastify?: FastifyHttpOptions<Server>
  /** Worker faults for chosen requests (tests only; see src/engine/faults.ts and test/faults.ts). */
  faults?: FaultSource
  /** The main thread's readings for load shedding, instead of under-pressure's (tests only). */
  pressureReadings?: () => PressureReadings
  /** Starts a request's REQUEST_TIMEOUT_MS clock, instead of setTimeout (tests only). */
  deadlineTimer?: DeadlineTimer
}

export function serverOptions(config: AppConfig): FastifyHttpOptions<Server> {
  // A request must be whole (headers and body) within its upload deadline, or Node refuses it
  // (408 XENT_UPLOAD_TIMEOUT, through clientErrorHandler). Node looks for late requests every
  // connectionsCheckingInterval, so that is a tenth of the deadline (at most a second).
  const uploadDeadline = Math.min(config.UPLOAD_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS)
  return {
    requestTimeout: uploadDeadline,
    http: {
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(uploadDeadline / 10))),
      // Node checks neither deadline while the headers' allowance exceeds the whole request's.
      headersTimeout: Math.min(60_000, uploadDeadline)
    },
    loggerInstance: createLogger(config.LOG_LEVEL),
    bodyLimit: Math.floor(config.BODY_LIMIT_MB * MIB),
    genReqId: requestId,
    requestIdHeader: false,
    ajv: {
      // The contract: no coercion ("1" is not 1), unknown fields are errors rather than dropped.
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, verbose: true }
    },
    schemaErrorFormatter: formatSchemaErrors,
    clientErrorHandler
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
    redisUrl: config.RATE_LIMIT_REDIS_URL,
    redisTimeoutMs: config.RATE_LIMIT_REDIS_TIMEOUT_MS
  })
  await app.register(pressure, {
    maxEventLoopDelayMs: config.MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedMb: config.MAX_HEAP_USED_MB,
    readings: options.pressureReadings
  })
  await app.register(deadline, { timeoutMs: config.REQUEST_TIMEOUT_MS, timer: options.deadlineTimer })
  await app.register(engine, {
    threads: config.POOL_THREADS,
    memoryMegabytes: config.KERNEL_MEMORY_MB,
    maxQueue: config.MAX_QUEUE,
    maxElements: config.MAX_ELEMENTS,
    workerMaxOldGenerationMb: config.WORKER_MAX_OLD_GENERATION_MB,
    faults: options.faults
  })
  await app.register(kernelBody, { maxElements: config.MAX_ELEMENTS })
  await app.register(healthRoutes)
  await app.register(async (routes) => {
    registerTensorRoute(routes, crossEntropyOperation)
    registerTensorRoute(routes, logprobsOperation)
  })
  await app.register(playground)
  return app
}
