import { XentErrors } from '../errors.js'
import { formatPosition, rowPosition } from './positions.js'

/** How far a row of soft_targets may sum from 1. */
export const SOFT_TARGET_TOLERANCE = 1e-4

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
