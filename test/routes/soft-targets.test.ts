import { describe, expect, it } from 'vitest'
import { buildForFile, expectArrayClose, expectScalarClose, safetensorsFile } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'

const app = await buildForFile()

const logits = [
  [
    [1, 2, 0.5],
    [0, -1, 3]
  ]
]
const soft = [
  [
    [0.25, 0.75, 0],
    [0.5, 0, 0.5]
  ]
]
const expected = referenceCrossEntropy({
  logits: logits[0],
  targets: [],
  ignoreIndex: -100,
  labelSmoothing: 0.1,
  reduction: 'mean',
  softTargets: soft[0]
})

const post = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/cross-entropy', payload })

describe('soft_targets over HTTP', () => {
  it('answers the loss for class probabilities in JSON and safetensors alike', async () => {
    const json = await post({ logits, soft_targets: soft, label_smoothing: 0.1, outputs: ['token_losses', 'entropy'] })
    expect(json.statusCode).toBe(200)
    expectScalarClose(json.json().loss, expected.loss as number, 'loss')
    expectArrayClose(json.json().token_losses, [expected.tokenLoss], 'token_losses')
    expect(json.json().count).toBe(2)

    const binary = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?label_smoothing=0.1',
      headers: { 'content-type': 'application/octet-stream' },
      payload: safetensorsFile([
        { name: 'logits', dtype: 'F32', shape: [1, 2, 3], data: Float32Array.from(logits.flat(2)) },
        { name: 'soft_targets', dtype: 'F32', shape: [1, 2, 3], data: Float32Array.from(soft.flat(2)) }
      ])
    })
    expect(binary.statusCode).toBe(200)
    expect(binary.json().loss).toBe(json.json().loss)
  })

  it.each([
    ['both targets and soft_targets', { logits, targets: [[0, 1]], soft_targets: soft }, /exactly one of the two/],
    ['neither', { logits }, /exactly one of the two/],
    ['ignore_index beside them', { logits, soft_targets: soft, ignore_index: -1 }, /^ignore_index does not apply/],
    [
      'an output that needs an index',
      { logits, soft_targets: soft, outputs: ['accuracy'] },
      /^outputs "accuracy" needs/
    ],
    [
      'a row that does not sum to 1',
      {
        logits,
        soft_targets: [
          [
            [0.25, 0.7, 0],
            [0.5, 0, 0.5]
          ]
        ]
      },
      /^soft_targets\[0\]\[0\] sums to 0\.9(5|49)/
    ],
    [
      'a negative probability',
      {
        logits,
        soft_targets: [
          [
            [0.25, 0.75, 0],
            [1.5, 0, -0.5]
          ]
        ]
      },
      /^soft_targets\[0\]\[1\]\[0\] is 1\.5; probabilities must be in \[0, 1\]/
    ],
    ['another shape', { logits, soft_targets: [[0.5, 0.5, 0]] }, /soft_targets/]
  ])('refuses %s with a 400 naming it', async (_what, payload, message) => {
    const res = await post(payload)
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toMatch(message)
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('refuses soft_targets of another dtype or shape in safetensors', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': 'application/octet-stream' },
      payload: safetensorsFile([
        { name: 'logits', dtype: 'F32', shape: [2, 3], data: Float32Array.from(logits.flat(2)) },
        { name: 'soft_targets', dtype: 'F32', shape: [3, 2], data: Float32Array.from(soft.flat(2)) }
      ])
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toMatch(/soft_targets must be F32 of the shape of logits, \[2,3\]/)
  })
})
