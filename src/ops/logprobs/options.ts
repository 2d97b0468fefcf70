import { DEFAULT_IGNORE_INDEX } from '../../../schemas/cross-entropy.js'
import { type LogprobsQuery, type LogprobsRequest, MAX_TOP_K } from '../../../schemas/logprobs.js'
import { XentErrors } from '../../errors.js'
import { checkScale } from '../scale.js'

/** A logprobs request's options, every default applied, whichever format they came in. */
export interface LogprobsOptions {
  ignoreIndex: number
  /** 0 for no top-k output. */
  topK: number
  /** 0 for none. */
  softcap: number
  temperature: number
  entropy: boolean
}

interface RawOptions {
  ignore_index?: number
  top_k?: number
  softcap?: number
  temperature?: number
  entropy: boolean
  /** How each option was spelled, for messages: a query's strings. */
  spelled?: Partial<Record<'ignore_index' | 'top_k' | 'softcap' | 'temperature', string>>
}

/** The one normaliser of logprobs options, for JSON (its schema met first) and safetensors alike. */
function normalizeOptions(raw: RawOptions): LogprobsOptions {
  const shown = (name: 'ignore_index' | 'top_k' | 'softcap' | 'temperature') => raw.spelled?.[name] ?? raw[name]
  const ignoreIndex = raw.ignore_index ?? DEFAULT_IGNORE_INDEX
  if (!(Number.isInteger(ignoreIndex) && ignoreIndex >= -(2 ** 31) && ignoreIndex < 2 ** 31)) {
    throw new XentErrors.INVALID_REQUEST(`ignore_index is ${shown('ignore_index')}; it must be a 32-bit integer`)
  }
  const topK = raw.top_k ?? 0
  if (raw.top_k !== undefined && !(Number.isInteger(topK) && topK >= 1 && topK <= MAX_TOP_K)) {
    throw new XentErrors.INVALID_REQUEST(`top_k is ${shown('top_k')}; it must be an integer in [1, ${MAX_TOP_K}]`)
  }
  const positive = (name: 'softcap' | 'temperature', fallback: number) => {
    const value = raw[name] ?? fallback
    if (!(value > 0 && Number.isFinite(value))) {
      throw new XentErrors.INVALID_REQUEST(`${name} is ${shown(name)}; it must be a finite number > 0`)
    }
    checkScale(name, value, shown(name))
    return value
  }
  const softcap = raw.softcap === undefined ? 0 : positive('softcap', 0)
  return { ignoreIndex, topK, softcap, temperature: positive('temperature', 1), entropy: raw.entropy }
}

export function optionsFromBody(body: LogprobsRequest): LogprobsOptions {
  return normalizeOptions({ ...body, entropy: body.outputs?.includes('entropy') === true })
}

/** A safetensors request's options, from its query string (already matched by LogprobsQuerySchema). */
export function optionsFromQuery(query: LogprobsQuery): LogprobsOptions {
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value))
  return normalizeOptions({
    ignore_index: number(query.ignore_index),
    top_k: number(query.top_k),
    softcap: number(query.softcap),
    temperature: number(query.temperature),
    entropy: query.outputs === 'entropy',
    spelled: query
  })
}

/** What a request asks of its shape: something to compute, and no more top-k than classes. */
export function checkAgainstShape(options: LogprobsOptions, hasTargets: boolean, vocab: number): void {
  if (!hasTargets && options.topK === 0 && !options.entropy) {
    throw new XentErrors.INVALID_REQUEST('nothing to compute: send targets, top_k, or outputs with entropy')
  }
  if (options.topK > vocab) {
    throw new XentErrors.INVALID_REQUEST(`top_k is ${options.topK}, more than the ${vocab} classes of logits`)
  }
}
