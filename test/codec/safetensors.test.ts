import { describe, expect, it } from 'vitest'
import { readSafetensors, SafetensorsError, writeSafetensors } from '../../src/codec/safetensors.js'

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0))
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

/** A file from a header object and raw data, exactly as given (no validation, no padding). */
function rawFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Uint8Array {
  const json = new TextEncoder().encode(headerText)
  const prefix = new Uint8Array(8)
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.byteLength), true)
  return concat([prefix, json, data])
}

describe('safetensors writer and reader', () => {
  it('round-trips tensors and metadata, with the data 8-byte aligned', () => {
    const logits = Float32Array.of(1, 2, 3, 4, 5, 6)
    const targets = BigInt64Array.of(0n, 2n)
    const file = concat(
      writeSafetensors(
        [
          { name: 'logits', dtype: 'F32', shape: [2, 3], data: logits },
          { name: 'targets', dtype: 'I64', shape: [2], data: targets }
        ],
        { format: 'pt' }
      )
    )
    const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true))
    expect((8 + headerLength) % 8).toBe(0)
    const read = readSafetensors(file)
    expect(read.metadata).toEqual({ format: 'pt' })
    const info = read.tensors.get('logits')
    expect(info).toMatchObject({ dtype: 'F32', shape: [2, 3] })
    expect(Array.from(new Float32Array(file.buffer.slice(info?.begin, info?.end)))).toEqual([1, 2, 3, 4, 5, 6])
    const t = read.tensors.get('targets')
    expect(Array.from(new BigInt64Array(file.buffer.slice(t?.begin, t?.end)))).toEqual([0n, 2n])
  })

  it('reads a file as Python safetensors writes it (bytes fixed here)', () => {
    // safetensors.numpy.save({"x": np.array([1.5, -2], dtype=np.float32)}) → these 64 bytes.
    const header = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    const padded = header + ' '.repeat((8 - ((8 + header.length) % 8)) % 8)
    const data = new Uint8Array(Float32Array.of(1.5, -2).buffer)
    const read = readSafetensors(rawFile(null, data, padded))
    expect(read.tensors.get('x')).toMatchObject({ dtype: 'F32', shape: [2] })
  })

  const data8 = new Uint8Array(8)
  const malformed: Array<[string, Uint8Array, RegExp]> = [
    ['a body shorter than the length prefix', new Uint8Array(5), /starts with an 8-byte header length/],
    [
      'a header length beyond the body',
      (() => {
        const file = rawFile({}, data8)
        new DataView(file.buffer).setBigUint64(0, 10_000n, true)
        return file
      })(),
      /header length is 10000 bytes, beyond/
    ],
    ['a header that is not JSON', rawFile(null, data8, '{"logits": '), /not valid UTF-8 JSON/],
    ['a header that is an array', rawFile([], new Uint8Array(0)), /must be a JSON object/],
    [
      'an unknown dtype',
      rawFile({ x: { dtype: 'F128', shape: [1], data_offsets: [0, 8] } }, data8),
      /dtype "F128", which safetensors does not define/
    ],
    [
      'a shape whose size does not match its offsets',
      rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data8),
      /F32 \[3\], which is 12 bytes, but its data_offsets span 8/
    ],
    [
      'offsets outside the body',
      rawFile({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data8),
      /beyond the 8 bytes of data/
    ],
    [
      'offsets that run backwards',
      rawFile({ x: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, data8),
      /run backwards/
    ],
    [
      'overlapping tensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }
        },
        data8
      ),
      /overlaps/
    ],
    [
      'a gap between tensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'U8', shape: [2], data_offsets: [6, 8] }
        },
        data8
      ),
      /gap of 2 bytes before tensor "b"/
    ],
    [
      'bytes after the last tensor',
      rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, data8),
      /4 bytes after the last tensor belong to no tensor/
    ],
    [
      'a negative dimension',
      rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8),
      /shape \[-2\]/
    ],
    [
      'metadata that is not strings',
      rawFile({ __metadata__: { n: 1 }, a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] } }, data8),
      /"__metadata__"."n" must be a string/
    ]
  ]

  it.each(malformed)('refuses %s', (_name, file, message) => {
    expect(() => readSafetensors(file)).toThrow(SafetensorsError)
    expect(() => readSafetensors(file)).toThrow(message)
  })
})
