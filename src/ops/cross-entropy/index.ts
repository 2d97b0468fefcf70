import { type BinaryQuery, BinaryQuerySchema } from '../../../schemas/binary.js'
import {
  type CrossEntropyRequest,
  CrossEntropyRequestSchema,
  CrossEntropyResponseSchema
} from '../../../schemas/cross-entropy.js'
import type { Operation } from '../operation.js'
import { type CrossEntropyResult, computeCrossEntropy } from './compute.js'
import {
  CROSS_ENTROPY_TENSORS,
  computeCrossEntropyJson,
  decodeCrossEntropyJson,
  encodeCrossEntropyJson,
  printCrossEntropyJson,
  readCrossEntropyJson
} from './json.js'
import type { CrossEntropyJob } from './plan.js'
import { decodeCrossEntropySafetensors, encodeCrossEntropySafetensors } from './safetensors.js'

const description = [
  'Computes `torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), weight, ignore_index, reduction, label_smoothing)`.',
  'For each position the loss is −log p[target], where p = softmax(logits). Send raw logits, not probabilities. Targets equal to `ignore_index` (padding) are skipped. `outputs` asks for the per-token losses and the gradients with respect to the logits (p − onehot(target), scaled by the reduction).',
  'The body is JSON, or a safetensors file (`application/octet-stream`) holding `logits`, `targets` and optionally `weight`, with the options as query parameters. The answer is JSON, or safetensors when the request’s `Accept` is `application/octet-stream`.'
].join('\n\n')

/** POST /v1/cross-entropy. */
export const crossEntropyOperation: Operation<CrossEntropyJob, CrossEntropyResult, BinaryQuery> = {
  url: '/v1/cross-entropy',
  docs: {
    summary: 'Cross-entropy loss, per-token losses, gradients and perplexity',
    description,
    querystring: BinaryQuerySchema,
    request: CrossEntropyRequestSchema,
    response: CrossEntropyResponseSchema,
    answer: 'The loss, perplexity and count, plus the outputs asked for.',
    safetensorsAnswer:
      'safetensors: loss (F64 [], or F32 shaped like targets for none), perplexity (F64 []), count (I64 []), token_losses (F32), gradients (grad_dtype).'
  },
  // grad_dtype shapes a safetensors answer, whatever the body.
  jsonQuery: ['grad_dtype'],
  fromJson: (body, memory, engine) => decodeCrossEntropyJson(body as CrossEntropyRequest, memory, engine),
  fromSafetensors: decodeCrossEntropySafetensors,
  compute: computeCrossEntropy,
  toJson: encodeCrossEntropyJson,
  jsonTensors: CROSS_ENTROPY_TENSORS,
  readJson: readCrossEntropyJson,
  computeJson: computeCrossEntropyJson,
  printJson: printCrossEntropyJson,
  toSafetensors: (job, result, query) => encodeCrossEntropySafetensors(job, result, query.grad_dtype ?? 'F32'),
  elements: (job) => job.shape.rows * job.shape.vocab
}
