import { XentErrors } from '../errors.js'

/**
 * softcap and temperature divide the logits in float32. Past these bounds the kernel's
 * arithmetic breaks down (1/c overflows float32 below about 3e-39, c itself above 3.4e38, and
 * well before either the capped values lose their order), so a 200 could hold nulls or a wrong
 * top k; within them it agrees with the float64 reference. Caps in use are 30 and 50.
 */
export const SCALE_MIN = 1e-30
export const SCALE_MAX = 1e30

/** Refuses a softcap or temperature outside [SCALE_MIN, SCALE_MAX], naming it as the caller wrote it. */
export function checkScale(name: 'softcap' | 'temperature', value: number, shown: unknown): void {
  if (value < SCALE_MIN || value > SCALE_MAX) {
    throw new XentErrors.INVALID_REQUEST(`${name} is ${shown}; it must be between ${SCALE_MIN} and ${SCALE_MAX}`)
  }
}
