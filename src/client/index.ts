/**
 * A typed client for xent, from the same TypeBox schemas the service validates with:
 *
 *   import { XentClient } from 'xent/client'
 *   const xent = new XentClient({ baseUrl: 'http://localhost:8080' })
 *   const { loss, perplexity } = await xent.crossEntropy({ logits, targets })
 *
 * Nested arrays go as JSON; typed arrays (`crossEntropyTensors`) go as safetensors both ways, so
 * millions of logits and gradients never pass through JSON.
 */
import type { BinaryQuery } from '../../schemas/binary.js'
import type { CrossEntropyRequest, CrossEntropyResponse, OutputName, Reduction } from '../../schemas/cross-entropy.js'
import type { LogprobsRequest, LogprobsResponse } from '../../schemas/logprobs.js'
import { readSafetensors, type TensorToWrite, writeSafetensors } from '../codec/safetensors.js'

export type { CrossEntropyRequest, CrossEntropyResponse, LogprobsRequest, LogprobsResponse, OutputName, Reduction }

export interface XentClientOptions {
  /** Where xent listens, e.g. http://localhost:8080. */
  baseUrl: string
  /** Sent as `Authorization: Bearer <apiKey>` when the server sets API_KEYS. */
  apiKey?: string
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch
}

/** A coded error answer from xent: `code` is stable (XENT_…), `message` names the field and place. */
export class XentError extends Error {
  override name = 'XentError'
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null
  ) {
    super(message)
  }
}

/** The tensors of a request, which a safetensors request carries in its body. */
type TensorFields = 'logits' | 'targets' | 'soft_targets' | 'weight'

/**
 * Options of a safetensors request, sent as query parameters: every field of the JSON request
 * beside its tensors, with the same names, types and defaults (from its schema), and grad_dtype.
 */
export type TensorOptions = Omit<CrossEntropyRequest, TensorFields> & Pick<BinaryQuery, 'grad_dtype'>

// Compiled, not run: the options and the service's query parameters are the same set of names,
// so an option added to the service is an option here (and the type check fails until it is).
type SameKeys<A, B> = [Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>] extends [never] ? true : false
const optionsAreTheQuery: SameKeys<Required<TensorOptions>, Required<BinaryQuery>> = true
void optionsAreTheQuery

export interface TensorRequest extends TensorOptions {
  /** Logits, row-major, F32 (a Float32Array) or raw F16/BF16 words (a Uint16Array with logitsDtype). */
  logits: Float32Array | Uint16Array
  logitsDtype?: 'F32' | 'F16' | 'BF16'
  /** (N, V) or (B, T, V). */
  shape: number[]
  /** One class index per position, shaped like shape without V; or send softTargets. */
  targets?: Int32Array | BigInt64Array
  /** Class probabilities shaped like the logits, instead of targets. */
  softTargets?: Float32Array
  weight?: Float32Array
}

export interface TensorResponse {
  /** The loss (NaN where JSON would say null); for reduction none, per position. */
  loss: number | Float32Array
  perplexity: number
  count: number
  /** Every other tensor of the answer (token_losses, gradients as F32 or raw 16-bit words, …). */
  tensors: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }>
}

const TYPED: Record<string, (buffer: ArrayBuffer) => ArrayBufferView> = {
  F64: (buffer) => new Float64Array(buffer),
  F32: (buffer) => new Float32Array(buffer),
  F16: (buffer) => new Uint16Array(buffer),
  BF16: (buffer) => new Uint16Array(buffer),
  I64: (buffer) => new BigInt64Array(buffer),
  I32: (buffer) => new Int32Array(buffer)
}

export class XentClient {
  readonly #baseUrl: string
  readonly #headers: Record<string, string>
  readonly #fetch: typeof fetch

  constructor(options: XentClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.#headers = options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }
    // A browser's fetch must be called on the window, never as a method of another object.
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init))
  }

  /** POST /v1/cross-entropy with a JSON body: the loss, perplexity, count and the outputs asked for. */
  async crossEntropy(request: CrossEntropyRequest): Promise<CrossEntropyResponse> {
    return (await this.#json('/v1/cross-entropy', request)) as CrossEntropyResponse
  }

  /** POST /v1/logprobs with a JSON body. */
  async logprobs(request: LogprobsRequest): Promise<LogprobsResponse> {
    return (await this.#json('/v1/logprobs', request)) as LogprobsResponse
  }

  /** POST /v1/cross-entropy with typed arrays, as safetensors both ways. */
  async crossEntropyTensors(request: TensorRequest): Promise<TensorResponse> {
    const { logits, logitsDtype, shape, targets, softTargets, weight, ...options } = request
    const tensors: TensorToWrite[] = [{ name: 'logits', dtype: logitsDtype ?? 'F32', shape, data: logits }]
    if (targets !== undefined) {
      const dtype = targets instanceof BigInt64Array ? 'I64' : 'I32'
      tensors.push({ name: 'targets', dtype, shape: shape.slice(0, -1), data: targets })
    }
    if (softTargets !== undefined) tensors.push({ name: 'soft_targets', dtype: 'F32', shape, data: softTargets })
    if (weight !== undefined) tensors.push({ name: 'weight', dtype: 'F32', shape: [shape.at(-1) ?? 0], data: weight })
    const body = new Blob(writeSafetensors(tensors) as BlobPart[])
    const response = await this.#post(`/v1/cross-entropy?${queryOf(options)}`, body, SAFETENSORS)
    const bytes = new Uint8Array(await response.arrayBuffer())
    const answer: TensorResponse['tensors'] = {}
    for (const [name, info] of readSafetensors(bytes).tensors) {
      const copy = bytes.slice(info.begin, info.end).buffer
      answer[name] = { dtype: info.dtype, shape: info.shape, data: TYPED[info.dtype](copy) }
    }
    const { loss, perplexity, count, ...rest } = answer
    return {
      loss: loss.shape.length === 0 ? (loss.data as Float64Array)[0] : (loss.data as Float32Array),
      perplexity: (perplexity.data as Float64Array)[0],
      count: Number((count.data as BigInt64Array)[0]),
      tensors: rest
    }
  }

  /**
   * POST /v1/cross-entropy with a safetensors file as it is (logits, targets, optionally weight),
   * answered in JSON: for a file saved from PyTorch, or dropped into a browser.
   */
  async crossEntropySafetensors(file: Blob | Uint8Array, options: TensorOptions = {}): Promise<CrossEntropyResponse> {
    const body = file instanceof Blob ? file : new Blob([file as BlobPart])
    const response = await this.#post(`/v1/cross-entropy?${queryOf(options)}`, body, 'application/json')
    return (await response.json()) as CrossEntropyResponse
  }

  async #json(path: string, request: object): Promise<unknown> {
    const response = await this.#fetch(`${this.#baseUrl}${path}`, {
      method: 'POST',
      headers: { ...this.#headers, 'content-type': 'application/json' },
      body: JSON.stringify(request)
    })
    if (!response.ok) throw await errorOf(response)
    return response.json()
  }

  async #post(path: string, body: Blob, accept: string): Promise<Response> {
    const response = await this.#fetch(`${this.#baseUrl}${path}`, {
      method: 'POST',
      headers: { ...this.#headers, 'content-type': SAFETENSORS, accept },
      body
    })
    if (!response.ok) throw await errorOf(response)
    return response
  }
}

const SAFETENSORS = 'application/octet-stream'

/** Every option as its query parameter (the same name); lists comma-separated. */
function queryOf(options: TensorOptions): URLSearchParams {
  const query = new URLSearchParams()
  for (const name of Object.keys(options) as Array<keyof TensorOptions>) {
    const value = options[name]
    if (value !== undefined) query.set(name, Array.isArray(value) ? value.join(',') : String(value))
  }
  return query
}

async function errorOf(response: Response): Promise<XentError> {
  const requestId = response.headers.get('x-request-id')
  try {
    const body = (await response.json()) as { code?: string; message?: string }
    return new XentError(response.status, body.code ?? 'XENT_UNKNOWN', body.message ?? response.statusText, requestId)
  } catch {
    return new XentError(response.status, 'XENT_UNKNOWN', response.statusText, requestId)
  }
}
