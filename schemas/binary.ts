import Type, { type Static } from 'typebox'
import { QueryIntegerSchema, QueryNumberSchema } from './common.js'
import { OUTPUT_NAMES, REDUCTIONS } from './cross-entropy.js'

/**
 * Options of a safetensors request, as query parameters with the JSON fields' names and
 * defaults. Query values arrive as strings; the patterns admit only what the JSON field would.
 */
export const BinaryQuerySchema = Type.Object(
  {
    reduction: Type.Optional(Type.Enum(REDUCTIONS, { description: 'mean (default), sum or none.' })),
    ignore_index: Type.Optional(QueryIntegerSchema('An integer; targets equal to it are skipped. Default -100.')),
    label_smoothing: Type.Optional(QueryNumberSchema('A number in [0, 1]. Default 0.')),
    z_loss: Type.Optional(QueryNumberSchema('A number ≥ 0. Default 0.')),
    softcap: Type.Optional(QueryNumberSchema('A number > 0.')),
    outputs: Type.Optional(
      Type.String({
        pattern: `^((${OUTPUT_NAMES.join('|')})(,(${OUTPUT_NAMES.join('|')}))*)?$`,
        description: `Comma-separated, any of: ${OUTPUT_NAMES.join(', ')}. Default token_losses.`
      })
    ),
    grad_dtype: Type.Optional(
      Type.Enum(['F32', 'BF16', 'F16'], {
        description: 'The dtype of returned gradients in a safetensors answer. Default F32.'
      })
    )
  },
  { additionalProperties: false, title: 'BinaryOptions' }
)
export type BinaryQuery = Static<typeof BinaryQuerySchema>

/**
 * A safetensors body holding logits, targets and optionally weight. It has no JSON type: in
 * OpenAPI 3.1 a schema without one describes raw bytes, and the safetensors codec checks them.
 */
export const SafetensorsBodySchema = Type.Unsafe<unknown>({
  contentMediaType: 'application/octet-stream',
  description:
    'A safetensors file with logits (F32, F16 or BF16; (N, V) or (B, T, V)), targets (I32 or I64; (N) or (B, T)) and optionally weight (F32, [V]).'
})
