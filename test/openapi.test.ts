import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { OPENAPI_FILE, renderOpenApi } from '../src/openapi.js'
import { build } from './helper.js'

describe('OpenAPI', () => {
  it('the committed openapi.yaml is what the route schemas generate (run `npm run openapi`)', async () => {
    const committed = await readFile(OPENAPI_FILE, 'utf8')
    expect(committed).toBe(await renderOpenApi())
  })

  it('is served at /openapi.json, and Swagger UI at /docs', async () => {
    const app = await build()
    const spec = await app.inject({ method: 'GET', url: '/openapi.json' })
    expect(spec.statusCode).toBe(200)
    const document = spec.json()
    expect(document.openapi).toBe('3.1.0')
    expect(Object.keys(document.paths).sort()).toEqual([
      '/healthz',
      '/metrics',
      '/readyz',
      '/v1/cross-entropy',
      '/v1/logprobs'
    ])
    const post = document.paths['/v1/cross-entropy'].post
    expect(Object.keys(post.requestBody.content).sort()).toEqual(['application/json', 'application/octet-stream'])
    expect(post.requestBody.content['application/json'].schema.additionalProperties).toBe(false)
    expect(Object.keys(post.responses).sort()).toEqual(['200', '400', '401', '413', '415', '429', '500', '503'])
    expect(Object.keys(post.responses['200'].content).sort()).toEqual(['application/json', 'application/octet-stream'])
    expect(post.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'grad_dtype',
      'ignore_index',
      'label_smoothing',
      'outputs',
      'reduction',
      'softcap',
      'z_loss'
    ])

    const docs = await app.inject({ method: 'GET', url: '/docs/' })
    expect(docs.statusCode).toBe(200)
    expect(docs.headers['content-type']).toContain('text/html')
    expect(docs.body).toContain('swagger-ui')
  })
})
