import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { TensorToWrite } from '../../src/codec/safetensors.js'
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../../src/kernels/half.js'
import {
  buildForFile,
  expectAnswerMatches,
  expectArrayClose,
  expectScalarClose,
  type FixtureCase,
  fixtures,
  readSafetensorsAnswer,
  safetensorsFile
} from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'

const OCTET = 'application/octet-stream'

const file = safetensorsFile

function shapeOf(nested: unknown): number[] {
  const shape: number[] = []
  let level = nested
  while (Array.isArray(level)) {
    shape.push(level.length)
    level = level[0]
  }
  return shape
}

/** A fixture's request as a safetensors body (logits F32, targets I64 as PyTorch has them) and query. */
function fixtureAsSafetensors({ request }: FixtureCase, logitsDtype: 'F32' | 'F16' | 'BF16' = 'F32') {
  const flat = (request.logits as unknown[]).flat(2) as number[]
  const logits =
    logitsDtype === 'F32'
      ? Float32Array.from(flat)
      : Uint16Array.from(flat, logitsDtype === 'F16' ? floatToF16 : floatToBf16)
  const tensors: TensorToWrite[] = [
    { name: 'logits', dtype: logitsDtype, shape: shapeOf(request.logits), data: logits },
    {
      name: 'targets',
      dtype: 'I64',
      shape: shapeOf(request.targets),
      data: BigInt64Array.from((request.targets as unknown[]).flat() as number[], BigInt)
    }
  ]
  if (request.weight !== undefined) {
    tensors.push({
      name: 'weight',
      dtype: 'F32',
      shape: [(request.weight as number[]).length],
      data: Float32Array.from(request.weight as number[])
    })
  }
  const query = new URLSearchParams()
  for (const key of ['reduction', 'ignore_index', 'label_smoothing'] as const) {
    if (request[key] !== undefined) query.set(key, String(request[key]))
  }
  query.set('outputs', (request.outputs as string[]).join(','))
  return { body: file(tensors), query: query.toString(), logits }
}

const readAnswer = readSafetensorsAnswer

describe('POST /v1/cross-entropy with a safetensors body', async () => {
  const app = await buildForFile()
  const post = (body: Buffer | Readable, query = '', accept = 'application/json') =>
    app.inject({
      method: 'POST',
      url: `/v1/cross-entropy${query === '' ? '' : `?${query}`}`,
      headers: { 'content-type': OCTET, accept },
      payload: body
    })

  it.each(fixtures.map((fixture) => [fixture.name, fixture] as const))(
    '%s matches PyTorch, answered as JSON',
    async (_name, fixture) => {
      const { body, query } = fixtureAsSafetensors(fixture)
      const res = await post(body, query)
      expect(res.statusCode).toBe(200)
      expectAnswerMatches(res.json(), fixture.expected)
    }
  )

  it('reads tensors that lie misaligned in the body exactly as aligned ones (copied once, whatever the skew)', async () => {
    // Spaces added to the header shift every tensor by that many bytes: F32 logits, soft
    // targets and weight then lie off their 4-byte boundaries and are copied before they are read.
    const rows = 300
    const vocab = 1000
    const logits = Float32Array.from({ length: rows * vocab }, (_, i) => Math.sin(i * 0.37) * 9)
    const soft = new Float32Array(rows * vocab)
    for (let row = 0; row < rows; row++) {
      soft[row * vocab + (row % vocab)] = 0.75
      soft[row * vocab + ((row * 7) % vocab)] += 0.25
    }
    const weight = Float32Array.from({ length: vocab }, (_, i) => 0.5 + (i % 5) / 4)
    const aligned = file([
      { name: 'logits', dtype: 'F32', shape: [rows, vocab], data: logits },
      { name: 'soft_targets', dtype: 'F32', shape: [rows, vocab], data: soft },
      { name: 'weight', dtype: 'F32', shape: [vocab], data: weight }
    ])
    const skewed = (by: number) => {
      const headerLength = Number(aligned.readBigUInt64LE(0))
      const header = aligned.subarray(8, 8 + headerLength).toString('utf8') + ' '.repeat(by)
      const length = Buffer.alloc(8)
      length.writeBigUInt64LE(BigInt(header.length))
      return Buffer.concat([length, Buffer.from(header), aligned.subarray(8 + headerLength)])
    }
    const query = 'outputs=gradients,token_losses&reduction=sum'
    const expected = await post(aligned, query, OCTET)
    expect(expected.statusCode).toBe(200)
    for (const by of [1, 2, 3, 5]) {
      const res = await post(skewed(by), query, OCTET)
      expect(res.statusCode, `header longer by ${by}`).toBe(200)
      expect(Buffer.compare(res.rawPayload, expected.rawPayload), `header longer by ${by}`).toBe(0)
    }
  })

  it.each(fixtures.map((fixture) => [fixture.name, fixture] as const))(
    '%s matches PyTorch, answered as safetensors',
    async (_name, fixture) => {
      const { body, query } = fixtureAsSafetensors(fixture)
      const res = await post(body, query, OCTET)
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toBe(OCTET)
      const answer = readAnswer(res.rawPayload)
      const { expected } = fixture
      if (Array.isArray(expected.loss)) {
        expect(answer.loss).toMatchObject({ dtype: 'F32', shape: shapeOf(expected.loss) })
        expectArrayClose(answer.loss.values, (expected.loss as unknown[]).flat(), 'loss')
      } else {
        expect(answer.loss).toMatchObject({ dtype: 'F64', shape: [] })
        if (expected.loss === null) expect(answer.loss.values[0]).toBeNaN()
        else expectScalarClose(answer.loss.values[0], expected.loss, 'loss')
      }
      if (expected.perplexity === null) expect(answer.perplexity.values[0]).toBeNaN()
      else expectScalarClose(answer.perplexity.values[0], expected.perplexity, 'perplexity')
      expect(answer.count).toEqual({ dtype: 'I64', shape: [], values: [expected.count] })
      expect(answer.token_losses.shape).toEqual(shapeOf(expected.token_losses))
      expectArrayClose(answer.token_losses.values, (expected.token_losses as unknown[]).flat(), 'token_losses')
      expect(answer.gradients).toMatchObject({ dtype: 'F32', shape: shapeOf(expected.gradients) })
      expectArrayClose(answer.gradients.values, (expected.gradients as unknown[]).flat(2), 'gradients')
    }
  )

  it.each([
    ['F16', f16ToFloat],
    ['BF16', bf16ToFloat]
  ] as const)('decodes %s logits exactly: same answer as F32 logits of the rounded values', async (dtype, decode) => {
    for (const fixture of fixtures.filter((f) => f.name !== 'huge_logits_stability' || dtype === 'BF16')) {
      const half = fixtureAsSafetensors(fixture, dtype)
      const halfAnswer = (await post(half.body, half.query)).json()
      const rounded = Array.from(half.logits as Uint16Array, decode)
      const asF32 = fixtureAsSafetensors({
        ...fixture,
        request: { ...fixture.request, logits: reshapeLike(rounded, fixture.request.logits) }
      })
      const f32Answer = (await post(asF32.body, asF32.query)).json()
      expect(halfAnswer).toEqual(f32Answer)
    }
  })

  it('halves the gradient bytes with grad_dtype=BF16 or F16, rounding each F32 gradient to nearest', async () => {
    const fixture = fixtures[0]
    const { body, query } = fixtureAsSafetensors(fixture)
    const full = readAnswer((await post(body, query, OCTET)).rawPayload).gradients.values
    for (const [dtype, convert] of [
      ['BF16', floatToBf16],
      ['F16', floatToF16]
    ] as const) {
      const answer = readAnswer((await post(body, `${query}&grad_dtype=${dtype}`, OCTET)).rawPayload)
      expect(answer.gradients.dtype).toBe(dtype)
      expect(answer.gradients.values).toEqual(full.map(convert))
    }
  })

  it('answers a JSON request in safetensors when asked, with grad_dtype', async () => {
    const { request, expected } = fixtures[0]
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?grad_dtype=BF16',
      headers: { accept: OCTET },
      payload: request
    })
    expect(res.statusCode).toBe(200)
    const answer = readAnswer(res.rawPayload)
    expectScalarClose(answer.loss.values[0], expected.loss as number, 'loss')
    expect(answer.gradients.dtype).toBe('BF16')
    // BF16 keeps 8 significant bits: each gradient within half a BF16 step of PyTorch's.
    const flatExpected = (expected.gradients as unknown[]).flat(2) as number[]
    answer.gradients.values.forEach((word, i) => {
      expect(Math.abs(bf16ToFloat(word) - flatExpected[i])).toBeLessThanOrEqual(
        2 ** -8 * Math.abs(flatExpected[i]) + 1e-6
      )
    })
  })

  it.each([
    ['application/octet-stream', OCTET],
    ['application/json;q=0.5, application/octet-stream', OCTET],
    ['application/octet-stream, application/json', OCTET],
    ['application/octet-stream;q=0, application/json', 'application/json'],
    ['application/octet-streamX', 'application/json'],
    ['application/json, application/octet-stream', 'application/json'],
    ['*/*', 'application/json'],
    ['text/html', 'application/json'],
    [undefined, 'application/json']
  ])('negotiates the answer’s type from Accept %j: %s', async (accept, type) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: accept === undefined ? {} : { accept },
      payload: fixtures[0].request
    })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(new RegExp(`^${type}`))
    const loss = type === 'application/json' ? res.json().loss : readAnswer(res.rawPayload).loss.values[0]
    expectScalarClose(loss, fixtures[0].expected.loss as number, 'loss')
  })

  it('takes a body without Content-Length (streamed in chunks)', async () => {
    const { body, query } = fixtureAsSafetensors(fixtures[1])
    const stream = Readable.from([body.subarray(0, 100), body.subarray(100)])
    const res = await post(stream, query)
    expect(res.statusCode).toBe(200)
    expectScalarClose(res.json().loss, fixtures[1].expected.loss as number, 'loss')
  })

  it('allows −Inf logits (masked classes), as PyTorch does', async () => {
    const logits = [
      [0.5, Number.NEGATIVE_INFINITY, 1.5, -1],
      [Number.NEGATIVE_INFINITY, 2, Number.NEGATIVE_INFINITY, 0]
    ]
    const body = file([
      { name: 'logits', dtype: 'F32', shape: [2, 4], data: Float32Array.from(logits.flat()) },
      { name: 'targets', dtype: 'I32', shape: [2], data: Int32Array.of(2, 1) }
    ])
    const res = await post(body, 'outputs=token_losses,gradients')
    expect(res.statusCode).toBe(200)
    const reference = referenceCrossEntropy({
      logits,
      targets: [2, 1],
      ignoreIndex: -100,
      labelSmoothing: 0,
      reduction: 'mean'
    })
    expectArrayClose(res.json().token_losses, reference.tokenLoss, 'token_losses')
    expect(res.json().gradients[0][1]).toBe(0)
    expect(res.json().gradients[1][2]).toBe(0)
  })

  it('gives back every byte of kernel memory', async () => {
    const { body, query } = fixtureAsSafetensors(fixtures[0])
    await post(body, query, OCTET)
    await post(Buffer.from('not safetensors at all'), '')
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})

function reshapeLike(flat: number[], like: unknown): number[][] | number[][][] {
  const shape = shapeOf(like)
  const rows: number[][] = []
  const vocab = shape[shape.length - 1]
  for (let i = 0; i < flat.length; i += vocab) rows.push(flat.slice(i, i + vocab))
  if (shape.length === 2) return rows
  const out: number[][][] = []
  for (let b = 0; b < shape[0]; b++) out.push(rows.slice(b * shape[1], (b + 1) * shape[1]))
  return out
}

describe('malformed safetensors requests get a 400 that says what is wrong', async () => {
  const app = await buildForFile()
  const logits: TensorToWrite = { name: 'logits', dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }
  const targets: TensorToWrite = { name: 'targets', dtype: 'I32', shape: [2], data: Int32Array.of(0, 2) }
  const prefixed = (header: string, data: Uint8Array) => {
    const json = Buffer.from(header)
    const prefix = Buffer.alloc(8)
    prefix.writeBigUInt64LE(BigInt(json.length))
    return Buffer.concat([prefix, json, data])
  }
  const cases: Array<[string, Buffer, string, string]> = [
    [
      'a header length beyond the body',
      Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2]),
      'XENT_INVALID_SAFETENSORS',
      'beyond the 2 bytes after it'
    ],
    [
      'a header that does not parse',
      prefixed('{"logits": {', new Uint8Array(0)),
      'XENT_INVALID_SAFETENSORS',
      'not valid UTF-8 JSON'
    ],
    [
      'overlapping offsets',
      prefixed(
        '{"logits":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"targets":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}',
        new Uint8Array(8)
      ),
      'XENT_INVALID_SAFETENSORS',
      'overlaps'
    ],
    [
      'a gap between tensors',
      prefixed(
        '{"logits":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"targets":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}',
        new Uint8Array(12)
      ),
      'XENT_INVALID_SAFETENSORS',
      'gap of 4 bytes'
    ],
    [
      'offsets outside the body',
      prefixed('{"logits":{"dtype":"F32","shape":[1,4],"data_offsets":[0,16]}}', new Uint8Array(8)),
      'XENT_INVALID_SAFETENSORS',
      'beyond the 8 bytes of data'
    ],
    [
      'a shape whose byte size does not match its offsets',
      prefixed('{"logits":{"dtype":"F32","shape":[1,3],"data_offsets":[0,8]}}', new Uint8Array(8)),
      'XENT_INVALID_SAFETENSORS',
      'which is 12 bytes, but its data_offsets span 8'
    ],
    [
      'logits of a dtype that is not allowed',
      file([{ ...logits, dtype: 'I32', data: Int32Array.of(1, 2, 3, 4, 5, 6) }, targets]),
      'XENT_INVALID_SAFETENSORS',
      'logits are I32; send F32, F16 or BF16'
    ],
    [
      'targets of a dtype that is not allowed',
      file([logits, { ...targets, dtype: 'F32', data: Float32Array.of(0, 2) }]),
      'XENT_INVALID_SAFETENSORS',
      'targets are F32; send I32 or I64'
    ],
    ['a missing logits tensor', file([targets]), 'XENT_INVALID_SAFETENSORS', 'no tensor "logits"'],
    [
      'a missing targets tensor',
      file([logits]),
      'XENT_INVALID_SAFETENSORS',
      'must hold "targets" (class indices) or "soft_targets" (class probabilities)'
    ],
    [
      'a tensor nobody asked for',
      file([logits, targets, { name: 'labels', dtype: 'I32', shape: [2], data: Int32Array.of(0, 1) }]),
      'XENT_INVALID_SAFETENSORS',
      'tensor "labels" was not asked for'
    ],
    [
      'targets that do not match the leading dimensions',
      file([logits, { ...targets, shape: [1], data: Int32Array.of(0) }]),
      'XENT_SHAPE_MISMATCH',
      'need [2]'
    ],
    [
      'logits of rank 1',
      file([{ ...logits, shape: [6] }, targets]),
      'XENT_SHAPE_MISMATCH',
      'must be (N, V) or (B, T, V)'
    ],
    [
      'an empty dimension',
      file([{ ...logits, shape: [2, 0], data: new Float32Array(0) }, targets]),
      'XENT_EMPTY_DIMENSION',
      'dimension 1 is empty'
    ],
    [
      'a target outside the vocabulary',
      file([logits, { ...targets, data: Int32Array.of(0, 3) }]),
      'XENT_TARGET_OUT_OF_RANGE',
      'targets[1] is 3, outside [0, 3)'
    ],
    [
      'a weight of the wrong shape',
      file([logits, targets, { name: 'weight', dtype: 'F32', shape: [2], data: Float32Array.of(1, 1) }]),
      'XENT_INVALID_WEIGHT',
      'weight must be F32 of shape [3]'
    ],
    [
      'a negative weight',
      file([logits, targets, { name: 'weight', dtype: 'F32', shape: [3], data: Float32Array.of(1, -1, 1) }]),
      'XENT_INVALID_WEIGHT',
      'weight[1] is -1'
    ],
    [
      'a NaN logit',
      file([{ ...logits, data: Float32Array.of(1, 2, 3, 4, Number.NaN, 6) }, targets]),
      'XENT_NON_FINITE',
      'logits[1][1] is NaN'
    ],
    [
      'a +Inf logit',
      file([{ ...logits, data: Float32Array.of(1, 2, Number.POSITIVE_INFINITY, 4, 5, 6) }, targets]),
      'XENT_NON_FINITE',
      'logits[0][2] is Infinity'
    ],
    [
      'a row that is −Inf everywhere',
      file([{ ...logits, data: Float32Array.of(1, 2, 3, ...new Array(3).fill(Number.NEGATIVE_INFINITY)) }, targets]),
      'XENT_NON_FINITE',
      'logits[1] is −Inf everywhere'
    ],
    [
      '−Inf at the target’s own class',
      file([{ ...logits, data: Float32Array.of(Number.NEGATIVE_INFINITY, 2, 3, 4, 5, 6) }, targets]),
      'XENT_NON_FINITE',
      "logits[0] has −Inf at the target's own class"
    ]
  ]

  it.each(cases)('%s', async (_name, body, code, message) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': OCTET },
      payload: body
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ statusCode: 400, code, error: 'Bad Request' })
    expect(res.json().message).toContain(message)
  })

  it.each([
    ['reduction=avg', 'reduction is the string "avg"'],
    ['label_smoothing=2', 'label_smoothing is 2; it must be in [0, 1]'],
    ['outputs=gradients,grads', 'outputs'],
    ['ignore_idx=0', 'unknown field "ignore_idx" in the querystring'],
    ['grad_dtype=F64', 'grad_dtype is the string "F64"']
  ])('refuses the query %s', async (query, message) => {
    const res = await app.inject({
      method: 'POST',
      url: `/v1/cross-entropy?${query}`,
      headers: { 'content-type': OCTET },
      payload: file([logits, targets])
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toContain(message)
  })

  it('refuses query options on a JSON request, which carries them in its body', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?reduction=sum',
      payload: { logits: [[1, 2]], targets: [0] }
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toContain('query parameter "reduction" is for safetensors requests')
  })

  it('gives back every byte of kernel memory after all of them', () => {
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})
