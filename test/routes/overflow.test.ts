import { describe, expect, it } from 'vitest'
import { buildForFile, readSafetensorsAnswer, safetensorsFile } from '../helper.js'

// A 200 never holds null where the contract promises numbers: options that would overflow, and
// smoothing over masked classes, are refused with a 400 that says why and where.

const app = await buildForFile()
const OCTET = 'application/octet-stream'

const postJson = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/cross-entropy', payload })
const postFile = (query: string, tensors: Parameters<typeof safetensorsFile>[0], accept = 'application/json') =>
  app.inject({
    method: 'POST',
    url: `/v1/cross-entropy?${query}`,
    headers: { 'content-type': OCTET, accept },
    payload: safetensorsFile(tensors)
  })

const masked = [
  {
    name: 'logits',
    dtype: 'F32' as const,
    shape: [2, 3],
    data: Float32Array.of(2, 0.5, Number.NEGATIVE_INFINITY, 1, 2, 3)
  },
  { name: 'targets', dtype: 'I32' as const, shape: [2], data: Int32Array.of(0, 2) }
]

describe('answers that would not be finite', () => {
  it('refuses a z_loss whose loss overflows a double (z_loss 1e308), naming it and the row', async () => {
    const res = await postJson({ logits: [[1, 2, 3]], targets: [0], z_loss: 1e308, outputs: ['gradients'] })
    expect(res.statusCode).toBe(400)
    expect(res.json().code).toBe('XENT_INVALID_REQUEST')
    expect(res.json().message).toMatch(/^z_loss 1e\+308 is too large for logits\[0\]: its logsumexp is 3\.40760/)
    const binary = await postFile('z_loss=1e308', [
      { name: 'logits', dtype: 'F32', shape: [1, 3], data: Float32Array.of(1, 2, 3) },
      { name: 'targets', dtype: 'I32', shape: [1], data: Int32Array.of(0) }
    ])
    expect(binary.statusCode).toBe(400)
    expect(binary.json().message).toMatch(/^z_loss 1e\+308 is too large for logits\[0\]/)
  })

  it('refuses a z_loss whose gradient overflows float32 while its loss is finite', async () => {
    const res = await postJson({
      logits: [
        [0, 0],
        [1000, 999]
      ],
      targets: [0, 1],
      z_loss: 1e36,
      reduction: 'sum',
      outputs: ['gradients']
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toMatch(/^z_loss 1e\+36 is too large for logits\[1\]: its logsumexp is 1000\.31/)
    // Without gradients the same loss (1e42) is a number, and answered.
    const lossOnly = await postJson({ logits: [[1000, 999]], targets: [1], z_loss: 1e36 })
    expect(lossOnly.statusCode).toBe(200)
    const expected = 1e36 * 1000.3132616875182 ** 2
    expect(Math.abs(lossOnly.json().loss - expected) / expected).toBeLessThan(1e-6)
  })

  it('refuses label smoothing over a masked (−Inf) logit, naming it', async () => {
    const res = await postFile('label_smoothing=0.1', masked)
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ code: 'XENT_NON_FINITE' })
    expect(res.json().message).toBe(
      'logits[0][2] is −Inf (a masked class), and label_smoothing 0.1 gives every class a share of the target, so the loss would be infinite; send label_smoothing 0 with masked logits'
    )
    // In safetensors too, and the same request without smoothing is answered.
    expect((await postFile('label_smoothing=0.1', masked, OCTET)).statusCode).toBe(400)
    const plain = await postFile('outputs=token_losses', masked, OCTET)
    expect(plain.statusCode).toBe(200)
    expect(readSafetensorsAnswer(plain.rawPayload).token_losses.values.every(Number.isFinite)).toBe(true)
  })

  it('refuses soft targets that put probability on a masked logit', async () => {
    const res = await postFile('', [
      masked[0],
      { name: 'soft_targets', dtype: 'F32', shape: [2, 3], data: Float32Array.of(0.5, 0.25, 0.25, 0, 0, 1) }
    ])
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toBe(
      'logits[0][2] is −Inf (a masked class), and soft_targets[0][2] gives it probability 0.25, so the loss would be infinite'
    )
    const zeroThere = await postFile('', [
      masked[0],
      { name: 'soft_targets', dtype: 'F32', shape: [2, 3], data: Float32Array.of(0.5, 0.5, 0, 0, 0, 1) }
    ])
    expect(zeroThere.statusCode).toBe(200)
  })

  it('refuses a softcap or temperature outside [1e-30, 1e30], where float32 breaks down (nulls before)', async () => {
    for (const softcap of [1e-45, 1e-31, 1e31, 3.5e38]) {
      const res = await postJson({ logits: [[1, 2, 3]], targets: [0], softcap, outputs: ['gradients'] })
      expect(res.statusCode).toBe(400)
      expect(res.json().message).toBe(`softcap is ${softcap}; it must be between 1e-30 and 1e+30`)
    }
    const logprobs = (payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/v1/logprobs', payload: { logits: [[1, 2, 3]], top_k: 2, ...payload } })
    expect((await logprobs({ temperature: 1e-45 })).json().message).toBe(
      'temperature is 1e-45; it must be between 1e-30 and 1e+30'
    )
    expect((await logprobs({ softcap: 1e300 })).json().message).toBe(
      'softcap is 1e+300; it must be between 1e-30 and 1e+30'
    )
    const query = await app.inject({
      method: 'POST',
      url: '/v1/logprobs?top_k=1&temperature=1e-31',
      headers: { 'content-type': OCTET },
      payload: safetensorsFile([{ name: 'logits', dtype: 'F32', shape: [1, 3], data: Float32Array.of(1, 2, 3) }])
    })
    expect(query.statusCode).toBe(400)
    expect(query.json().message).toBe('temperature is 1e-31; it must be between 1e-30 and 1e+30')
    // The bounds themselves are taken, with numbers where numbers are promised.
    const edge = await postJson({ logits: [[1, 2, 3]], targets: [0], softcap: 1e-30, outputs: ['gradients'] })
    expect(edge.statusCode).toBe(200)
    expect((edge.json().gradients as number[][]).flat().every(Number.isFinite)).toBe(true)
    expect((await logprobs({ temperature: 1e30, softcap: 1e30 })).statusCode).toBe(200)
  })
})
