import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { TSchema } from 'typebox'
import { SafetensorsBodySchema } from '../../schemas/binary.js'
import { ErrorSchema } from '../../schemas/common.js'
import type { BinaryBody } from '../codec/binary.js'
import type { MemorySource } from '../codec/json.js'
import { XentErrors } from '../errors.js'

// What the tensor routes (/v1/cross-entropy, /v1/logprobs) share: two body formats, two answer
// formats, one set of error answers.

export const SAFETENSORS = 'application/octet-stream'

/** Every coded error a tensor route may answer with. */
const ERROR_RESPONSES = {
  400: ErrorSchema,
  401: ErrorSchema,
  413: ErrorSchema,
  415: ErrorSchema,
  429: ErrorSchema,
  500: ErrorSchema,
  503: ErrorSchema
}

export interface TensorRouteDocs {
  summary: string
  description: string
  /** The options of a safetensors request. */
  querystring: TSchema
  /** The JSON body and the JSON answer. */
  request: TSchema
  response: TSchema
  /** What a 200 holds, and the tensors of a safetensors answer. */
  answer: string
  safetensorsAnswer: string
}

/** The schema of a tensor route: JSON or safetensors in, JSON or safetensors out, coded errors. */
export function tensorRouteSchema(docs: TensorRouteDocs) {
  return {
    tags: ['loss'],
    summary: docs.summary,
    description: docs.description,
    security: [{ bearerAuth: [] }],
    querystring: docs.querystring,
    body: {
      content: {
        'application/json': { schema: docs.request },
        [SAFETENSORS]: { schema: SafetensorsBodySchema }
      }
    },
    response: {
      200: {
        description: docs.answer,
        content: {
          'application/json': { schema: docs.response },
          [SAFETENSORS]: { schema: { type: 'string', format: 'binary', description: docs.safetensorsAnswer } }
        }
      },
      ...ERROR_RESPONSES
    }
  }
}

/**
 * An answer can hold millions of numbers: plain JSON.stringify is the fastest way to write them,
 * and a schema-driven serializer would have to test every union branch.
 */
export const stringifyAnswer = () => (data: unknown) => JSON.stringify(data)

/** A safetensors body, as the binary-body plugin leaves it (already in kernel memory). */
export function isBinaryBody(body: unknown): body is BinaryBody {
  return (
    typeof body === 'object' && body !== null && 'bytes' in body && (body as BinaryBody).bytes instanceof Uint8Array
  )
}

/**
 * A JSON request carries its options in its body, where they cannot be given twice: any query
 * parameter but `allowed` (options of the answer's format) is refused.
 */
export function refuseQueryForJson(query: object, allowed: readonly string[] = []): void {
  const misplaced = Object.keys(query).filter((name) => !allowed.includes(name))
  if (misplaced.length > 0) {
    throw new XentErrors.INVALID_REQUEST(
      `query parameter "${misplaced[0]}" is for safetensors requests; a JSON request carries its options in the body`
    )
  }
}

/** Kernel memory for a JSON body, scoped to its request. */
export function requestMemory(request: FastifyRequest, admit: MemorySource['admit']): MemorySource {
  return { group: () => request.kernelMemory(), admit }
}

/** Whether the caller asked for a safetensors answer. */
export function wantsSafetensors(request: FastifyRequest): boolean {
  return request.headers.accept?.includes(SAFETENSORS) === true
}

/** Sends safetensors chunks (which may view the request's kernel memory) without copying them. */
export function sendSafetensors(reply: FastifyReply, chunks: Uint8Array[]): FastifyReply {
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  reply.type(SAFETENSORS).header('content-length', length)
  return reply.send(Readable.from(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))))
}
