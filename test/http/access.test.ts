import { describe, expect, it } from 'vitest'
import { build, keptLogs } from '../helper.js'

const small = { logits: [[1, 2, 3]], targets: [2] }
const post = (headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url: '/v1/cross-entropy',
  headers,
  payload: small
})

describe('API_KEYS', () => {
  const keys = { API_KEYS: 'first-key-0123, second-key-4567' }

  it('requires a listed Bearer key on /v1/*, answering 401 otherwise', async () => {
    const app = await build(keys)
    const refused: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong-key' },
      { authorization: 'Basic Zmlyc3Qta2V5' }
    ]
    for (const headers of refused) {
      const res = await app.inject(post(headers))
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toMatchObject({ statusCode: 401, code: 'XENT_UNAUTHORIZED' })
    }
    for (const key of ['first-key-0123', 'second-key-4567']) {
      expect((await app.inject(post({ authorization: `Bearer ${key}` }))).statusCode).toBe(200)
    }
  })

  it('matches the scheme case-insensitively (RFC 9110), and the key exactly', async () => {
    const app = await build(keys)
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      expect((await app.inject(post({ authorization: `${scheme} first-key-0123` }))).statusCode).toBe(200)
    }
    for (const key of ['FIRST-KEY-0123', 'first-key-012', 'first-key-01234']) {
      expect((await app.inject(post({ authorization: `Bearer ${key}` }))).statusCode).toBe(401)
    }
  })

  it('leaves the docs open, as they hold no data', async () => {
    const app = await build(keys)
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200)
    expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBe(200)
  })

  it('leaves the probes and /metrics open', async () => {
    const app = await build(keys)
    for (const url of ['/healthz', '/readyz', '/metrics']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200)
    }
  })

  it('asks for no key when unset', async () => {
    const app = await build()
    expect((await app.inject(post())).statusCode).toBe(200)
  })
})

describe('CORS_ORIGINS', () => {
  const preflight = (origin: string) => ({
    method: 'OPTIONS' as const,
    url: '/v1/cross-entropy',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, authorization'
    }
  })

  it('answers a listed origin, with preflight caching, and no other', async () => {
    const app = await build({ CORS_ORIGINS: 'https://dash.example.com,https://other.example.com' })
    const allowed = await app.inject(preflight('https://dash.example.com'))
    expect(allowed.statusCode).toBe(204)
    expect(allowed.headers['access-control-allow-origin']).toBe('https://dash.example.com')
    expect(allowed.headers['access-control-allow-methods']).toBe('GET, POST')
    expect(allowed.headers['access-control-allow-headers']).toBe('content-type, accept, authorization, x-request-id')
    expect(allowed.headers['access-control-max-age']).toBe('600')
    expect(allowed.headers['access-control-allow-credentials']).toBeUndefined()

    const refused = await app.inject(preflight('https://evil.example.com'))
    expect(refused.headers['access-control-allow-origin']).toBeUndefined()

    const simple = await app.inject(post({ origin: 'https://other.example.com' }))
    expect(simple.statusCode).toBe(200)
    expect(simple.headers['access-control-allow-origin']).toBe('https://other.example.com')
    expect(simple.headers['access-control-expose-headers']).toContain('x-request-id')
  })

  it('allows no cross-origin call when unset', async () => {
    const app = await build()
    const res = await app.inject(post({ origin: 'https://dash.example.com' }))
    expect(res.headers['access-control-allow-origin']).toBeUndefined()
  })
})

describe('helmet', () => {
  it('guards the docs pages with a content security policy that admits Swagger UI and nothing from elsewhere', async () => {
    const app = await build()
    const page = await app.inject({ method: 'GET', url: '/docs' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    expect(page.headers['x-frame-options']).toBe('SAMEORIGIN')
    const csp = String(page.headers['content-security-policy'])
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("object-src 'none'")
    expect(csp).not.toContain('unsafe-inline')
    // Every script of the page comes from xent itself, as the policy requires (a real browser
    // renders it under this policy in test/browser/docs.test.ts).
    const scripts = [...page.body.matchAll(/<script([^>]*)>/g)].map((match) => match[1])
    expect(scripts.length).toBeGreaterThan(0)
    for (const attributes of scripts) expect(attributes).toMatch(/src="\/docs\/static\//)
  })

  it('sets the same headers on every answer, an API answer and an error among them', async () => {
    const app = await build()
    const page = await app.inject({ method: 'GET', url: '/docs' })
    const answer = await app.inject(post({}))
    const refused = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: '{',
      headers: { 'content-type': 'application/json' }
    })
    expect(answer.statusCode).toBe(200)
    expect(refused.statusCode).toBe(400)
    for (const res of [answer, refused]) {
      for (const name of [
        'content-security-policy',
        'x-content-type-options',
        'x-frame-options',
        'strict-transport-security'
      ]) {
        expect(res.headers[name]).toBe(page.headers[name])
      }
      expect(res.headers['x-powered-by']).toBeUndefined()
    }
  })
})

describe('RATE_LIMIT_PER_MIN', () => {
  it('answers 429 with its headers past the limit, per key, and never limits the probes', async () => {
    const app = await build({ RATE_LIMIT_PER_MIN: 2, API_KEYS: 'key-one,key-two' })
    const one = { authorization: 'Bearer key-one' }
    const first = await app.inject(post(one))
    expect(first.statusCode).toBe(200)
    expect(first.headers['x-ratelimit-limit']).toBe('2')
    expect(first.headers['x-ratelimit-remaining']).toBe('1')
    expect((await app.inject(post(one))).statusCode).toBe(200)
    const limited = await app.inject(post(one))
    expect(limited.statusCode).toBe(429)
    expect(limited.headers['retry-after']).toBeDefined()
    expect(limited.json()).toMatchObject({ statusCode: 429, code: 'XENT_RATE_LIMITED' })
    expect(limited.json().message).toMatch(/^Rate limit of 2 requests a minute reached; retry in /)
    // Another key has its own budget.
    expect((await app.inject(post({ authorization: 'Bearer key-two' }))).statusCode).toBe(200)
    for (let i = 0; i < 5; i++) expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  })

  it('counts the key authentication matched, however the header spells it', async () => {
    const app = await build({ API_KEYS: 'longsecretkey2', RATE_LIMIT_PER_MIN: 5 })
    const spellings = [
      'Bearer longsecretkey2',
      'Bearer  longsecretkey2',
      'Bearer   longsecretkey2',
      'bearer longsecretkey2',
      'BEARER longsecretkey2 ',
      'Bearer longsecretkey2\t'
    ]
    const statuses: number[] = []
    for (const authorization of [...spellings, ...spellings]) {
      statuses.push((await app.inject(post({ authorization }))).statusCode)
    }
    expect(statuses.filter((status) => status === 200)).toHaveLength(5)
    expect(statuses.slice(5).every((status) => status === 429)).toBe(true)
  })

  it('counts by IP when keys are not checked, whatever key is sent', async () => {
    const app = await build({ RATE_LIMIT_PER_MIN: 2 })
    expect((await app.inject(post({ authorization: 'Bearer made-up-1' }))).statusCode).toBe(200)
    expect((await app.inject(post({ authorization: 'Bearer made-up-2' }))).statusCode).toBe(200)
    expect((await app.inject(post({ authorization: 'Bearer made-up-3' }))).statusCode).toBe(429)
  })

  it('is off by default', async () => {
    const app = await build()
    for (let i = 0; i < 5; i++) expect((await app.inject(post())).statusCode).toBe(200)
    expect((await app.inject(post())).headers['x-ratelimit-limit']).toBeUndefined()
  })
})

describe('request ids', () => {
  /** An app whose log lines are kept. */
  async function logged() {
    const { logger, lines } = keptLogs()
    const app = await build({}, { fastify: { loggerInstance: logger } })
    return { app, lines }
  }

  it('echoes an incoming x-request-id in the answer and in every log line of the request', async () => {
    const { app, lines } = await logged()
    const res = await app.inject(post({ 'x-request-id': 'trainer-7.step-1200' }))
    expect(res.headers['x-request-id']).toBe('trainer-7.step-1200')
    const mine = lines.filter((line) => line.reqId === 'trainer-7.step-1200')
    expect(mine.map((line) => line.msg)).toEqual(['incoming request', 'request completed'])
  })

  it('makes one up when there is none, or when the incoming one is not plain', async () => {
    const { app } = await logged()
    const made = await app.inject(post())
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    const odd = await app.inject(post({ 'x-request-id': 'bad id\twith "spaces"' }))
    expect(odd.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    const error = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'lost-1' } })
    expect(error.headers['x-request-id']).toBe('lost-1')
  })

  it('never logs the authorization header', async () => {
    const { app, lines } = await logged()
    await app.inject(post({ authorization: 'Bearer very-secret-key' }))
    expect(JSON.stringify(lines)).not.toContain('very-secret-key')
  })
})
