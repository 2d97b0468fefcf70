import type { BinaryQuery } from '../../../schemas/binary.js'
import {
  ANALYTICS_OUTPUTS,
  type CrossEntropyRequest,
  DEFAULT_IGNORE_INDEX,
  type OutputName,
  type Reduction
} from '../../../schemas/cross-entropy.js'
import { XentErrors } from '../../errors.js'
import { checkScale } from '../scale.js'

/** A cross-entropy request's options, every default applied, whichever format they came in. */
export interface CrossEntropyOptions {
  reduction: Reduction
  ignoreIndex: number
  labelSmoothing: number
  /** z-loss coefficient: z·lse² joins each counted token's loss (0: none). */
  zLoss: number
  /** c > 0: logits become c·tanh(x/c) before everything else (0: none). */
  softcap: number
  outputs: ReadonlySet<OutputName>
  /** Whether the request named an ignore_index other than the default. */
  ignoreIndexGiven: boolean
}

/** The options as the request spelled them: the JSON body's fields, or the query's, as numbers. */
export interface RawOptions {
  reduction?: Reduction
  ignore_index?: number
  label_smoothing?: number
  z_loss?: number
  softcap?: number
  outputs?: readonly string[]
  /** How each option was spelled, for messages: a query's strings, as the caller wrote them. */
  spelled?: Partial<Record<'ignore_index' | 'label_smoothing' | 'z_loss' | 'softcap' | 'outputs', string>>
}

/** The analytics outputs that need a class index per position. */
const INDEX_OUTPUTS: ReadonlySet<string> = new Set(
  ANALYTICS_OUTPUTS.filter((name) => name !== 'entropy' && name !== 'predictions' && name !== 'z_loss')
)

/**
 * The one normaliser of cross-entropy options, for JSON and safetensors alike: defaults and
 * ranges. A JSON body has met its schema first, so only what a schema cannot say is ever refused
 * here for it; a query's numbers are checked here.
 */
export function normalizeOptions(raw: RawOptions): CrossEntropyOptions {
  const shown = (name: keyof NonNullable<RawOptions['spelled']> & keyof RawOptions) => raw.spelled?.[name] ?? raw[name]
  const ignoreIndex = raw.ignore_index ?? DEFAULT_IGNORE_INDEX
  if (!(Number.isInteger(ignoreIndex) && ignoreIndex >= -(2 ** 31) && ignoreIndex < 2 ** 31)) {
    throw new XentErrors.INVALID_REQUEST(`ignore_index is ${shown('ignore_index')}; it must be a 32-bit integer`)
  }
  const labelSmoothing = raw.label_smoothing ?? 0
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) {
    throw new XentErrors.INVALID_REQUEST(`label_smoothing is ${shown('label_smoothing')}; it must be in [0, 1]`)
  }
  const zLoss = raw.z_loss ?? 0
  if (!(Number.isFinite(zLoss) && zLoss >= 0)) {
    throw new XentErrors.INVALID_REQUEST(`z_loss is ${shown('z_loss')}; it must be a finite number ≥ 0`)
  }
  const softcap = raw.softcap ?? 0
  if (raw.softcap !== undefined && !(softcap > 0 && Number.isFinite(softcap))) {
    throw new XentErrors.INVALID_REQUEST(`softcap is ${shown('softcap')}; it must be a finite number > 0`)
  }
  if (raw.softcap !== undefined) checkScale('softcap', softcap, shown('softcap'))
  const names = raw.outputs ?? ['token_losses']
  const outputs = new Set(names as OutputName[])
  if (outputs.size !== names.length) {
    throw new XentErrors.INVALID_REQUEST(
      `outputs lists the same value twice: ${raw.spelled?.outputs ?? names.join(',')}`
    )
  }
  return {
    reduction: raw.reduction ?? 'mean',
    ignoreIndex,
    labelSmoothing,
    zLoss,
    softcap,
    outputs,
    // The JSON schema fills ignore_index's default: only another value was really asked for.
    ignoreIndexGiven: ignoreIndex !== DEFAULT_IGNORE_INDEX
  }
}

/** Refuses what does not go with class probabilities: an ignore_index, and outputs that need an index. */
export function refuseForSoftTargets(options: CrossEntropyOptions): void {
  if (options.ignoreIndexGiven) {
    throw new XentErrors.INVALID_REQUEST(
      'ignore_index does not apply to soft_targets: with class probabilities every row counts, as in PyTorch'
    )
  }
  for (const name of options.outputs) {
    if (INDEX_OUTPUTS.has(name)) {
      throw new XentErrors.INVALID_REQUEST(`outputs "${name}" needs class-index targets, not soft_targets`)
    }
  }
}

/** A JSON body's options. */
export function optionsFromBody(body: CrossEntropyRequest): CrossEntropyOptions {
  const options = normalizeOptions(body)
  if (body.soft_targets !== undefined) refuseForSoftTargets(options)
  return options
}

/** A safetensors request's options, from its query string (already matched by BinaryQuerySchema's patterns). */
export function optionsFromQuery(query: BinaryQuery): CrossEntropyOptions {
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value))
  return normalizeOptions({
    reduction: query.reduction,
    ignore_index: number(query.ignore_index),
    label_smoothing: number(query.label_smoothing),
    z_loss: number(query.z_loss),
    softcap: number(query.softcap),
    outputs: query.outputs?.split(',').filter((name) => name !== ''),
    spelled: query
  })
}

/** Whether the kernel writes each row's stats: any analytics output, or z-loss (which needs each lse). */
export function needsRowStats(options: CrossEntropyOptions): boolean {
  return options.zLoss > 0 || ANALYTICS_OUTPUTS.some((name) => options.outputs.has(name))
}
