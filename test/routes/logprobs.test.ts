import { describe, expect, it } from 'vitest'
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../../src/kernels/half.js'
import { buildForFile, expectArrayClose, readSafetensorsAnswer, safetensorsFile } from '../helper.js'
import { referenceLogprobs } from '../oracles/reference.js'

const app = await buildForFile()

// (B, T, V) = (2, 2, 6), with a tie and a padding target.
const logits = [
  [
    [1.5, -0.25, 3, 0.5, 2, 3],
    [0, 0.5, -1, 4, 1, 2]
  ],
  [
    [-1, 2.5, 2, 0, 1, -3],
    [3, 1, -1, 2, 0.5, 0]
  ]
]
const targets = [
  [2, 3],
  [1, -100]
]
const flat = logits.flat()
const options = { softcap: 4, temperature: 0.8, topK: 3, ignoreIndex: -100 }
const expected = referenceLogprobs(flat, targets.flat(), options)
const pairs = <T>(rows: T[]) => [rows.slice(0, 2), rows.slice(2, 4)]

const json = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/logprobs', payload })
const binary = (tensors: Parameters<typeof safetensorsFile>[0], query: string, accept = 'application/json') =>
  app.inject({
    method: 'POST',
    url: `/v1/logprobs?${query}`,
    headers: { 'content-type': 'application/octet-stream', accept },
    payload: safetensorsFile(tensors)
  })

describe('POST /v1/logprobs', () => {
  it('answers target log-probs, the top k and the entropy in JSON, after softcap and temperature', async () => {
    const res = await json({ logits, targets, top_k: 3, softcap: 4, temperature: 0.8, outputs: ['entropy'] })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expectArrayClose(body.target_logprobs, pairs(expected.targetLogprobs), 'target_logprobs')
    expect(body.top_k.ids).toEqual(pairs(expected.topIds))
    expect(body.top_k.ids[0][0]).toEqual([2, 5, 4]) // the tie at 3 goes to the lower id first
    expectArrayClose(body.top_k.logprobs, pairs(expected.topLogprobs), 'top_k.logprobs')
    expectArrayClose(body.entropy, pairs(expected.entropy), 'entropy')
    expect(body.target_logprobs[1][1]).toBe(0) // padding
  })

  it('answers only what was asked: no targets, no target_logprobs', async () => {
    const res = await json({ logits: flat, top_k: 1 })
    expect(Object.keys(res.json())).toEqual(['top_k'])
    expect(res.json().top_k.ids).toEqual([[2], [3], [1], [0]])
  })

  it('takes safetensors, with its answer as safetensors, equal to the JSON one', async () => {
    const tensors = [
      { name: 'logits', dtype: 'F32' as const, shape: [2, 2, 6], data: Float32Array.from(flat.flat()) },
      { name: 'targets', dtype: 'I64' as const, shape: [2, 2], data: BigInt64Array.from(targets.flat(), BigInt) }
    ]
    const res = await binary(tensors, 'top_k=3&softcap=4&temperature=0.8&outputs=entropy', 'application/octet-stream')
    expect(res.statusCode).toBe(200)
    const answer = readSafetensorsAnswer(res.rawPayload)
    expect(answer.target_logprobs).toMatchObject({ dtype: 'F32', shape: [2, 2] })
    expectArrayClose(answer.target_logprobs.values, expected.targetLogprobs, 'target_logprobs')
    expect(answer.top_k_ids).toEqual({ dtype: 'I64', shape: [2, 2, 3], values: expected.topIds.flat() })
    expect(answer.top_k_logprobs).toMatchObject({ dtype: 'F32', shape: [2, 2, 3] })
    expectArrayClose(answer.top_k_logprobs.values, expected.topLogprobs.flat(), 'top_k_logprobs')
    expectArrayClose(answer.entropy.values, expected.entropy, 'entropy')
  })

  it.each([
    ['F16', floatToF16, f16ToFloat],
    ['BF16', floatToBf16, bf16ToFloat]
  ] as const)('keeps %s logits accurate: the float64 answer for the rounded inputs', async (dtype, encode, decode) => {
    // Large logits, where a low-precision log-sum-exp would lose the small differences.
    const big = flat.map((row) => row.map((x) => 200 + x * 3))
    const words = Uint16Array.from(big.flat().map(encode))
    const rounded = Array.from({ length: 4 }, (_, r) => Array.from(words.slice(r * 6, (r + 1) * 6), decode))
    const res = await binary(
      [
        { name: 'logits', dtype, shape: [4, 6], data: words },
        { name: 'targets', dtype: 'I32', shape: [4], data: Int32Array.from(targets.flat()) }
      ],
      'top_k=2&outputs=entropy'
    )
    expect(res.statusCode).toBe(200)
    const reference = referenceLogprobs(rounded, targets.flat(), { ...options, softcap: 0, temperature: 1, topK: 2 })
    expectArrayClose(res.json().target_logprobs, reference.targetLogprobs, 'target_logprobs')
    expect(res.json().top_k.ids).toEqual(reference.topIds)
    expectArrayClose(res.json().entropy, reference.entropy, 'entropy')
  })

  it('allows −Inf (masked) logits in safetensors, and answers null for a masked top-k entry', async () => {
    const masked = Float32Array.from([1, Number.NEGATIVE_INFINITY, 2, Number.NEGATIVE_INFINITY])
    const res = await binary([{ name: 'logits', dtype: 'F32', shape: [1, 4], data: masked }], 'top_k=3')
    expect(res.statusCode).toBe(200)
    expect(res.json().top_k.ids).toEqual([[2, 0, 1]])
    expect(res.json().top_k.logprobs[0][2]).toBeNull()
  })

  it.each([
    ['top_k above V', { logits: [[1, 2]], top_k: 3 }, 'top_k is 3, more than the 2 classes of logits'],
    ['top_k of 0', { logits: [[1, 2]], top_k: 0 }, /^top_k /],
    ['top_k above 64', { logits: [Array(70).fill(0)], top_k: 65 }, /^top_k /],
    ['a softcap of 0', { logits: [[1, 2]], targets: [0], softcap: 0 }, /^softcap /],
    ['a temperature of 0', { logits: [[1, 2]], targets: [0], temperature: 0 }, /^temperature /],
    ['nothing asked', { logits: [[1, 2]] }, 'nothing to compute: send targets, top_k, or outputs with entropy'],
    ['a target outside V', { logits: [[1, 2]], targets: [2] }, /^targets\[0\] is 2/],
    ['ragged rows', { logits: [[1, 2], [1]], targets: [0, 0] }, /^logits\[1\] has length 1/],
    ['an unknown output', { logits: [[1, 2]], targets: [0], outputs: ['top_p'] }, /^outputs\[0\]/]
  ])('refuses %s with a 400 naming it', async (_what, payload, message) => {
    const res = await json(payload)
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toMatch(message)
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('refuses bad safetensors and bad query values by name', async () => {
    const logitsOnly = [
      { name: 'logits', dtype: 'F32' as const, shape: [1, 2], data: Float32Array.from([1, Number.NaN]) }
    ]
    const nan = await binary(logitsOnly, 'top_k=1')
    expect(nan.statusCode).toBe(400)
    expect(nan.json().message).toBe('logits[0][1] is NaN; logits must be finite or −Inf (masked)')
    const ok = [{ name: 'logits', dtype: 'F32' as const, shape: [1, 2], data: Float32Array.from([1, 2]) }]
    for (const [query, message] of [
      ['top_k=99', /^top_k is 99/],
      ['temperature=0', /^temperature is 0/],
      ['softcap=0', /^softcap is 0/],
      ['', /^nothing to compute/]
    ] as const) {
      const res = await binary(ok, query)
      expect(res.statusCode, query).toBe(400)
      expect(res.json().message).toMatch(message)
    }
    const extra = await binary(
      [...ok, { name: 'weight', dtype: 'F32' as const, shape: [2], data: Float32Array.from([1, 1]) }],
      'top_k=1'
    )
    expect(extra.json().message).toMatch(/tensor "weight" was not asked for/)
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})
