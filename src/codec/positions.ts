import { XentErrors } from '../errors.js'

// Where in a request something is, as messages name it: `logits[1][2][4]`, `targets[3]`.

/** ['logits', 0, 1] → `logits[0][1]`. */
export function formatPosition(segments: ReadonlyArray<string | number>): string {
  let text = ''
  for (const segment of segments) {
    text += typeof segment === 'number' ? `[${segment}]` : text === '' ? segment : `.${segment}`
  }
  return text
}

/** Flat row `row` of a tensor whose leading dimensions are `leading` → ['name', b, t] or ['name', n]. */
export function rowPosition(name: string, row: number, leading: readonly number[]): Array<string | number> {
  return leading.length === 2 ? [name, Math.floor(row / leading[1]), row % leading[1]] : [name, row]
}

/** Whether a target is a class in [0, V) or ignore_index: the one check, whichever wire format it came in. */
export function isTarget(target: number, vocab: number, ignoreIndex: number): boolean {
  return target === ignoreIndex || (target >= 0 && target < vocab)
}

/** The one message for a target outside the vocabulary, whichever wire format it came in. */
export function targetOutOfRange(
  position: ReadonlyArray<string | number>,
  target: number,
  vocab: number,
  ignoreIndex: number
): Error {
  return new XentErrors.TARGET_OUT_OF_RANGE(
    `${formatPosition(position)} is ${target}, outside [0, ${vocab}) and not ignore_index (${ignoreIndex})`
  )
}
