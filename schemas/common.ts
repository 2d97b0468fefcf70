import Type, { type Static } from 'typebox'

/** Every non-2xx answer: Fastify's error shape, with a stable `code`. */
export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer({ description: 'The HTTP status, repeated.' }),
    code: Type.String({ description: 'Stable machine-readable code, such as XENT_TARGET_OUT_OF_RANGE.' }),
    error: Type.String({ description: 'The HTTP status text.' }),
    message: Type.String({ description: 'What to fix and where: the field and the first offending position.' })
  },
  { title: 'Error', description: 'A coded error; the message names the field and the first offending position.' }
)
export type ErrorBody = Static<typeof ErrorSchema>

/** A dimension may not be empty: every array in a tensor has at least one element. */
const nonEmpty = { minItems: 1 }

export const NumberVectorSchema = Type.Array(Type.Number(), nonEmpty)
export const NumberMatrixSchema = Type.Array(NumberVectorSchema, nonEmpty)
export const NumberTensor3Schema = Type.Array(NumberMatrixSchema, nonEmpty)
export const IntegerVectorSchema = Type.Array(Type.Integer(), nonEmpty)
export const IntegerMatrixSchema = Type.Array(IntegerVectorSchema, nonEmpty)

/** A number in a query string: digits, an optional point and exponent (no sign, no NaN or Infinity). */
export const QUERY_NUMBER_PATTERN = '^[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?$'
/** An integer in a query string, as ignore_index takes it. */
export const QUERY_INTEGER_PATTERN = '^-?[0-9]{1,10}$'

/** A numeric option of a safetensors request, which arrives as a string. */
export const QueryNumberSchema = (description: string) => Type.String({ pattern: QUERY_NUMBER_PATTERN, description })
export const QueryIntegerSchema = (description: string) => Type.String({ pattern: QUERY_INTEGER_PATTERN, description })
