/**
 * safetensors, strictly: an 8-byte little-endian header length N, N bytes of JSON header
 * ({name: {dtype, shape, data_offsets: [begin, end]}, optional "__metadata__": {string: string}}),
 * then the tensors' raw little-endian bytes. Offsets are relative to the end of the header; the
 * tensors must tile the data section exactly, with no overlap and no gap.
 *
 * The reader never copies tensor bytes: it returns offsets into the body, which lives in the
 * kernel's shared memory. The writer builds the header and lists the tensors' bytes as chunks.
 */

import { duplicateKey } from './duplicate-keys.js'

export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8
} as const
export type Dtype = keyof typeof DTYPE_SIZES

export interface TensorInfo {
  dtype: Dtype
  shape: number[]
  /** Absolute byte offsets of the tensor's data within the body. */
  begin: number
  end: number
}

export interface SafetensorsFile {
  tensors: Map<string, TensorInfo>
  metadata: Record<string, string>
}

/** Larger headers are refused before parsing (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000

export class SafetensorsError extends Error {
  override name = 'SafetensorsError'
}

function fail(message: string): never {
  throw new SafetensorsError(message)
}

export function readSafetensors(body: Uint8Array): SafetensorsFile {
  if (body.byteLength < 8)
    fail(`the body has ${body.byteLength} bytes; a safetensors file starts with an 8-byte header length`)
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(body.byteLength - 8)) {
    fail(`the header length is ${headerLength} bytes, beyond the ${body.byteLength - 8} bytes after it`)
  }
  const length = Number(headerLength)
  if (length > MAX_HEADER_BYTES) fail(`the header length is ${length} bytes; at most ${MAX_HEADER_BYTES} are accepted`)

  let header: unknown
  let headerText = ''
  try {
    // TextDecoder refuses views of shared memory, so the (small) header is copied out first.
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(body.slice(8, 8 + length))
    header = JSON.parse(headerText)
  } catch (error) {
    fail(`the header is not valid UTF-8 JSON: ${(error as Error).message}`)
  }
  const twice = duplicateKey(headerText)
  if (twice !== undefined) {
    fail(
      twice.length === 1
        ? `the header names tensor "${twice[0]}" twice`
        : `the header gives "${twice.at(-1)}" twice in "${twice.slice(0, -1).join('.')}"`
    )
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header must be a JSON object')

  const dataStart = 8 + length
  const dataLength = body.byteLength - dataStart
  const tensors = new Map<string, TensorInfo>()
  let metadata: Record<string, string> = {}
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = readMetadata(entry)
      continue
    }
    const info = readTensorInfo(name, entry, dataLength)
    tensors.set(name, { ...info, begin: dataStart + info.begin, end: dataStart + info.end })
  }

  // The tensors must tile [0, dataLength) exactly.
  const spans = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)
  let expected = dataStart
  for (const [name, info] of spans) {
    if (info.begin < expected)
      fail(`tensor "${name}" overlaps the tensor before it (data_offsets start at ${info.begin - dataStart})`)
    if (info.begin > expected) fail(`there is a gap of ${info.begin - expected} bytes before tensor "${name}"`)
    expected = info.end
  }
  if (expected !== body.byteLength)
    fail(`${body.byteLength - expected} bytes after the last tensor belong to no tensor`)
  return { tensors, metadata }
}

function readMetadata(entry: unknown): Record<string, string> {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    fail('"__metadata__" must be an object of strings')
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') fail(`"__metadata__"."${key}" must be a string`)
  }
  return entry as Record<string, string>
}

function readTensorInfo(name: string, entry: unknown, dataLength: number): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(`tensor "${name}" must be an object`)
  const { dtype, shape, data_offsets: offsets, ...rest } = entry as Record<string, unknown>
  const extra = Object.keys(rest)
  if (extra.length > 0) fail(`tensor "${name}" has unknown field "${extra[0]}"`)
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    fail(`tensor "${name}" has dtype ${JSON.stringify(dtype)}, which safetensors does not define`)
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`tensor "${name}" has shape ${JSON.stringify(shape)}; a shape is a list of non-negative integers`)
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}; they must be [begin, end]`)
  }
  const [begin, end] = offsets as [number, number]
  if (begin > end) fail(`tensor "${name}" has data_offsets [${begin}, ${end}] that run backwards`)
  if (end > dataLength)
    fail(`tensor "${name}" has data_offsets [${begin}, ${end}] beyond the ${dataLength} bytes of data`)
  const bytes = (shape as number[]).reduce((product, d) => product * d, 1) * DTYPE_SIZES[dtype as Dtype]
  if (bytes !== end - begin) {
    fail(
      `tensor "${name}" is ${dtype} ${JSON.stringify(shape)}, which is ${bytes} bytes, but its data_offsets span ${end - begin}`
    )
  }
  return { dtype: dtype as Dtype, shape: shape as number[], begin, end }
}

export interface TensorToWrite {
  name: string
  dtype: Dtype
  shape: number[]
  data: ArrayBufferView
}

/**
 * A safetensors file as chunks: the length, the header (padded with spaces so the data starts
 * 8-byte aligned, as the reference writer does), then each tensor's bytes without a copy.
 */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {}
  if (metadata !== undefined) header.__metadata__ = metadata
  let offset = 0
  for (const tensor of tensors) {
    const expected = tensor.shape.reduce((product, d) => product * d, 1) * DTYPE_SIZES[tensor.dtype]
    if (expected !== tensor.data.byteLength) {
      throw new Error(`tensor "${tensor.name}" is ${tensor.data.byteLength} bytes, not the ${expected} its shape needs`)
    }
    header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + expected] }
    offset += expected
  }
  let json = JSON.stringify(header)
  const encoder = new TextEncoder()
  const padding = (8 - ((8 + encoder.encode(json).byteLength) % 8)) % 8
  json += ' '.repeat(padding)
  const headerBytes = encoder.encode(json)
  const prefix = new Uint8Array(8)
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true)
  return [
    prefix,
    headerBytes,
    ...tensors.map((tensor) => new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength))
  ]
}
