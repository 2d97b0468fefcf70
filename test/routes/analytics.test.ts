import { describe, expect, it } from 'vitest'
import { ANALYTICS_OUTPUTS } from '../../schemas/cross-entropy.js'
import { f16ToFloat, floatToF16 } from '../../src/kernels/half.js'
import { buildForFile, expectArrayClose, expectScalarClose, readSafetensorsAnswer, safetensorsFile } from '../helper.js'
import { referenceAnalytics, referenceCrossEntropy } from '../oracles/reference.js'

const app = await buildForFile()

// (B, T, V) = (2, 3, 5), one padding position, a tie in row [1][2].
const logits = [
  [
    [1.5, -0.25, 3, 0.5, 2],
    [0, 0, 0, 0, 0],
    [4, -2, 1, 1, 0.75]
  ],
  [
    [-1, 2.5, 2.5, 0, 1],
    [3, 3, -1, 2, 0.5],
    [0.25, 0.5, 0.75, 1, 1.25]
  ]
]
const targets = [
  [2, 4, 0],
  [1, -100, 3]
]
const flatLogits = logits.flat()
const flatTargets = targets.flat()
const expected = referenceAnalytics(flatLogits, flatTargets, -100, 3)
const nest = <T>(flat: T[]) => [flat.slice(0, 3), flat.slice(3, 6)]

describe('analytics outputs over HTTP', () => {
  it('answers every analytics output in JSON, shaped like the targets, per sequence or scalar', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits, targets, outputs: [...ANALYTICS_OUTPUTS] }
    })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(Object.keys(body).sort()).toEqual(['count', 'loss', 'perplexity', ...ANALYTICS_OUTPUTS].sort())
    expectArrayClose(body.entropy, nest(expected.entropy), 'entropy')
    expectArrayClose(body.target_logprobs, nest(expected.targetLogprobs), 'target_logprobs')
    expect(body.predictions).toEqual([
      [2, 0, 0],
      [1, 0, 4]
    ])
    expectScalarClose(body.accuracy, expected.accuracy, 'accuracy')
    expectArrayClose(body.sequence_losses, expected.sequenceLosses, 'sequence_losses')
    expectArrayClose(body.sequence_perplexities, expected.sequencePerplexities, 'sequence_perplexities')
    expectScalarClose(body.bits_per_token, expected.bitsPerToken, 'bits_per_token')
    expectScalarClose(body.z_loss, expected.zLoss, 'z_loss')
    // bits per token is the perplexity's log₂.
    expectScalarClose(body.bits_per_token, Math.log2(body.perplexity), 'bits_per_token vs perplexity')
  })

  it('treats (N, V) rows as one sequence, and answers null where nothing counts', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: {
        logits: [
          [1, 2],
          [2, 1]
        ],
        targets: [-100, -100],
        outputs: ['accuracy', 'sequence_losses', 'sequence_perplexities', 'bits_per_token', 'z_loss', 'entropy']
      }
    })
    expect(res.json()).toEqual({
      loss: null,
      perplexity: null,
      count: 0,
      accuracy: null,
      sequence_losses: [null],
      sequence_perplexities: [null],
      bits_per_token: null,
      z_loss: null,
      entropy: [0, 0]
    })
  })

  it('answers them as safetensors too, equal to the JSON answer', async () => {
    const body = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [2, 3, 5], data: Float32Array.from(flatLogits.flat()) },
      { name: 'targets', dtype: 'I64', shape: [2, 3], data: BigInt64Array.from(flatTargets, BigInt) }
    ])
    const res = await app.inject({
      method: 'POST',
      url: `/v1/cross-entropy?outputs=${ANALYTICS_OUTPUTS.join(',')}`,
      headers: { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
      payload: body
    })
    expect(res.statusCode).toBe(200)
    const answer = readSafetensorsAnswer(res.rawPayload)
    expect(answer.entropy).toMatchObject({ dtype: 'F32', shape: [2, 3] })
    expectArrayClose(answer.entropy.values, expected.entropy, 'entropy')
    expect(answer.target_logprobs).toMatchObject({ dtype: 'F32', shape: [2, 3] })
    expectArrayClose(answer.target_logprobs.values, expected.targetLogprobs, 'target_logprobs')
    expect(answer.predictions).toEqual({ dtype: 'I64', shape: [2, 3], values: [2, 0, 0, 1, 0, 4] })
    expect(answer.sequence_losses).toMatchObject({ dtype: 'F64', shape: [2] })
    expectArrayClose(answer.sequence_losses.values, expected.sequenceLosses, 'sequence_losses')
    expect(answer.sequence_perplexities).toMatchObject({ dtype: 'F64', shape: [2] })
    for (const name of ['accuracy', 'bits_per_token', 'z_loss'] as const) {
      expect(answer[name]).toMatchObject({ dtype: 'F64', shape: [] })
    }
    expectScalarClose(answer.accuracy.values[0], expected.accuracy, 'accuracy')
    expectScalarClose(answer.z_loss.values[0], expected.zLoss, 'z_loss')
  })

  it('decodes F16 logits in the kernel: the analytics of the rounded inputs', async () => {
    const halves = Uint16Array.from(flatLogits.flat().map((x) => floatToF16(x * 1.1)))
    const rounded = Array.from(halves, f16ToFloat)
    const rows = Array.from({ length: 6 }, (_, r) => rounded.slice(r * 5, (r + 1) * 5))
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?outputs=entropy,predictions,z_loss',
      headers: { 'content-type': 'application/octet-stream' },
      payload: safetensorsFile([
        { name: 'logits', dtype: 'F16', shape: [6, 5], data: halves },
        { name: 'targets', dtype: 'I32', shape: [6], data: Int32Array.from(flatTargets) }
      ])
    })
    expect(res.statusCode).toBe(200)
    const reference = referenceAnalytics(rows, flatTargets, -100, 6)
    expectArrayClose(res.json().entropy, reference.entropy, 'entropy')
    expect(res.json().predictions).toEqual(reference.predictions)
    expectScalarClose(res.json().z_loss, reference.zLoss, 'z_loss')
  })

  it('refuses an unknown output by name', async () => {
    const json = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits: [[1, 2]], targets: [0], outputs: ['entropy', 'calibration'] }
    })
    expect(json.statusCode).toBe(400)
    expect(json.json().message).toMatch(/^outputs\[1\]/)
    const query = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?outputs=entropy,calibration',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(16)
    })
    expect(query.statusCode).toBe(400)
    expect(query.json().message).toMatch(/outputs/)
  })

  it('takes z_loss in JSON and as a query parameter alike, and refuses a bad one by name', async () => {
    const json = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits, targets, z_loss: 0.01, outputs: ['token_losses', 'z_loss'] }
    })
    expect(json.statusCode).toBe(200)
    const plain = referenceCrossEntropy({
      logits: flatLogits,
      targets: flatTargets,
      ignoreIndex: -100,
      labelSmoothing: 0,
      reduction: 'mean',
      zLoss: 0.01
    })
    expectScalarClose(json.json().loss, plain.loss as number, 'loss')
    expectArrayClose(json.json().token_losses.flat(), plain.tokenLoss, 'token_losses')
    // The reported z_loss metric is the mean lse², whatever the coefficient.
    expectScalarClose(json.json().z_loss, expected.zLoss, 'z_loss')

    const binary = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?z_loss=0.01',
      headers: { 'content-type': 'application/octet-stream' },
      payload: safetensorsFile([
        { name: 'logits', dtype: 'F32', shape: [2, 3, 5], data: Float32Array.from(flatLogits.flat()) },
        { name: 'targets', dtype: 'I32', shape: [2, 3], data: Int32Array.from(flatTargets) }
      ])
    })
    expect(binary.json().loss).toBe(json.json().loss)

    for (const [z, where] of [
      [-1, 'body'],
      ['0.5', 'body']
    ] as const) {
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        payload: { logits, targets, z_loss: z }
      })
      expect(bad.statusCode).toBe(400)
      expect(bad.json().message, where).toMatch(/^z_loss /)
    }
    const badQuery = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?z_loss=-1',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(16)
    })
    expect(badQuery.statusCode).toBe(400)
    expect(badQuery.json().message).toMatch(/z_loss/)
  })

  it('takes softcap in JSON and safetensors (F16 too), on the loss, the gradient and the analytics', async () => {
    const options = { ignoreIndex: -100, labelSmoothing: 0, reduction: 'mean' as const, softcap: 2 }
    const expectedLoss = referenceCrossEntropy({ logits: flatLogits, targets: flatTargets, ...options })
    const capped = flatLogits.map((row) => row.map((x) => 2 * Math.tanh(x / 2)))
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits, targets, softcap: 2, outputs: ['gradients', 'entropy', 'predictions'] }
    })
    expect(res.statusCode).toBe(200)
    expectScalarClose(res.json().loss, expectedLoss.loss as number, 'loss')
    expectArrayClose(res.json().entropy.flat(), referenceAnalytics(capped, flatTargets, -100, 3).entropy, 'entropy')
    // The gradient flows through the tanh: each entry is the capped one's times 1 − tanh².
    const plainCapped = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits: nest(capped), targets, outputs: ['gradients'] }
    })
    const through = capped.flat().map((x) => 1 - (x / 2) ** 2)
    expectArrayClose(
      res.json().gradients.flat(2),
      plainCapped
        .json()
        .gradients.flat(2)
        .map((g: number, i: number) => g * through[i]),
      'gradients'
    )

    const halves = Uint16Array.from(flatLogits.flat().map(floatToF16))
    const binary = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?softcap=2',
      headers: { 'content-type': 'application/octet-stream' },
      payload: safetensorsFile([
        { name: 'logits', dtype: 'F16', shape: [2, 3, 5], data: halves },
        { name: 'targets', dtype: 'I32', shape: [2, 3], data: Int32Array.from(flatTargets) }
      ])
    })
    expect(binary.statusCode).toBe(200)
    // These logits are exact in F16, so the answer is the F32 one.
    expectScalarClose(binary.json().loss, res.json().loss, 'F16 loss')

    for (const bad of [0, -1, 'wide']) {
      const refused = await app.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        payload: { logits, targets, softcap: bad }
      })
      expect(refused.statusCode).toBe(400)
      expect(refused.json().message).toMatch(/^softcap /)
    }
  })
})
