import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { SafetensorsBodySchema } from '../../schemas/binary.js'
import { ErrorSchema } from '../../schemas/common.js'
import {
  type LogprobsQuery,
  LogprobsQuerySchema,
  type LogprobsRequest,
  LogprobsRequestSchema,
  LogprobsResponseSchema
} from '../../schemas/logprobs.js'
import type { LogprobsBatch } from '../batch.js'
import type { BinaryBody } from '../codec/binary.js'
import { decodeLogprobsJson, encodeLogprobsJson } from '../codec/json.js'
import { decodeLogprobsSafetensors, encodeLogprobsSafetensors } from '../codec/logprobs-binary.js'
import { XentErrors } from '../errors.js'

const description = [
  'The selective log-softmax that RL fine-tuning (PPO, GRPO) runs on every batch: log p[target] for given token ids, the top k tokens of every position, and the entropy, from raw logits shaped (B, T, V) or (N, V).',
  'softcap (c·tanh(x/c), as Gemma 2) is applied first, because it belongs to the model; then temperature divides the logits. Sums are in float64, so F16 and BF16 logits lose nothing beyond their own rounding.',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits` and optionally `targets`, with the options as query parameters. The answer is JSON, or safetensors (target_logprobs, top_k_ids, top_k_logprobs, entropy) when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

const SAFETENSORS = 'application/octet-stream'

function isBinaryBody(body: unknown): body is BinaryBody {
  return (
    typeof body === 'object' && body !== null && 'bytes' in body && (body as BinaryBody).bytes instanceof Uint8Array
  )
}

const logprobsRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/logprobs',
    {
      schema: {
        tags: ['loss'],
        summary: 'Token log-probabilities, top-k and entropy, for RL fine-tuning',
        description,
        security: [{ bearerAuth: [] }],
        querystring: LogprobsQuerySchema,
        body: {
          content: {
            'application/json': { schema: LogprobsRequestSchema },
            [SAFETENSORS]: { schema: SafetensorsBodySchema }
          }
        },
        response: {
          200: {
            description: 'The log-probabilities asked for.',
            content: {
              'application/json': { schema: LogprobsResponseSchema },
              [SAFETENSORS]: {
                schema: {
                  type: 'string',
                  format: 'binary',
                  description:
                    'safetensors: target_logprobs (F32, like targets), top_k_ids (I64) and top_k_logprobs (F32), both (…, k), entropy (F32).'
                }
              }
            }
          },
          400: ErrorSchema,
          401: ErrorSchema,
          413: ErrorSchema,
          415: ErrorSchema,
          429: ErrorSchema,
          500: ErrorSchema,
          503: ErrorSchema
        }
      },
      onRequest: app.admitRequest,
      serializerCompiler: () => (data) => JSON.stringify(data)
    },
    async (request, reply) => {
      const query = request.query as LogprobsQuery
      let batch: LogprobsBatch
      if (isBinaryBody(request.body)) {
        batch = decodeLogprobsSafetensors(request.body, query, app.admitBatch)
      } else {
        const misplaced = Object.keys(query)
        if (misplaced.length > 0) {
          throw new XentErrors.INVALID_REQUEST(
            `query parameter "${misplaced[0]}" is for safetensors requests; a JSON request carries its options in the body`
          )
        }
        batch = decodeLogprobsJson(request.body as LogprobsRequest, {
          group: () => request.kernelMemory(),
          admit: app.admitBatch
        })
      }
      // The batch's memory belongs to the request: it is released once the answer has been sent.
      const result = await app.logprobs(batch, { signal: request.deadline, requestId: request.id })
      app.metrics.elements.inc(batch.rows * batch.vocab)
      if (request.headers.accept?.includes(SAFETENSORS) === true) {
        const chunks = encodeLogprobsSafetensors(batch, result)
        const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
        reply.type(SAFETENSORS).header('content-length', length)
        return reply.send(
          Readable.from(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
        )
      }
      return encodeLogprobsJson(batch, result)
    }
  )
}

export default logprobsRoutes
