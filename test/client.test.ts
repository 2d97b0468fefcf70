import { describe, expect, it } from 'vitest'
import { type TensorOptions, XentClient, XentError } from 'xent/client'
import { BinaryQuerySchema } from '../schemas/binary.js'
import { buildForFile, expectArrayClose, expectScalarClose, fixtures, safetensorsFile } from './helper.js'

// The package's own client, imported by its export name as a user would, against a live server.
const app = await buildForFile({ API_KEYS: 'client-key' })
const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })
const xent = new XentClient({ baseUrl, apiKey: 'client-key' })

describe('XentClient', () => {
  it('speaks JSON, typed from the schemas, and matches the PyTorch fixtures', async () => {
    const { request, expected } = fixtures[0]
    const answer = await xent.crossEntropy({ ...request, outputs: ['token_losses', 'gradients'] } as never)
    expectScalarClose(answer.loss as number | null, expected.loss as number | null, 'loss')
    expect(answer.count).toBe(expected.count)
    expectArrayClose(answer.gradients, expected.gradients, 'gradients')
  })

  it('speaks safetensors for typed arrays, both ways', async () => {
    const found = fixtures.find(
      ({ request }) => !Array.isArray((request.logits as number[][])[0][0]) && request.reduction !== 'none'
    )
    if (found === undefined) throw new Error('no (N, V) fixture')
    const { request, expected } = found
    const rows = (request.logits as number[][]).length
    const vocab = (request.logits as number[][])[0].length
    const answer = await xent.crossEntropyTensors({
      logits: Float32Array.from((request.logits as number[][]).flat()),
      shape: [rows, vocab],
      targets: Int32Array.from(request.targets as number[]),
      weight: request.weight === undefined ? undefined : Float32Array.from(request.weight as number[]),
      reduction: request.reduction as 'mean' | 'sum' | undefined,
      ignore_index: request.ignore_index as number | undefined,
      label_smoothing: request.label_smoothing as number | undefined,
      outputs: ['gradients']
    })
    expectScalarClose(answer.loss as number, expected.loss as number, 'loss')
    expect(answer.count).toBe(expected.count)
    expect(answer.tensors.gradients.shape).toEqual([rows, vocab])
    expectArrayClose(
      Array.from(answer.tensors.gradients.data as Float32Array),
      (expected.gradients as number[][]).flat(),
      'gradients'
    )
  })

  it('sends a safetensors file as it is and reads the answer as JSON', async () => {
    const found = fixtures.find(({ name }) => name === 'padding_ignore_index_default')
    if (found === undefined) throw new Error('no padding fixture')
    const { request, expected } = found
    const logits = request.logits as number[][][]
    const shape = [logits.length, logits[0].length, logits[0][0].length]
    const file = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape, data: Float32Array.from(logits.flat(2)) },
      {
        name: 'targets',
        dtype: 'I64',
        shape: shape.slice(0, 2),
        data: BigInt64Array.from((request.targets as number[][]).flat(), BigInt)
      }
    ])
    const answer = await xent.crossEntropySafetensors(new Blob([new Uint8Array(file)]), {
      outputs: ['token_losses', 'sequence_perplexities']
    })
    expectScalarClose(answer.loss as number, expected.loss as number, 'loss')
    expect(answer.count).toBe(expected.count)
    expectArrayClose(answer.token_losses, expected.token_losses, 'token_losses')
    expect((answer.sequence_perplexities as number[]).length).toBe(shape[0])
  })

  it('takes every option of the service, with its JSON name, and sends it as the query parameter', async () => {
    const logits = [
      [1, 2, 3, 0.5],
      [0, -1, 4, 2],
      [3, 3, 1, 0]
    ]
    const targets = [2, 0, 1]
    const options: Required<TensorOptions> = {
      reduction: 'sum',
      ignore_index: 1,
      label_smoothing: 0.1,
      z_loss: 0.01,
      softcap: 2.5,
      outputs: ['token_losses', 'gradients', 'entropy'],
      grad_dtype: 'F32'
    }
    // A new query parameter of the service must be listed here, which the types already demand.
    expect(Object.keys(options).sort()).toEqual(Object.keys(BinaryQuerySchema.properties).sort())
    const { grad_dtype: _gradDtype, ...jsonOptions } = options
    const json = await xent.crossEntropy({ logits, targets, ...jsonOptions })
    const tensors = await xent.crossEntropyTensors({
      logits: Float32Array.from(logits.flat()),
      shape: [3, 4],
      targets: Int32Array.from(targets),
      ...options
    })
    expectScalarClose(tensors.loss as number, json.loss as number, 'loss')
    expectArrayClose(Array.from(tensors.tensors.token_losses.data as Float32Array), json.token_losses, 'token_losses')
    expectArrayClose(Array.from(tensors.tensors.gradients.data as Float32Array), json.gradients?.flat(), 'gradients')
    expectArrayClose(Array.from(tensors.tensors.entropy.data as Float32Array), json.entropy, 'entropy')

    const soft = logits.map((row) => row.map((_, c) => (c === 0 ? 0.7 : 0.1)))
    const softJson = await xent.crossEntropy({ logits, soft_targets: soft, softcap: 2.5 })
    const softTensors = await xent.crossEntropyTensors({
      logits: Float32Array.from(logits.flat()),
      shape: [3, 4],
      softTargets: Float32Array.from(soft.flat()),
      softcap: 2.5
    })
    expectScalarClose(softTensors.loss as number, softJson.loss as number, 'soft-target loss')
  })

  it('calls /v1/logprobs', async () => {
    const answer = await xent.logprobs({ logits: [[0, Math.log(3)]], targets: [1], top_k: 1 })
    expectArrayClose(answer.target_logprobs, [Math.log(0.75)], 'target_logprobs')
    expect(answer.top_k?.ids).toEqual([[1]])
  })

  it('throws a coded XentError on a bad request, and on a missing key', async () => {
    const bad = xent.crossEntropy({ logits: [[1, 2]], targets: [5] })
    await expect(bad).rejects.toBeInstanceOf(XentError)
    await expect(bad).rejects.toMatchObject({ status: 400, code: 'XENT_TARGET_OUT_OF_RANGE' })
    const anonymous = new XentClient({ baseUrl })
    await expect(anonymous.crossEntropy({ logits: [[1, 2]], targets: [0] })).rejects.toMatchObject({
      status: 401,
      code: 'XENT_UNAUTHORIZED'
    })
  })
})
