import { describe, expect, it } from 'vitest'
import { buildForFile } from '../helper.js'

// A field given twice is ambiguous (JSON.parse keeps the last): refused, naming it.

const app = await buildForFile()

const postText = (url: string, text: string) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: text })

/** A safetensors body with the header text as given (tensors of 4 bytes each, in order). */
function fileWithHeader(header: string, dataBytes: number): Buffer {
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8)
  const file = Buffer.alloc(8 + padded.length + dataBytes)
  file.writeBigUInt64LE(BigInt(padded.length), 0)
  file.write(padded, 8, 'utf8')
  return file
}

describe('fields given twice', () => {
  it.each([
    ['targets', '{"logits": [[1, 2]], "targets": [0], "targets": [1]}'],
    ['logits', '{"logits": [[1, 2]], "targets": [0], "logits": [[5, 6]]}'],
    ['targets, escaped', '{"logits": [[1, 2]], "t\\u0061rgets": [0], "targets": [1]}'],
    ['reduction, spaced', '{"logits": [[1, 2]], "targets": [0], "reduction" : "sum",\n "reduction":"mean"}']
  ])('a JSON body naming %s twice gets 400', async (what, text) => {
    const name = what.split(',')[0]
    const res = await postText('/v1/cross-entropy', text)
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({
      code: 'XENT_INVALID_REQUEST',
      message: `field "${name}" is given twice; send each field once`
    })
  })

  it('on /v1/logprobs too, and a string that only looks like a key is no key', async () => {
    const twice = await postText('/v1/logprobs', '{"logits": [[1, 2]], "top_k": 1, "top_k": 2}')
    expect(twice.statusCode).toBe(400)
    expect(twice.json().message).toBe('field "top_k" is given twice; send each field once')
    const once = await postText(
      '/v1/cross-entropy',
      '{"logits": [[1, 2]], "targets": [0], "outputs": ["token_losses"]}'
    )
    expect(once.statusCode).toBe(200)
  })

  it('a safetensors header naming a tensor twice, or a field of one twice, gets 400', async () => {
    const send = (header: string, bytes: number) =>
      app.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        headers: { 'content-type': 'application/octet-stream' },
        payload: fileWithHeader(header, bytes)
      })
    const tensorTwice = await send(
      '{"logits":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"targets":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},"logits":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}',
      8
    )
    expect(tensorTwice.statusCode).toBe(400)
    expect(tensorTwice.json()).toMatchObject({
      code: 'XENT_INVALID_SAFETENSORS',
      message: 'The body is not a valid safetensors request: the header names tensor "logits" twice'
    })
    const fieldTwice = await send(
      '{"logits":{"dtype":"F32","dtype":"F16","shape":[1,1],"data_offsets":[0,4]},"targets":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}',
      8
    )
    expect(fieldTwice.statusCode).toBe(400)
    expect(fieldTwice.json().message).toBe(
      'The body is not a valid safetensors request: the header gives "dtype" twice in "logits"'
    )
  })

  it('a query parameter given twice gets 400 naming it', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?z_loss=0.1&z_loss=1e308',
      headers: { 'content-type': 'application/octet-stream' },
      payload: fileWithHeader('{}', 0)
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({
      code: 'XENT_INVALID_REQUEST',
      message: 'query parameter "z_loss" is given 2 times; send it once'
    })
  })
})
