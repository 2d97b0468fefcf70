import { availableParallelism } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import Type, { type Static } from 'typebox'
import Value from 'typebox/value'

/** Past 90% of V8's heap limit the main thread sheds load. */
const DEFAULT_MAX_HEAP_USED_MB = Math.floor((getHeapStatistics().heap_size_limit * 0.9) / 2 ** 20)

/** Every setting, read from the environment once at boot. The type derives from the schema. */
export const ConfigSchema = Type.Object({
  PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: 8080 })),
  HOST: Type.Optional(Type.String({ minLength: 1, default: '0.0.0.0' })),
  POOL_THREADS: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: availableParallelism() })),
  BODY_LIMIT_MB: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 4096, default: 64 })),
  KERNEL_MEMORY_MB: Type.Optional(Type.Integer({ minimum: 16, maximum: 4000, default: 2048 })),
  LOG_LEVEL: Type.Optional(
    Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' })
  ),
  // Back-pressure and limits.
  MAX_QUEUE: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, default: 32 })),
  MAX_ELEMENTS: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31, default: 2 ** 25 })),
  REQUEST_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, default: 30_000 })),
  UPLOAD_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, default: 30_000 })),
  MAX_EVENT_LOOP_DELAY_MS: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 })),
  MAX_HEAP_USED_MB: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: DEFAULT_MAX_HEAP_USED_MB })),
  WORKER_MAX_OLD_GENERATION_MB: Type.Optional(Type.Integer({ minimum: 16, maximum: 65_536, default: 256 })),
  SHUTDOWN_GRACE_MS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 10_000 })),
  SHUTDOWN_DELAY_MS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 0 })),
  // Who may call it.
  API_KEYS: Type.Optional(Type.String({ default: '' })),
  CORS_ORIGINS: Type.Optional(Type.String({ default: '' })),
  RATE_LIMIT_PER_MIN: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0 })),
  RATE_LIMIT_REDIS_URL: Type.Optional(Type.String({ pattern: '^(rediss?://.+)?$', default: '' })),
  RATE_LIMIT_REDIS_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000, default: 500 }))
})
export type Config = Required<Static<typeof ConfigSchema>>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const NUMBER_LITERAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/**
 * Validates the environment against ConfigSchema: defaults filled, numeric strings read as
 * numbers (never rounded: POOL_THREADS=1.5 is an error, not 1), every problem named.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {}
  const typed: Record<string, string | number> = {}
  for (const [key, schema] of Object.entries(ConfigSchema.properties)) {
    const value = env[key]
    if (value === undefined || value === '') continue
    raw[key] = value
    const numeric = 'type' in schema && (schema.type === 'integer' || schema.type === 'number')
    typed[key] = numeric && NUMBER_LITERAL.test(value) ? Number(value) : value
  }
  const config = Value.Default(ConfigSchema, typed)
  const errors = Value.Errors(ConfigSchema, config)
  if (errors.length > 0) {
    const problems = errors.map((error) => {
      const key = error.instancePath.slice(1)
      return `${key}=${JSON.stringify(raw[key])} ${error.message}`
    })
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  }
  return config as Config
}

/** A comma-separated setting (API_KEYS, CORS_ORIGINS) as its non-empty items. */
export function listSetting(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
}
