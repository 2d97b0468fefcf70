import Type, { type Static } from 'typebox'
import {
  IntegerMatrixSchema,
  IntegerVectorSchema,
  NumberMatrixSchema,
  NumberTensor3Schema,
  NumberVectorSchema,
  QueryIntegerSchema,
  QueryNumberSchema
} from './common.js'
import { DEFAULT_IGNORE_INDEX } from './cross-entropy.js'

const NullableMatrix = Type.Array(Type.Array(Type.Union([Type.Number(), Type.Null()])))

export const MAX_TOP_K = 64

const SoftcapSchema = Type.Number({
  exclusiveMinimum: 0,
  description: 'Logits become softcap·tanh(logits/softcap) first, as in Gemma 2 (it belongs to the model).'
})
const TemperatureSchema = Type.Number({
  exclusiveMinimum: 0,
  default: 1,
  description: 'Then the (soft-capped) logits are divided by it, as when sampling. Default 1.'
})
const TopKSchema = Type.Integer({
  minimum: 1,
  maximum: MAX_TOP_K,
  description: `Also return the k most likely tokens of every position (1 to ${MAX_TOP_K}), sorted by log-probability.`
})

export const LogprobsRequestSchema = Type.Object(
  {
    logits: Type.Union([NumberTensor3Schema, NumberMatrixSchema], {
      description:
        'Raw scores shaped (B, T, V) or (N, V), finite numbers rounded to float32 (a safetensors body may also hold −Inf, a masked token).'
    }),
    targets: Type.Optional(
      Type.Union([IntegerMatrixSchema, IntegerVectorSchema], {
        description:
          'Token ids shaped (B, T) or (N), each in [0, V) or equal to ignore_index: their log-probabilities are returned.'
      })
    ),
    ignore_index: Type.Optional(
      Type.Integer({
        default: DEFAULT_IGNORE_INDEX,
        minimum: -2147483648,
        maximum: 2147483647,
        description: 'Targets equal to this value (padding) get a log-probability of 0.'
      })
    ),
    top_k: Type.Optional(TopKSchema),
    softcap: Type.Optional(SoftcapSchema),
    temperature: Type.Optional(TemperatureSchema),
    outputs: Type.Optional(
      Type.Array(Type.Enum(['entropy']), {
        uniqueItems: true,
        description: 'Extra outputs: entropy, the entropy of each position’s distribution.'
      })
    )
  },
  { additionalProperties: false, title: 'LogprobsRequest' }
)
export type LogprobsRequest = Static<typeof LogprobsRequestSchema>

export const LogprobsResponseSchema = Type.Object(
  {
    target_logprobs: Type.Optional(
      Type.Union([NumberVectorSchema, NumberMatrixSchema], {
        description: 'Shaped like targets: log p[target] after softcap and temperature; 0 at ignored positions.'
      })
    ),
    top_k: Type.Optional(
      Type.Object(
        {
          ids: Type.Union([IntegerMatrixSchema, Type.Array(IntegerMatrixSchema)], {
            description: 'Shaped (…, k): the token ids, most likely first (the lower id first on ties).'
          }),
          logprobs: Type.Union([NullableMatrix, Type.Array(NullableMatrix)], {
            description:
              'Shaped (…, k): their log-probabilities, descending; null for a masked token (−Inf), which only a k beyond the unmasked tokens reaches.'
          })
        },
        { description: 'The k most likely tokens of every position.' }
      )
    ),
    entropy: Type.Optional(
      Type.Union([NumberVectorSchema, NumberMatrixSchema], {
        description: 'Shaped like the leading dimensions of logits: the entropy of each position’s distribution.'
      })
    )
  },
  { title: 'LogprobsResponse', description: 'The log-probabilities asked for.' }
)
export type LogprobsResponse = Static<typeof LogprobsResponseSchema>

/** Options of a safetensors logprobs request, as query parameters (strings). */
export const LogprobsQuerySchema = Type.Object(
  {
    ignore_index: Type.Optional(QueryIntegerSchema('An integer. Default -100.')),
    top_k: Type.Optional(Type.String({ pattern: '^[0-9]{1,2}$', description: `An integer in [1, ${MAX_TOP_K}].` })),
    softcap: Type.Optional(QueryNumberSchema('A number > 0.')),
    temperature: Type.Optional(QueryNumberSchema('A number > 0. Default 1.')),
    outputs: Type.Optional(Type.String({ pattern: '^(entropy)?$', description: 'entropy, or nothing.' }))
  },
  { additionalProperties: false, title: 'LogprobsOptions' }
)
export type LogprobsQuery = Static<typeof LogprobsQuerySchema>
