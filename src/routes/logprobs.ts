import type { FastifyPluginAsync } from 'fastify'
import {
  type LogprobsQuery,
  LogprobsQuerySchema,
  type LogprobsRequest,
  LogprobsRequestSchema,
  LogprobsResponseSchema
} from '../../schemas/logprobs.js'
import type { LogprobsBatch } from '../batch.js'
import { decodeLogprobsJson, encodeLogprobsJson } from '../codec/json.js'
import { decodeLogprobsSafetensors, encodeLogprobsSafetensors } from '../codec/logprobs-binary.js'
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
  'The selective log-softmax that RL fine-tuning (PPO, GRPO) runs on every batch: log p[target] for given token ids, the top k tokens of every position, and the entropy, from raw logits shaped (B, T, V) or (N, V).',
  'softcap (c·tanh(x/c), as Gemma 2) is applied first, because it belongs to the model; then temperature divides the logits. Sums are in float64, so F16 and BF16 logits lose nothing beyond their own rounding.',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits` and optionally `targets`, with the options as query parameters. The answer is JSON, or safetensors (target_logprobs, top_k_ids, top_k_logprobs, entropy) when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

const logprobsRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/logprobs',
    {
      schema: tensorRouteSchema({
        summary: 'Token log-probabilities, top-k and entropy, for RL fine-tuning',
        description,
        querystring: LogprobsQuerySchema,
        request: LogprobsRequestSchema,
        response: LogprobsResponseSchema,
        answer: 'The log-probabilities asked for.',
        safetensorsAnswer:
          'safetensors: target_logprobs (F32, like targets), top_k_ids (I64) and top_k_logprobs (F32), both (…, k), entropy (F32).'
      }),
      onRequest: app.admitRequest,
      serializerCompiler: stringifyAnswer
    },
    async (request, reply) => {
      const query = request.query as LogprobsQuery
      let batch: LogprobsBatch
      if (isBinaryBody(request.body)) {
        batch = decodeLogprobsSafetensors(request.body, query, app.admitBatch)
      } else {
        refuseQueryForJson(query)
        batch = decodeLogprobsJson(request.body as LogprobsRequest, requestMemory(request, app.admitBatch))
      }
      // The batch's memory belongs to the request: it is released once the answer has been sent.
      const result = await app.logprobs(batch, { signal: request.deadline, requestId: request.id })
      app.metrics.elements.inc(batch.rows * batch.vocab)
      if (wantsSafetensors(request)) return sendSafetensors(reply, encodeLogprobsSafetensors(batch, result))
      return encodeLogprobsJson(batch, result)
    }
  )
}

export default logprobsRoutes
