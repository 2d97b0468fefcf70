import { ANALYTICS_OUTPUTS, type OutputName } from '../../schemas/cross-entropy.js'
import { XentErrors } from '../errors.js'
import { formatPosition, rowPosition } from './schema-errors.js'

/** How far a row of soft_targets may sum from 1. */
export const SOFT_TARGET_TOLERANCE = 1e-4

/** The analytics outputs that need a class index per position. */
const INDEX_OUTPUTS: ReadonlySet<OutputName> = new Set<OutputName>(
  ANALYTICS_OUTPUTS.filter((name) => name !== 'entropy' && name !== 'predictions' && name !== 'z_loss')
)

/**
 * Refuses what does not go with class probabilities: an ignore_index other than the default, and
 * outputs that need an index.
 */
export function checkSoftTargetOptions(ignoreIndexGiven: boolean, outputs: ReadonlySet<OutputName>): void {
  if (ignoreIndexGiven) {
    throw new XentErrors.INVALID_REQUEST(
      'ignore_index does not apply to soft_targets: with class probabilities every row counts, as in PyTorch'
    )
  }
  for (const name of outputs) {
    if (INDEX_OUTPUTS.has(name)) {
      throw new XentErrors.INVALID_REQUEST(`outputs "${name}" needs class-index targets, not soft_targets`)
    }
  }
}

/**
 * Every probability finite and in [0, 1], every row summing to 1 within SOFT_TARGET_TOLERANCE;
 * the first failure is named by its position (`leading` is the shape before V).
 */
export function checkSoftTargets(values: Float32Array, vocab: number, leading: readonly number[]): void {
  for (let row = 0; row * vocab < values.length; row++) {
    let sum = 0
    for (let c = 0; c < vocab; c++) {
      const q = values[row * vocab + c]
      if (!(q >= 0 && q <= 1)) {
        const where = formatPosition([...rowPosition('soft_targets', row, leading), c])
        throw new XentErrors.INVALID_REQUEST(`${where} is ${q}; probabilities must be in [0, 1]`)
      }
      sum += q
    }
    if (Math.abs(sum - 1) > SOFT_TARGET_TOLERANCE) {
      const where = formatPosition(rowPosition('soft_targets', row, leading))
      throw new XentErrors.INVALID_REQUEST(`${where} sums to ${sum}; each row must sum to 1 (within 1e-4)`)
    }
  }
}
