import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { build } from '../helper.js'

// A real Redis (Debian's redis-server), on loopback, without persistence, started per test.
const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server'
const hasRedis = existsSync(REDIS_SERVER)
if (!hasRedis)
  console.warn(`skipping the shared rate-limit tests: ${REDIS_SERVER} is missing (apt-get install -y redis-server)`)

const post = { method: 'POST' as const, url: '/v1/cross-entropy', payload: { logits: [[1, 2, 3]], targets: [2] } }

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

async function startRedis(port: number): Promise<ChildProcess> {
  const redis = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe']
    }
  )
  onTestFinished(() => {
    redis.kill('SIGKILL')
  })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    redis.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
    redis.on('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)))
  })
  return redis
}

describe.skipIf(!hasRedis)('RATE_LIMIT_REDIS_URL', () => {
  it('gives a caller one budget across replicas', async () => {
    const port = await freePort()
    await startRedis(port)
    // A count that waited for Redis past the timeout would go uncounted: give it one only a real
    // bug reaches, so that a busy machine cannot turn a 429 into a 200.
    const shared = {
      POOL_THREADS: 1,
      RATE_LIMIT_PER_MIN: 3,
      RATE_LIMIT_REDIS_URL: `redis://127.0.0.1:${port}`,
      RATE_LIMIT_REDIS_TIMEOUT_MS: 20_000
    }
    const [podA, podB] = await Promise.all([build(shared), build(shared)])
    const first = await podA.inject(post)
    expect(first.statusCode).toBe(200)
    expect(first.headers['x-ratelimit-remaining']).toBe('2')
    expect((await podB.inject(post)).headers['x-ratelimit-remaining']).toBe('1')
    expect((await podA.inject(post)).statusCode).toBe(200)
    const limited = await podB.inject(post)
    expect(limited.statusCode).toBe(429)
    expect(limited.json()).toMatchObject({ code: 'XENT_RATE_LIMITED' })
    expect((await podA.inject(post)).statusCode).toBe(429)

    // Without the shared store each replica counts alone.
    const [alone1, alone2] = await Promise.all([
      build({ POOL_THREADS: 1, RATE_LIMIT_PER_MIN: 3 }),
      build({ POOL_THREADS: 1, RATE_LIMIT_PER_MIN: 3 })
    ])
    for (const pod of [alone1, alone2]) {
      for (let i = 0; i < 3; i++) expect((await pod.inject(post)).statusCode).toBe(200)
    }
  })

  it('serves on, uncounted, while Redis is away, and counts again once it is back', async () => {
    const port = await freePort()
    const app = await build({
      POOL_THREADS: 1,
      RATE_LIMIT_PER_MIN: 2,
      RATE_LIMIT_REDIS_URL: `redis://127.0.0.1:${port}`,
      RATE_LIMIT_REDIS_TIMEOUT_MS: 20_000
    })
    for (let i = 0; i < 4; i++) expect((await app.inject(post)).statusCode).toBe(200)

    await startRedis(port)
    // It reconnects by itself; from then on the budget of 2 runs out.
    await expect.poll(async () => (await app.inject(post)).statusCode, { timeout: 15_000, interval: 250 }).toBe(429)
  }, 30_000)

  it('refuses a URL that is not redis:// or rediss://, naming the variable', () => {
    expect(() => loadConfig({ RATE_LIMIT_REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(/RATE_LIMIT_REDIS_URL/)
    expect(
      loadConfig({ RATE_LIMIT_REDIS_URL: 'rediss://user:secret@redis.internal:6380/2' }).RATE_LIMIT_REDIS_URL
    ).toBe('rediss://user:secret@redis.internal:6380/2')
  })
})
