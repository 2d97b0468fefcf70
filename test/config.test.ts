import { availableParallelism } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { ConfigError, listSetting, loadConfig } from '../src/config.js'

describe('loadConfig', () => {
  it('fills every default from an empty environment', () => {
    expect(loadConfig({})).toEqual({
      PORT: 8080,
      HOST: '0.0.0.0',
      POOL_THREADS: availableParallelism(),
      BODY_LIMIT_MB: 64,
      KERNEL_MEMORY_MB: 2048,
      LOG_LEVEL: 'info',
      MAX_QUEUE: 32,
      MAX_ELEMENTS: 33_554_432,
      REQUEST_TIMEOUT_MS: 30_000,
      UPLOAD_TIMEOUT_MS: 30_000,
      MAX_EVENT_LOOP_DELAY_MS: 1000,
      MAX_HEAP_USED_MB: Math.floor((getHeapStatistics().heap_size_limit * 0.9) / 2 ** 20),
      WORKER_MAX_OLD_GENERATION_MB: 256,
      SHUTDOWN_GRACE_MS: 10_000,
      SHUTDOWN_DELAY_MS: 0,
      API_KEYS: '',
      CORS_ORIGINS: '',
      RATE_LIMIT_PER_MIN: 0,
      RATE_LIMIT_REDIS_URL: '',
      RATE_LIMIT_REDIS_TIMEOUT_MS: 500
    })
  })

  it('reads comma-separated lists, blanks dropped', () => {
    expect(listSetting(' key-one, key-two ,,')).toEqual(['key-one', 'key-two'])
    expect(listSetting('')).toEqual([])
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
