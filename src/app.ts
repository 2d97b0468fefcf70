import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { formatSchemaErrors } from './codec/schema-errors.js'
import type { Config } from './config.js'
import { createLogger } from './logger.js'
import binaryBody from './plugins/binary-body.js'
import contentTypes from './plugins/content-types.js'
import errors from './plugins/errors.js'
import pool from './plugins/pool.js'
import shutdown from './plugins/shutdown.js'
import swagger from './plugins/swagger.js'
import crossEntropyRoutes from './routes/cross-entropy.js'
import healthRoutes from './routes/health.js'

const MIB = 1024 * 1024

export type AppConfig = Pick<Config, 'POOL_THREADS' | 'BODY_LIMIT_MB' | 'KERNEL_MEMORY_MB' | 'LOG_LEVEL'>

export function serverOptions(config: AppConfig): FastifyServerOptions {
  return {
    loggerInstance: createLogger(config.LOG_LEVEL),
    bodyLimit: Math.floor(config.BODY_LIMIT_MB * MIB),
    ajv: {
      // The contract: no coercion ("1" is not 1), unknown fields are errors rather than dropped.
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, verbose: true }
    },
    schemaErrorFormatter: formatSchemaErrors
  }
}

/** Builds the whole service without listening: external plugins, our plugins, then routes. */
export async function buildApp(config: AppConfig, overrides: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...serverOptions(config), ...overrides }).withTypeProvider<TypeBoxTypeProvider>()
  await app.register(swagger)
  await app.register(contentTypes)
  await app.register(errors)
  await app.register(shutdown)
  await app.register(pool, { threads: config.POOL_THREADS, memoryMegabytes: config.KERNEL_MEMORY_MB })
  await app.register(binaryBody)
  await app.register(healthRoutes)
  await app.register(crossEntropyRoutes)
  return app
}
