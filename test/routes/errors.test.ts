import { describe, expect, it, onTestFinished } from 'vitest'
import { buildApp } from '../../src/app.js'
import { largestRequestBytes } from '../../src/limits.js'
import { build, buildForFile, TEST_CONFIG } from '../helper.js'

const good = {
  logits: [
    [
      [0.1, 0.2, 0.3],
      [0.3, 0.2, 0.1]
    ],
    [
      [1, 2, 3],
      [3, 2, 1]
    ]
  ],
  targets: [
    [0, 1],
    [2, -100]
  ]
}

interface BadCase {
  name: string
  body: unknown
  code: string
  message: string
}

// Each bad body, its stable code, and the exact place the message must name.
const badBodies: BadCase[] = [
  {
    name: 'ragged rows inside a (B, T, V) batch',
    body: {
      ...good,
      logits: [
        good.logits[0],
        [
          [1, 2, 3],
          [1, 2]
        ]
      ]
    },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'logits[1][1] has length 2, expected 3'
  },
  {
    name: 'ragged sequences inside a (B, T, V) batch',
    body: { ...good, logits: [good.logits[0], [[1, 2, 3]]] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'logits[1] has length 1, expected 2'
  },
  {
    name: 'ragged rows in (N, V) logits',
    body: { logits: [[1, 2], [3]], targets: [0, 0] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'logits[1] has length 1, expected 2'
  },
  {
    name: 'targets flat where logits are (B, T, V)',
    body: { ...good, targets: [0, 1, 2, 0] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'targets must be shaped (B, T) = (2, 2)'
  },
  {
    name: 'targets nested where logits are (N, V)',
    body: { logits: [[1, 2]], targets: [[0]] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'targets must be a flat array of 1 integers'
  },
  {
    name: 'targets with the wrong batch size',
    body: { ...good, targets: [[0, 1]] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'targets has length 1, expected B = 2'
  },
  {
    name: 'targets with the wrong sequence length',
    body: { ...good, targets: [[0, 1], [2]] },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'targets[1] has length 1, expected T = 2'
  },
  {
    name: 'targets with the wrong N',
    body: {
      logits: [
        [1, 2],
        [3, 4]
      ],
      targets: [0]
    },
    code: 'XENT_SHAPE_MISMATCH',
    message: 'targets has length 1, expected N = 2'
  },
  {
    name: 'logits one level deep',
    body: { logits: [1, 2, 3], targets: [0] },
    code: 'XENT_INVALID_REQUEST',
    message: 'logits[0] must be an array'
  },
  {
    name: 'logits four levels deep',
    body: { logits: [[[[1, 2]]]], targets: [[0]] },
    code: 'XENT_INVALID_REQUEST',
    message: 'logits[0][0][0] must be a number, got an array'
  },
  {
    name: 'logits that are not an array',
    body: { logits: 'big', targets: [0] },
    code: 'XENT_INVALID_REQUEST',
    message: 'logits must be an array, got the string "big"'
  },
  { name: 'empty logits', body: { logits: [], targets: [] }, code: 'XENT_EMPTY_DIMENSION', message: 'logits is empty' },
  {
    name: 'an empty vocabulary',
    body: { logits: [[]], targets: [0] },
    code: 'XENT_EMPTY_DIMENSION',
    message: 'logits[0] is empty'
  },
  {
    name: 'an empty sequence',
    body: { logits: [[[]]], targets: [[0]] },
    code: 'XENT_EMPTY_DIMENSION',
    message: 'logits[0][0] is empty'
  },
  {
    name: 'empty targets',
    body: { logits: [[1, 2]], targets: [] },
    code: 'XENT_EMPTY_DIMENSION',
    message: 'targets is empty'
  },
  {
    name: 'a string among the logits',
    body: {
      ...good,
      logits: [
        good.logits[0],
        [
          [1, 'x', 3],
          [3, 2, 1]
        ]
      ]
    },
    code: 'XENT_INVALID_REQUEST',
    message: 'logits[1][0][1] must be a number, got the string "x"'
  },
  {
    name: 'null among the logits',
    body: { logits: [[1, null]], targets: [0] },
    code: 'XENT_INVALID_REQUEST',
    message: 'logits[0][1] must be a number, got null'
  },
  {
    name: 'a logit that overflows to Infinity in JSON',
    body: '{"logits": [[1, 1e999]], "targets": [0]}',
    code: 'XENT_NON_FINITE',
    message: 'logits[0][1] is Infinity'
  },
  {
    name: 'a logit beyond float32 range',
    body: { logits: [[[1, 2]], [[3, -1e39]]], targets: [[0], [1]] },
    code: 'XENT_NON_FINITE',
    message: 'logits[1][0][1] is -1e+39, which is not a finite float32'
  },
  {
    name: 'a fractional target',
    body: {
      ...good,
      targets: [
        [0, 1.5],
        [2, 0]
      ]
    },
    code: 'XENT_INVALID_REQUEST',
    message: 'targets[0][1] must be an integer, got 1.5'
  },
  {
    name: 'a target given as a string',
    body: { logits: [[1, 2]], targets: ['1'] },
    code: 'XENT_INVALID_REQUEST',
    message: 'targets[0] must be an integer, got the string "1"'
  },
  {
    name: 'a target past the vocabulary',
    body: {
      ...good,
      targets: [
        [0, 1],
        [2, 3]
      ]
    },
    code: 'XENT_TARGET_OUT_OF_RANGE',
    message: 'targets[1][1] is 3, outside [0, 3)'
  },
  {
    name: 'a negative target that is not ignore_index',
    body: { logits: [[1, 2]], targets: [-1] },
    code: 'XENT_TARGET_OUT_OF_RANGE',
    message: 'targets[0] is -1, outside [0, 2) and not ignore_index (-100)'
  },
  {
    name: 'padding marked with the default when ignore_index was changed',
    body: { logits: [[1, 2]], targets: [-100], ignore_index: 0 },
    code: 'XENT_TARGET_OUT_OF_RANGE',
    message: 'targets[0] is -100, outside [0, 2) and not ignore_index (0)'
  },
  {
    name: 'weight of the wrong length',
    body: { ...good, weight: [1, 1] },
    code: 'XENT_INVALID_WEIGHT',
    message: 'weight has length 2, expected V = 3'
  },
  {
    name: 'a negative weight',
    body: { ...good, weight: [1, -0.5, 1] },
    code: 'XENT_INVALID_WEIGHT',
    message: 'weight[1] is -0.5; it must be ≥ 0'
  },
  {
    name: 'a weight that overflows to Infinity in JSON',
    body: '{"logits": [[1, 2]], "targets": [0], "weight": [1, 1e999]}',
    code: 'XENT_INVALID_WEIGHT',
    message: 'weight[1] is Infinity'
  },
  {
    name: 'an empty weight',
    body: { ...good, weight: [] },
    code: 'XENT_EMPTY_DIMENSION',
    message: 'weight is empty'
  },
  {
    name: 'label_smoothing above 1',
    body: { ...good, label_smoothing: 1.5 },
    code: 'XENT_INVALID_REQUEST',
    message: 'label_smoothing is 1.5; it must be ≤ 1'
  },
  {
    name: 'label_smoothing below 0',
    body: { ...good, label_smoothing: -0.1 },
    code: 'XENT_INVALID_REQUEST',
    message: 'label_smoothing is -0.1; it must be ≥ 0'
  },
  {
    name: 'label_smoothing as a string (no coercion)',
    body: { ...good, label_smoothing: '0.1' },
    code: 'XENT_INVALID_REQUEST',
    message: 'label_smoothing must be a number, got the string "0.1"'
  },
  {
    name: 'an unknown reduction',
    body: { ...good, reduction: 'avg' },
    code: 'XENT_INVALID_REQUEST',
    message: 'reduction is the string "avg"; it must be one of "mean", "sum", "none"'
  },
  {
    name: 'an unknown output name',
    body: { ...good, outputs: ['token_losses', 'grads'] },
    code: 'XENT_INVALID_REQUEST',
    message: 'outputs[1] is the string "grads"; it must be one of "token_losses", "gradients"'
  },
  {
    name: 'a repeated output name',
    body: { ...good, outputs: ['gradients', 'gradients'] },
    code: 'XENT_INVALID_REQUEST',
    message: 'outputs lists the same value twice'
  },
  {
    name: 'ignore_index as a float',
    body: { ...good, ignore_index: 0.5 },
    code: 'XENT_INVALID_REQUEST',
    message: 'ignore_index must be an integer, got 0.5'
  },
  {
    name: 'a misspelt field',
    body: { ...good, ignore_idx: 0 },
    code: 'XENT_UNKNOWN_FIELD',
    message: 'unknown field "ignore_idx" in the body'
  },
  {
    name: 'a missing field',
    body: { logits: good.logits },
    code: 'XENT_INVALID_REQUEST',
    message: 'send targets (class indices) or soft_targets (class probabilities): exactly one of the two'
  },
  {
    name: 'a body that is an array',
    body: [good],
    code: 'XENT_INVALID_REQUEST',
    message: 'the body must be an object'
  },
  {
    name: 'malformed JSON',
    body: '{"logits": [[1, 2], "targets": [0]}',
    code: 'XENT_MALFORMED_JSON',
    message: 'The body is not valid JSON: '
  },
  { name: 'an empty body', body: '', code: 'XENT_MALFORMED_JSON', message: 'the body is empty' },
  {
    name: 'a __proto__ key (prototype poisoning)',
    body: '{"logits": [[1, 2]], "targets": [0], "__proto__": {"polluted": true}}',
    code: 'XENT_MALFORMED_JSON',
    message: 'forbidden prototype property'
  },
  {
    name: 'a __proto__ key spelt with unicode escapes',
    body: '{"logits": [[1, 2]], "targets": [0], "\\u005f_proto__": {"polluted": true}}',
    code: 'XENT_MALFORMED_JSON',
    message: 'forbidden prototype property'
  },
  {
    name: 'a constructor.prototype key (prototype poisoning)',
    body: '{"logits": [[1, 2]], "targets": [0], "constructor": {"prototype": {"polluted": true}}}',
    code: 'XENT_MALFORMED_JSON',
    message: 'forbidden prototype property'
  }
]

describe('bad requests get a 4xx that names the place, and the service keeps serving', async () => {
  const app = await buildForFile()

  it.each(badBodies.map((bad) => [bad.name, bad] as const))('%s', async (_name, bad) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': 'application/json' },
      payload: typeof bad.body === 'string' ? bad.body : JSON.stringify(bad.body)
    })
    expect(res.statusCode).toBe(400)
    const body = res.json()
    expect(body).toEqual({ statusCode: 400, code: bad.code, error: 'Bad Request', message: expect.any(String) })
    expect(body.message).toContain(bad.message)
  })

  it('answers other content types with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        headers: { 'content-type': type },
        payload: JSON.stringify(good)
      })
      expect(res.statusCode).toBe(415)
      expect(res.json()).toMatchObject({
        statusCode: 415,
        code: 'XENT_UNSUPPORTED_MEDIA_TYPE',
        error: 'Unsupported Media Type'
      })
      expect(res.json().message).toContain(type)
    }
  })

  it('answers unknown routes with a coded 404', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/cross-entropies' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({
      statusCode: 404,
      code: 'XENT_NOT_FOUND',
      error: 'Not Found',
      message: 'No route POST /v1/cross-entropies'
    })
  })

  it('still serves a good request after all of the above', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: good })
    expect(res.statusCode).toBe(200)
    expect(res.json().count).toBe(3)
  })

  it('gives back every byte of kernel memory, after good and bad requests alike', async () => {
    for (const bad of badBodies) {
      await app.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        headers: { 'content-type': 'application/json' },
        payload: typeof bad.body === 'string' ? bad.body : JSON.stringify(bad.body)
      })
    }
    await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: { ...good, outputs: ['gradients'] } })
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})

describe('body limit', () => {
  it('answers a body over BODY_LIMIT_MB with 413, naming the limit', async () => {
    const app = await build({ BODY_LIMIT_MB: 0.001 }) // 1048 bytes
    const logits = [Array.from({ length: 400 }, (_, i) => i / 400)]
    const res = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: { logits, targets: [0] } })
    expect(res.statusCode).toBe(413)
    expect(res.json()).toEqual({
      statusCode: 413,
      code: 'XENT_BODY_TOO_LARGE',
      error: 'Payload Too Large',
      message: 'The body is larger than the limit of 1048 bytes (BODY_LIMIT_MB)'
    })
    const small = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      payload: { logits: [[1, 2]], targets: [1] }
    })
    expect(small.statusCode).toBe(200)
  })
})

describe('unexpected failures', () => {
  it('answer 500 with the request id, never the original message or a stack', async () => {
    const app = await buildApp(TEST_CONFIG)
    onTestFinished(() => app.close())
    app.get('/boom', async () => {
      throw new Error('secret detail at /srv/xent/src/kernel.ts:42')
    })
    await app.ready()
    const res = await app.inject({ method: 'GET', url: '/boom' })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toEqual({
      statusCode: 500,
      code: 'XENT_INTERNAL',
      error: 'Internal Server Error',
      message: expect.stringMatching(/^Internal error; the request id is [\w-]+$/)
    })
    expect(res.body).not.toContain('secret')
    expect(res.body).not.toContain('kernel.ts')
  })
})

describe('kernel memory', () => {
  const request = (rows: number, vocab: number) => ({
    logits: Array.from({ length: rows }, () => new Array(vocab).fill(0.5)),
    targets: new Array(rows).fill(0),
    outputs: ['gradients']
  })

  it('refuses a request larger than KERNEL_MEMORY_MB with 413, naming both sizes', async () => {
    // The least memory that serves MAX_ELEMENTS holds every well-formed request; misaligned
    // tensors are copied once to align them, and two such copies of the largest tensors do not fit.
    const elements = 2 ** 21
    const kernelMemoryMb = Math.ceil(largestRequestBytes(elements) / 2 ** 20) + 1
    const app = await build({ POOL_THREADS: 1, MAX_ELEMENTS: elements, KERNEL_MEMORY_MB: kernelMemoryMb })
    const body = misalignedSafetensors(elements)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?outputs=gradients,entropy',
      headers: { 'content-type': 'application/octet-stream' },
      payload: body
    })
    expect(res.statusCode).toBe(413)
    expect(res.json()).toMatchObject({ code: 'XENT_TOO_LARGE', error: 'Payload Too Large' })
    expect(res.json().message).toMatch(
      new RegExp(`needs \\d+ bytes of kernel memory; KERNEL_MEMORY_MB allows ${app.engine.arena.capacity}$`)
    )
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('answers 503 with Retry-After while other requests hold the memory, and 200 once it is free', async () => {
    const app = await build({ KERNEL_MEMORY_MB: 16, MAX_ELEMENTS: 200_000 })
    const holder = app.engine.arena.group()
    holder.bytes(15 * 1024 * 1024)
    const busy = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: request(4, 40_000) })
    expect(busy.statusCode).toBe(503)
    expect(busy.headers['retry-after']).toBe('1')
    expect(busy.json()).toMatchObject({ code: 'XENT_MEMORY_BUSY', error: 'Service Unavailable' })
    holder.release()
    const free = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: request(4, 40_000) })
    expect(free.statusCode).toBe(200)
  })
})

/**
 * (elements, 1) F32 logits and soft targets with a header whose length leaves both misaligned, so
 * that each is copied once to align it.
 */
function misalignedSafetensors(elements: number): Buffer {
  const bytes = elements * 4
  let header = JSON.stringify({
    logits: { dtype: 'F32', shape: [elements, 1], data_offsets: [0, bytes] },
    soft_targets: { dtype: 'F32', shape: [elements, 1], data_offsets: [bytes, 2 * bytes] }
  })
  while (header.length % 4 !== 1) header += ' '
  const file = Buffer.alloc(8 + header.length + 2 * bytes)
  file.writeBigUInt64LE(BigInt(header.length), 0)
  file.write(header, 8, 'utf8')
  const soft = 8 + header.length + bytes
  for (let i = 0; i < elements; i++) file.writeFloatLE(1, soft + i * 4)
  return file
}
