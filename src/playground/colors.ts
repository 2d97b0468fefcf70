/**
 * The colour of a loss, on one scale across the page: 0 is pale, log V (a model that learned
 * nothing) sits in the middle, and twice log V or more is the darkest. Stops of a warm sequential
 * palette, interpolated in RGB.
 */
const STOPS: [number, number, number][] = [
  [255, 247, 230],
  [253, 212, 158],
  [252, 141, 89],
  [215, 48, 39],
  [127, 0, 60]
]

export function lossColor(loss: number, logV: number): string {
  const t = Math.min(1, Math.max(0, loss / (2 * logV || 1)))
  const scaled = t * (STOPS.length - 1)
  const low = Math.min(STOPS.length - 2, Math.floor(scaled))
  const f = scaled - low
  const [r, g, b] = STOPS[low].map((channel, i) => Math.round(channel + (STOPS[low + 1][i] - channel) * f))
  return `rgb(${r} ${g} ${b})`
}

/** Dark text on the pale half of the scale, light text on the dark half. */
export function textOn(loss: number, logV: number): string {
  return loss / (2 * logV || 1) > 0.55 ? '#fff' : '#3b2a1f'
}
