import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'

describe('loadConfig', () => {
  it('fills every default from an empty environment', () => {
    expect(loadConfig({})).toEqual({
      PORT: 8080,
      HOST: '0.0.0.0',
      POOL_THREADS: availableParallelism(),
      BODY_LIMIT_MB: 64,
      KERNEL_MEMORY_MB: 2048,
      LOG_LEVEL: 'info'
    })
  })

  it('converts numeric strings and ignores variables it does not own', () => {
    const config = loadConfig({
      PORT: '9000',
      POOL_THREADS: '3',
      BODY_LIMIT_MB: '0.5',
      LOG_LEVEL: 'debug',
      HOME: '/root'
    })
    expect(config).toMatchObject({ PORT: 9000, POOL_THREADS: 3, BODY_LIMIT_MB: 0.5, LOG_LEVEL: 'debug' })
    expect(config).not.toHaveProperty('HOME')
  })

  it.each([
    [{ PORT: 'eighty' }, 'PORT="eighty"'],
    [{ PORT: '70000' }, 'PORT="70000"'],
    [{ POOL_THREADS: '0' }, 'POOL_THREADS="0"'],
    [{ POOL_THREADS: '1.5' }, 'POOL_THREADS="1.5"'],
    [{ BODY_LIMIT_MB: '-1' }, 'BODY_LIMIT_MB="-1"'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL="loud"']
  ])('rejects %o, naming the variable', (env, named) => {
    expect(() => loadConfig(env)).toThrow(ConfigError)
    expect(() => loadConfig(env)).toThrow(named)
  })
})
