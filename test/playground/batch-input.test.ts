import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BatchInputError, exampleBatch, parseBatchJson, readBatchFile } from '../../src/playground/batch-input.js'
import { logitsFor } from '../../src/playground/curve.js'
import { build, safetensorsFile } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'

const IGNORE = -100

describe('a pasted batch', () => {
  it('reads (B, T, V) and (N, V) shapes and asks for the outputs the heatmap draws', () => {
    const { request, shape } = parseBatchJson(
      JSON.stringify({
        logits: [
          [
            [1, 2, 3],
            [0, 0, 0]
          ],
          [
            [1, 1, 1],
            [3, 2, 1]
          ]
        ],
        targets: [
          [0, 1],
          [2, -1]
        ],
        ignore_index: -1,
        outputs: ['entropy']
      }),
      IGNORE
    )
    expect(shape).toEqual({ sequences: 2, positions: 2, vocabulary: 3, targets: [0, 1, 2, -1], ignoreIndex: -1 })
    expect(request.reduction).toBe('mean')
    expect(request.ignore_index).toBe(-1)
    expect(request.outputs).toEqual(['entropy', 'token_losses', 'sequence_perplexities'])

    const flat = parseBatchJson(
      JSON.stringify({
        logits: [
          [1, 2],
          [2, 1],
          [0, 0]
        ],
        targets: [0, 1, IGNORE],
        reduction: 'sum'
      }),
      IGNORE
    )
    expect(flat.shape).toMatchObject({ sequences: 1, positions: 3, vocabulary: 2, ignoreIndex: IGNORE })
    expect(flat.request.reduction).toBe('mean')
  })

  it('sends soft targets on, asking only for token losses (they have no per-sequence perplexity)', async () => {
    const { request, shape } = parseBatchJson(
      JSON.stringify({
        logits: [
          [
            [1, 2],
            [3, 1]
          ]
        ],
        soft_targets: [
          [
            [0.5, 0.5],
            [1, 0]
          ]
        ]
      }),
      IGNORE
    )
    expect(shape).toMatchObject({ sequences: 1, positions: 2, targets: null })
    expect(request.outputs).toEqual(['token_losses'])
    expect(request.ignore_index).toBeUndefined()
    const app = await build()
    const answer = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: request })
    expect(answer.statusCode).toBe(200)
    expect(answer.json().token_losses).toHaveLength(1)
  })

  it('takes the page’s ignore_index unless the request carries its own', () => {
    const { request, shape } = parseBatchJson(JSON.stringify({ logits: [[1, 2]], targets: [0] }), 7)
    expect(request.ignore_index).toBe(7)
    expect(shape.ignoreIndex).toBe(7)
  })

  it('says what is wrong with text that cannot be a request', () => {
    const cases: [string, RegExp][] = [
      ['{"logits": [[1, 2]], "targets": [', /not JSON/],
      ['[1, 2]', /an object with logits and targets/],
      ['{"targets": [0]}', /logits must be an array shaped \(B, T, V\) or \(N, V\)/],
      ['{"logits": [[1, 2]]}', /needs targets/],
      ['{"logits": [[[1, 2], [3, 4]]], "targets": [[0]]}', /targets must be shaped \(1, 2\).*1 values/]
    ]
    for (const [text, message] of cases) {
      expect(() => parseBatchJson(text, IGNORE)).toThrow(BatchInputError)
      expect(() => parseBatchJson(text, IGNORE)).toThrow(message)
    }
  })

  it('its example is a request the service takes, with padding in two sequences', async () => {
    const { request, shape } = parseBatchJson(exampleBatch(), IGNORE)
    expect(shape).toMatchObject({ sequences: 4, positions: 12, vocabulary: 16 })
    expect(shape.targets?.filter((target) => target === IGNORE)).toHaveLength(8)
    const app = await build()
    const answer = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: request })
    expect(answer.statusCode).toBe(200)
    const { token_losses, sequence_perplexities, count } = answer.json()
    expect(count).toBe(48 - 8)
    expect(token_losses).toHaveLength(4)
    // From a model sure and right to one that learned nothing: perplexity climbs toward V.
    expect(sequence_perplexities[0]).toBeLessThan(sequence_perplexities[3])
    expect(sequence_perplexities[3]).toBeGreaterThan(8)
  })
})

describe('a dropped safetensors file', () => {
  const logits = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 10)

  it('gives its shape and targets, I64 or I32', () => {
    for (const [dtype, data] of [
      ['I64', BigInt64Array.from([0, 1, -100, 3, 2, 1], BigInt)],
      ['I32', Int32Array.from([0, 1, -100, 3, 2, 1])]
    ] as const) {
      const file = safetensorsFile([
        { name: 'logits', dtype: 'F32', shape: [2, 3, 4], data: logits },
        { name: 'targets', dtype, shape: [2, 3], data }
      ])
      expect(readBatchFile(new Uint8Array(file), IGNORE)).toEqual({
        sequences: 2,
        positions: 3,
        vocabulary: 4,
        targets: [0, 1, -100, 3, 2, 1],
        ignoreIndex: IGNORE
      })
    }
  })

  it('names what is missing or misshapen', () => {
    const targets = { name: 'targets', dtype: 'I64' as const, shape: [2, 3], data: new BigInt64Array(6) }
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([1, 2, 3]), /not safetensors/],
      [new Uint8Array(safetensorsFile([targets])), /needs tensors named logits and targets; it has targets/],
      [
        new Uint8Array(safetensorsFile([{ name: 'logits', dtype: 'F32', shape: [24], data: logits }, targets])),
        /logits must be shaped \(B, T, V\) or \(N, V\); it is \(24\)/
      ],
      [
        new Uint8Array(
          safetensorsFile([
            { name: 'logits', dtype: 'F32', shape: [2, 3, 4], data: logits },
            { name: 'targets', dtype: 'I64', shape: [3], data: new BigInt64Array(3) }
          ])
        ),
        /targets must be shaped like logits without V, \(2, 3\); it is \(3\)/
      ],
      [
        new Uint8Array(
          safetensorsFile([
            { name: 'logits', dtype: 'F32', shape: [2, 3, 4], data: logits },
            { name: 'targets', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) }
          ])
        ),
        /targets must be I64 or I32; it is F32/
      ]
    ]
    for (const [bytes, message] of cases) expect(() => readBatchFile(bytes, IGNORE)).toThrow(message)
  })
})

describe('the −log p curve', () => {
  it('gives the target exactly probability p: the loss of its logits is −log p', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 1, noNaN: true }), (p) => {
        const { loss } = referenceCrossEntropy({
          logits: [logitsFor(p)],
          targets: [0],
          ignoreIndex: IGNORE,
          labelSmoothing: 0,
          reduction: 'mean'
        })
        expect(loss as number).toBeCloseTo(-Math.log(p), 12)
      })
    )
  })
})
