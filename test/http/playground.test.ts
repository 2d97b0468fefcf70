import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import pino from 'pino'
import { describe, expect, it, onTestFinished } from 'vitest'
import playground from '../../src/http/playground.js'
import { build, buildForFile } from '../helper.js'

// The built page in dist/public/ (npm test builds first); the browser test plays with it.
const app = await buildForFile()

describe('GET / (the playground)', () => {
  it('serves the page, its script and styles from xent itself, under the content security policy', async () => {
    const page = await app.inject({ method: 'GET', url: '/' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    for (const hook of [
      'data-testid="loss-value"',
      'data-testid="heatmap"',
      'src="/playground.js"',
      'href="/playground.css"'
    ]) {
      expect(page.body).toContain(hook)
    }
    // Nothing from another origin, and nothing inline that the policy would refuse.
    expect(page.body).not.toMatch(/(src|href)="(https?:)?\/\//)
    expect(page.body).not.toMatch(/<script>|<style|style="/)
    const csp = page.headers['content-security-policy'] as string
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("script-src 'self'")
    // Plain HTTP inside a cluster must keep working: no upgrade of the page's own requests.
    expect(csp).not.toContain('upgrade-insecure-requests')

    const script = await app.inject({ method: 'GET', url: '/playground.js' })
    expect(script.statusCode).toBe(200)
    expect(script.headers['content-type']).toMatch(/^(application|text)\/javascript/)
    const styles = await app.inject({ method: 'GET', url: '/playground.css' })
    expect(styles.statusCode).toBe(200)
    expect(styles.headers['content-type']).toMatch(/^text\/css/)
    // Revalidated by ETag, so a new build shows at once.
    expect(script.headers.etag).toBeDefined()
    const again = await app.inject({
      method: 'GET',
      url: '/playground.js',
      headers: { 'if-none-match': script.headers.etag as string }
    })
    expect(again.statusCode).toBe(304)
  })

  it('leaves every other path to the API: a coded JSON 404, and nothing new in the OpenAPI document', async () => {
    const missing = await app.inject({ method: 'GET', url: '/nothing-here.js' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toMatchObject({ statusCode: 404 })
    const traversal = await app.inject({ method: 'GET', url: '/../package.json' })
    expect(traversal.statusCode).toBe(404)
    const paths = Object.keys((await app.inject({ method: 'GET', url: '/openapi.json' })).json().paths)
    expect(paths).not.toContain('/')
    expect(paths.filter((path) => path.startsWith('/playground'))).toEqual([])
  })

  it('is open under API_KEYS (it holds no data) while /v1/* still needs the key', async () => {
    const guarded = await build({ API_KEYS: 'page-key' })
    expect((await guarded.inject({ method: 'GET', url: '/' })).statusCode).toBe(200)
    expect((await guarded.inject({ method: 'GET', url: '/playground.js' })).statusCode).toBe(200)
    const call = await guarded.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits: [[1, 2]], targets: [0] }
    })
    expect(call.statusCode).toBe(401)
  })

  it('warns, and serves nothing, when the page has not been built', async () => {
    let logged = ''
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk, _encoding, done) {
          logged += chunk.toString()
          done()
        }
      })
    )
    const bare = Fastify({ loggerInstance: logger })
    onTestFinished(() => bare.close())
    await bare.register(playground, { root: mkdtempSync(join(tmpdir(), 'xent-no-playground-')) })
    expect((await bare.inject({ method: 'GET', url: '/' })).statusCode).toBe(404)
    expect(logged).toContain('npm run build:playground')
  })
})
