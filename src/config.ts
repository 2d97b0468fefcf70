import { availableParallelism } from 'node:os'
import Type, { type Static } from 'typebox'
import Value from 'typebox/value'

/** Every setting, read from the environment once at boot. The type derives from the schema. */
export const ConfigSchema = Type.Object({
  PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: 8080 })),
  HOST: Type.Optional(Type.String({ minLength: 1, default: '0.0.0.0' })),
  POOL_THREADS: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: availableParallelism() })),
  BODY_LIMIT_MB: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 4096, default: 64 })),
  LOG_LEVEL: Type.Optional(
    Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' })
  )
})
export type Config = Required<Static<typeof ConfigSchema>>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Validates the environment against ConfigSchema: defaults filled, strings converted, errors named. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const config = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw))
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
