import { XentErrors } from '../errors.js'

/**
 * The one check of class weights, whichever wire format they came in: each a finite float32 ≥ 0.
 * `source` is what the caller sent, when it was not float32 already (JSON's doubles), so that the
 * message shows their own number.
 */
export function checkWeights(weight: Float32Array, source: ArrayLike<number> = weight): void {
  for (let c = 0; c < weight.length; c++) {
    if (!(Number.isFinite(weight[c]) && weight[c] >= 0)) {
      throw new XentErrors.INVALID_WEIGHT(`weight[${c}] is ${source[c]}; weights must be finite float32s ≥ 0`)
    }
  }
}
