import { lossColor } from './colors.js'
import { svg } from './dom.js'

const WIDTH = 320
const LEFT = 8
const RIGHT = WIDTH - 8
const TRACK_Y = 26
const TRACK_HEIGHT = 14

/**
 * A loss on a track from 0 to 2.5·log V, with a dashed line at log V: the untrained baseline.
 * The number itself is shown beside it; past the end of the track the bar stops, fully dark.
 */
export class LossGauge {
  readonly #fill: SVGRectElement
  readonly #baseline: SVGGElement
  readonly #baselineLabel: SVGTextElement
  readonly #maxLabel: SVGTextElement
  #logV = 1

  constructor(element: SVGSVGElement) {
    element.setAttribute('viewBox', `0 0 ${WIDTH} 64`)
    svg(element, 'rect', {
      class: 'gauge-track',
      x: LEFT,
      y: TRACK_Y,
      width: RIGHT - LEFT,
      height: TRACK_HEIGHT,
      rx: 7
    })
    this.#fill = svg(element, 'rect', {
      class: 'gauge-fill',
      x: LEFT,
      y: TRACK_Y,
      width: 0,
      height: TRACK_HEIGHT,
      rx: 7
    })
    this.#baseline = svg(element, 'g', { class: 'gauge-baseline' })
    svg(this.#baseline, 'line', { x1: 0, x2: 0, y1: TRACK_Y - 8, y2: TRACK_Y + TRACK_HEIGHT + 6 })
    this.#baselineLabel = svg(this.#baseline, 'text', { x: 0, y: TRACK_Y - 12, 'text-anchor': 'middle' })
    svg(element, 'text', { class: 'gauge-tick', x: LEFT, y: 58 }, '0')
    this.#maxLabel = svg(element, 'text', { class: 'gauge-tick', x: RIGHT, y: 58, 'text-anchor': 'end' })
  }

  #x(loss: number): number {
    return LEFT + (RIGHT - LEFT) * Math.min(1, loss / (2.5 * this.#logV))
  }

  show(loss: number | null, vocabulary: number): void {
    this.#logV = Math.log(Math.max(2, vocabulary))
    const baselineX = this.#x(this.#logV)
    this.#baseline.setAttribute('transform', `translate(${baselineX} 0)`)
    this.#baselineLabel.textContent = `log ${vocabulary} = ${Math.log(vocabulary).toFixed(2)}`
    this.#maxLabel.textContent = (2.5 * this.#logV).toFixed(1)
    if (loss === null || !Number.isFinite(loss)) {
      this.#fill.setAttribute('width', '0')
      return
    }
    this.#fill.setAttribute('width', String(Math.max(TRACK_HEIGHT, this.#x(loss) - LEFT)))
    this.#fill.setAttribute('fill', lossColor(loss, this.#logV))
    this.#fill.classList.toggle('beyond', loss > 2.5 * this.#logV)
  }
}
