import {
  type LogprobsQuery,
  LogprobsQuerySchema,
  type LogprobsRequest,
  LogprobsRequestSchema,
  LogprobsResponseSchema
} from '../../../schemas/logprobs.js'
import type { Operation } from '../operation.js'
import { computeLogprobs, type LogprobsResult } from './compute.js'
import {
  computeLogprobsJson,
  decodeLogprobsJson,
  encodeLogprobsJson,
  LOGPROBS_TENSORS,
  printLogprobsJson,
  readLogprobsJson
} from './json.js'
import type { LogprobsJob } from './plan.js'
import { decodeLogprobsSafetensors, encodeLogprobsSafetensors } from './safetensors.js'

const description = [
  'The selective log-softmax that RL fine-tuning (PPO, GRPO) runs on every batch: log p[target] for given token ids, the top k tokens of every position, and the entropy, from raw logits shaped (B, T, V) or (N, V).',
  'softcap (c·tanh(x/c), as Gemma 2) is applied first, because it belongs to the model; then temperature divides the logits. Sums are in float64, so F16 and BF16 logits lose nothing beyond their own rounding.',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits` and optionally `targets`, with the options as query parameters. The answer is JSON, or safetensors (target_logprobs, top_k_ids, top_k_logprobs, entropy) when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

/** POST /v1/logprobs. */
export const logprobsOperation: Operation<LogprobsJob, LogprobsResult, LogprobsQuery> = {
  url: '/v1/logprobs',
  docs: {
    summary: 'Token log-probabilities, top-k and entropy, for RL fine-tuning',
    description,
    querystring: LogprobsQuerySchema,
    request: LogprobsRequestSchema,
    response: LogprobsResponseSchema,
    answer: 'The log-probabilities asked for.',
    safetensorsAnswer:
      'safetensors: target_logprobs (F32, like targets), top_k_ids (I64) and top_k_logprobs (F32), both (…, k), entropy (F32).'
  },
  jsonQuery: [],
  fromJson: (body, memory, engine) => decodeLogprobsJson(body as LogprobsRequest, memory, engine),
  fromSafetensors: decodeLogprobsSafetensors,
  compute: computeLogprobs,
  toJson: encodeLogprobsJson,
  jsonTensors: LOGPROBS_TENSORS,
  readJson: readLogprobsJson,
  computeJson: computeLogprobsJson,
  printJson: printLogprobsJson,
  toSafetensors: (job, result) => encodeLogprobsSafetensors(job, result),
  elements: (job) => job.shape.rows * job.shape.vocab
}
