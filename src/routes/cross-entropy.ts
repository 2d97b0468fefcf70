import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { type BinaryQuery, BinaryQuerySchema, SafetensorsBodySchema } from '../../schemas/binary.js'
import { ErrorSchema } from '../../schemas/common.js'
import {
  type CrossEntropyRequest,
  CrossEntropyRequestSchema,
  CrossEntropyResponseSchema
} from '../../schemas/cross-entropy.js'
import type { CrossEntropyBatch } from '../batch.js'
import { type BinaryBody, decodeSafetensorsRequest, encodeSafetensorsResponse } from '../codec/binary.js'
import { decodeJsonRequest, encodeJsonResponse } from '../codec/json.js'
import { XentErrors } from '../errors.js'
import { isFault } from '../pool/faults.js'

const description = [
  'Computes `torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), weight, ignore_index, reduction, label_smoothing)`.',
  'For each position the loss is −log p[target], where p = softmax(logits). Send raw logits, not probabilities. Targets equal to `ignore_index` (padding) are skipped. `outputs` asks for the per-token losses and the gradients with respect to the logits (p − onehot(target), scaled by the reduction).',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits`, `targets` and optionally `weight`, with the options as query parameters. The answer is JSON, or safetensors when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

const SAFETENSORS = 'application/octet-stream'

function isBinaryBody(body: unknown): body is BinaryBody {
  return (
    typeof body === 'object' && body !== null && 'bytes' in body && (body as BinaryBody).bytes instanceof Uint8Array
  )
}

const crossEntropyRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/cross-entropy',
    {
      schema: {
        tags: ['loss'],
        summary: 'Cross-entropy loss, per-token losses, gradients and perplexity',
        description,
        security: [{ bearerAuth: [] }],
        querystring: BinaryQuerySchema,
        body: {
          content: {
            'application/json': { schema: CrossEntropyRequestSchema },
            [SAFETENSORS]: { schema: SafetensorsBodySchema }
          }
        },
        response: {
          200: {
            description: 'The loss, perplexity and count, plus the outputs asked for.',
            content: {
              'application/json': { schema: CrossEntropyResponseSchema },
              [SAFETENSORS]: {
                schema: {
                  type: 'string',
                  format: 'binary',
                  description:
                    'safetensors: loss (F64 [], or F32 shaped like targets for none), perplexity (F64 []), count (I64 []), token_losses (F32), gradients (grad_dtype).'
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
      // The answer can hold millions of gradient numbers: plain JSON.stringify is the fastest way
      // to write them, and a schema-driven serializer would have to test every union branch.
      serializerCompiler: () => (data) => JSON.stringify(data)
    },
    async (request, reply) => {
      const query = request.query as BinaryQuery
      let batch: CrossEntropyBatch
      if (isBinaryBody(request.body)) {
        batch = decodeSafetensorsRequest(request.body, query, app.admitBatch)
      } else {
        // grad_dtype shapes a safetensors answer, whatever the body; the other options of a JSON
        // request belong in its body, where they cannot be given twice.
        const misplaced = Object.keys(query).filter((name) => name !== 'grad_dtype')
        if (misplaced.length > 0) {
          throw new XentErrors.INVALID_REQUEST(
            `query parameter "${misplaced[0]}" is for safetensors requests; a JSON request carries its options in the body`
          )
        }
        batch = decodeJsonRequest(request.body as CrossEntropyRequest, {
          group: () => request.kernelMemory(),
          admit: app.admitBatch
        })
      }
      // The batch's memory belongs to the request: it is released once the answer has been sent.
      const fault = request.headers['x-xent-fault']
      const result = await app.crossEntropy(batch, {
        signal: request.deadline,
        requestId: request.id,
        fault: isFault(fault) ? fault : undefined
      })
      app.metrics.elements.inc(batch.rows * batch.vocab)
      if (request.headers.accept?.includes(SAFETENSORS) === true) {
        const chunks = encodeSafetensorsResponse(batch, result, query.grad_dtype ?? 'F32')
        const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
        reply.type(SAFETENSORS).header('content-length', length)
        return reply.send(
          Readable.from(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
        )
      }
      return encodeJsonResponse(batch, result)
    }
  )
}

export default crossEntropyRoutes
