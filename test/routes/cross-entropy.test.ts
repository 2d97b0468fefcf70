import { describe, expect, it } from 'vitest'
import { buildForFile, expectAnswerMatches, expectScalarClose, fixtures } from '../helper.js'

// Every PyTorch fixture (test/fixtures/cross_entropy_torch.json), through the HTTP API.
describe('POST /v1/cross-entropy matches PyTorch', async () => {
  const app = await buildForFile()

  it.each(fixtures.map((fixture) => [fixture.name, fixture] as const))('%s', async (_name, fixture) => {
    const res = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: fixture.request })
    expect(res.statusCode).toBe(200)
    expectAnswerMatches(res.json(), fixture.expected)
  })

  it('returns only token_losses by default, and nothing large when outputs is empty', async () => {
    const { request } = fixtures[0]
    const plain = { logits: request.logits, targets: request.targets }
    const byDefault = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: plain })
    expect(Object.keys(byDefault.json()).sort()).toEqual(['count', 'loss', 'perplexity', 'token_losses'])

    const bare = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: { ...plain, outputs: [] } })
    expect(Object.keys(bare.json()).sort()).toEqual(['count', 'loss', 'perplexity'])
  })

  it('accepts a content type with a charset', async () => {
    const { request } = fixtures[1]
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: JSON.stringify({ logits: request.logits, targets: request.targets })
    })
    expect(res.statusCode).toBe(200)
    expectScalarClose(res.json().loss, fixtures[1].expected.loss as number, 'loss')
  })

  it('splits a large batch across the workers and still matches the single-task answer', async () => {
    // 64 × 4096 logits is 4 tasks' worth, so both workers take part.
    const rows = 64
    const vocab = 4096
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => Math.sin(r * 7.1 + c))
    )
    const targets = Array.from({ length: rows }, (_, r) => (r * 131) % vocab)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits, targets, reduction: 'sum', outputs: ['token_losses'] }
    })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    // Independent check in float64 with the textbook formula.
    let expectedSum = 0
    for (let r = 0; r < rows; r++) {
      const row = logits[r].map(Math.fround)
      const max = Math.max(...row)
      const lse = max + Math.log(row.reduce((acc, x) => acc + Math.exp(x - max), 0))
      expectedSum += lse - row[targets[r]]
    }
    expectScalarClose(body.loss, expectedSum, 'loss')
  })
})
