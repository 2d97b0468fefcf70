import Type, { type Static } from 'typebox'
import {
  IntegerMatrixSchema,
  IntegerVectorSchema,
  NumberMatrixSchema,
  NumberTensor3Schema,
  NumberVectorSchema
} from './common.js'

export const REDUCTIONS = ['mean', 'sum', 'none'] as const
/** Outputs beside the loss that a dashboard watches, all from the same pass over the logits. */
export const ANALYTICS_OUTPUTS = [
  'entropy',
  'target_logprobs',
  'predictions',
  'accuracy',
  'sequence_losses',
  'sequence_perplexities',
  'bits_per_token',
  'z_loss'
] as const
export const OUTPUT_NAMES = ['token_losses', 'gradients', ...ANALYTICS_OUTPUTS] as const
export const DEFAULT_IGNORE_INDEX = -100
const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

export const ReductionSchema = Type.Enum(REDUCTIONS, {
  default: 'mean',
  description: 'As in PyTorch: the weighted mean over counted targets, their sum, or one loss per target.'
})
export type Reduction = Static<typeof ReductionSchema>

export const OutputNameSchema = Type.Enum(OUTPUT_NAMES)
export type OutputName = Static<typeof OutputNameSchema>

export const CrossEntropyRequestSchema = Type.Object(
  {
    logits: Type.Union([NumberTensor3Schema, NumberMatrixSchema], {
      description: 'Raw scores (not probabilities), shaped (B, T, V) or (N, V). Finite numbers, rounded to float32.'
    }),
    targets: Type.Optional(
      Type.Union([IntegerMatrixSchema, IntegerVectorSchema], {
        description:
          'Class indices shaped (B, T) or (N), each in [0, V) or equal to ignore_index. Send this or soft_targets.'
      })
    ),
    soft_targets: Type.Optional(
      Type.Union([NumberTensor3Schema, NumberMatrixSchema], {
        description:
          "Class probabilities shaped like logits, each row summing to 1 within 1e-4, instead of targets: PyTorch's probability targets (no ignore_index; mean divides by the number of rows)."
      })
    ),
    reduction: Type.Optional(ReductionSchema),
    ignore_index: Type.Optional(
      Type.Integer({
        default: DEFAULT_IGNORE_INDEX,
        minimum: INT32_MIN,
        maximum: INT32_MAX,
        description: 'Targets equal to this value (padding) are skipped.'
      })
    ),
    label_smoothing: Type.Optional(
      Type.Number({
        default: 0,
        minimum: 0,
        maximum: 1,
        description: "Mixes the one-hot target with the uniform distribution, as PyTorch's label_smoothing."
      })
    ),
    z_loss: Type.Optional(
      Type.Number({
        default: 0,
        minimum: 0,
        description:
          "Adds z_loss·logsumexp(x)² to each counted token's loss and to the gradient, as PaLM's auxiliary loss (Liger's lse_square_scale). Under mean that part is divided by count, whatever the weights."
      })
    ),
    softcap: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description:
          'Logits become softcap·tanh(logits/softcap) before everything else, as in Gemma 2; gradients flow through the tanh.'
      })
    ),
    weight: Type.Optional(
      Type.Array(Type.Number({ minimum: 0 }), {
        minItems: 1,
        description: 'Per-class weights of length V, finite and ≥ 0, as PyTorch’s weight.'
      })
    ),
    outputs: Type.Optional(
      Type.Array(OutputNameSchema, {
        default: ['token_losses'],
        uniqueItems: true,
        description:
          'Which outputs to return beside loss, perplexity and count: token_losses, gradients, and the analytics entropy, target_logprobs, predictions, accuracy, sequence_losses, sequence_perplexities, bits_per_token and z_loss.'
      })
    )
  },
  { additionalProperties: false, title: 'CrossEntropyRequest' }
)
export type CrossEntropyRequest = Static<typeof CrossEntropyRequestSchema>

export const CrossEntropyResponseSchema = Type.Object(
  {
    loss: Type.Union([Type.Number(), Type.Null(), NumberVectorSchema, NumberMatrixSchema], {
      description:
        'F.cross_entropy: a number for mean and sum, an array shaped like targets for none; null where PyTorch gives NaN (a mean over zero total weight).'
    }),
    perplexity: Type.Union([Type.Number(), Type.Null()], {
      description: 'exp(mean plain −log p[target]) over counted targets; null when count is 0 or it overflows.'
    }),
    count: Type.Integer({ minimum: 0, description: 'Targets not equal to ignore_index.' }),
    token_losses: Type.Optional(
      Type.Union([NumberVectorSchema, NumberMatrixSchema], {
        description: 'Shaped like targets: the reduction="none" losses, 0 at ignored positions.'
      })
    ),
    gradients: Type.Optional(
      Type.Union([NumberTensor3Schema, NumberMatrixSchema], {
        description: 'Shaped like logits: d loss / d logits for the chosen reduction (for none, of the sum).'
      })
    ),
    entropy: Type.Optional(
      Type.Union([NumberVectorSchema, NumberMatrixSchema], {
        description:
          'Shaped like targets: H = logsumexp(x) − Σ softmax(x)·x, how spread the prediction is (0 certain, log V uniform); 0 at ignored positions.'
      })
    ),
    target_logprobs: Type.Optional(
      Type.Union([NumberVectorSchema, NumberMatrixSchema], {
        description:
          'Shaped like targets: log p[target], the negative of the plain per-token loss; 0 at ignored positions.'
      })
    ),
    predictions: Type.Optional(
      Type.Union([IntegerVectorSchema, IntegerMatrixSchema], {
        description: 'Shaped like targets: argmax over the vocabulary, the lowest index on ties (as torch.argmax).'
      })
    ),
    accuracy: Type.Optional(
      Type.Union([Type.Number(), Type.Null()], {
        description: 'Fraction of counted tokens whose prediction equals the target; null when count is 0.'
      })
    ),
    sequence_losses: Type.Optional(
      Type.Array(Type.Union([Type.Number(), Type.Null()]), {
        description:
          "Mean plain −log p[target] over each sequence's counted tokens: (B) for (B, T, V) logits, (1) for (N, V), whose rows form one sequence; null where none count."
      })
    ),
    sequence_perplexities: Type.Optional(
      Type.Array(Type.Union([Type.Number(), Type.Null()]), {
        description: 'exp of each sequence loss; null where none count or it overflows.'
      })
    ),
    bits_per_token: Type.Optional(
      Type.Union([Type.Number(), Type.Null()], {
        description:
          'Mean plain −log p[target] / ln 2: the bits an ideal coder would spend per token; null when count is 0.'
      })
    ),
    z_loss: Type.Optional(
      Type.Union([Type.Number(), Type.Null()], {
        description:
          "Mean over counted tokens of logsumexp(x)², PaLM's z-loss, reported (not added to the loss); null when count is 0."
      })
    )
  },
  { title: 'CrossEntropyResponse', description: 'The loss, perplexity and count, plus the outputs asked for.' }
)
export type CrossEntropyResponse = Static<typeof CrossEntropyResponseSchema>
