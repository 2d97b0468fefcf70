import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorSchema } from '../../schemas/common.js'
import { CrossEntropyRequestSchema, CrossEntropyResponseSchema } from '../../schemas/cross-entropy.js'
import { decodeJsonRequest, encodeJsonResponse } from '../codec/json.js'

const description = `Computes \`torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), weight, ignore_index, reduction, label_smoothing)\`.

For each position the loss is −log p[target], where p = softmax(logits). Send raw logits, not probabilities.
Targets equal to \`ignore_index\` (padding) are skipped. \`outputs\` asks for the per-token losses and the
gradients with respect to the logits (p − onehot(target), scaled by the reduction).`

const crossEntropyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/cross-entropy',
    {
      schema: {
        tags: ['loss'],
        summary: 'Cross-entropy loss, per-token losses, gradients and perplexity',
        description,
        body: CrossEntropyRequestSchema,
        response: {
          200: CrossEntropyResponseSchema,
          400: ErrorSchema,
          413: ErrorSchema,
          415: ErrorSchema
        }
      },
      // The answer can hold millions of gradient numbers: plain JSON.stringify is the fastest way
      // to write them, and a schema-driven serializer would have to test every union branch.
      serializerCompiler: () => (data) => JSON.stringify(data)
    },
    async (request) => {
      const batch = decodeJsonRequest(request.body, app.kernelArena)
      try {
        const result = await app.crossEntropy(batch)
        return encodeJsonResponse(batch, result)
      } finally {
        batch.memory.release()
      }
    }
  )
}

export default crossEntropyRoutes
