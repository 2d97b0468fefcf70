import type { FastifyPluginAsync } from 'fastify'
import { type BinaryQuery, BinaryQuerySchema } from '../../schemas/binary.js'
import {
  type CrossEntropyRequest,
  CrossEntropyRequestSchema,
  CrossEntropyResponseSchema
} from '../../schemas/cross-entropy.js'
import type { CrossEntropyBatch } from '../batch.js'
import { decodeSafetensorsRequest, encodeSafetensorsResponse } from '../codec/binary.js'
import { decodeJsonRequest, encodeJsonResponse } from '../codec/json.js'
import {
  isBinaryBody,
  refuseQueryForJson,
  requestMemory,
  sendSafetensors,
  stringifyAnswer,
  tensorRouteSchema,
  wantsSafetensors
} from './tensors.js'

const description = [
  'Computes `torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), weight, ignore_index, reduction, label_smoothing)`.',
  'For each position the loss is −log p[target], where p = softmax(logits). Send raw logits, not probabilities. Targets equal to `ignore_index` (padding) are skipped. `outputs` asks for the per-token losses and the gradients with respect to the logits (p − onehot(target), scaled by the reduction).',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits`, `targets` and optionally `weight`, with the options as query parameters. The answer is JSON, or safetensors when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

const crossEntropyRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/cross-entropy',
    {
      schema: tensorRouteSchema({
        summary: 'Cross-entropy loss, per-token losses, gradients and perplexity',
        description,
        querystring: BinaryQuerySchema,
        request: CrossEntropyRequestSchema,
        response: CrossEntropyResponseSchema,
        answer: 'The loss, perplexity and count, plus the outputs asked for.',
        safetensorsAnswer:
          'safetensors: loss (F64 [], or F32 shaped like targets for none), perplexity (F64 []), count (I64 []), token_losses (F32), gradients (grad_dtype).'
      }),
      onRequest: app.admitRequest,
      serializerCompiler: stringifyAnswer
    },
    async (request, reply) => {
      const query = request.query as BinaryQuery
      let batch: CrossEntropyBatch
      if (isBinaryBody(request.body)) {
        batch = decodeSafetensorsRequest(request.body, query, app.admitBatch)
      } else {
        // grad_dtype shapes a safetensors answer, whatever the body.
        refuseQueryForJson(query, ['grad_dtype'])
        batch = decodeJsonRequest(request.body as CrossEntropyRequest, requestMemory(request, app.admitBatch))
      }
      // The batch's memory belongs to the request: it is released once the answer has been sent.
      const result = await app.crossEntropy(batch, { signal: request.deadline, requestId: request.id })
      app.metrics.elements.inc(batch.rows * batch.vocab)
      if (wantsSafetensors(request)) {
        return sendSafetensors(reply, encodeSafetensorsResponse(batch, result, query.grad_dtype ?? 'F32'))
      }
      return encodeJsonResponse(batch, result)
    }
  )
}

export default crossEntropyRoutes
