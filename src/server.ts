import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { type Config, ConfigError, loadConfig } from './config.js'
import { createLogger } from './logger.js'

// Process concerns only: configuration, signals, listening.
/** A bad configuration (a value, or limits that contradict each other) ends the process with its message. */
function refuseToStart(error: unknown): never {
  if (!(error instanceof ConfigError)) throw error
  createLogger('info', { sync: true }).fatal(error.message)
  process.exit(1)
}

let config: Config
try {
  config = loadConfig()
} catch (error) {
  refuseToStart(error)
}

let app: FastifyInstance
try {
  app = await buildApp(config)
} catch (error) {
  refuseToStart(error)
}

// Within SHUTDOWN_GRACE_MS: /readyz turns 503 at once; requests are still taken for
// SHUTDOWN_DELAY_MS, while load balancers notice; then the listener closes, in-flight requests
// finish, and the process exits 0. Past the grace, close-with-grace exits 1.
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an uncaught error')
  else app.log.info({ signal, delayMs: config.SHUTDOWN_DELAY_MS }, 'closing: not ready, finishing in-flight requests')
  await app.shutdown({ delayMs: err === undefined ? config.SHUTDOWN_DELAY_MS : 0 })
})

await app.listen({ port: config.PORT, host: config.HOST })
