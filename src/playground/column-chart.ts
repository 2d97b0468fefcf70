import { formatPercent, setAttributes, svg } from './dom.js'

/**
 * A small bar chart over the vocabulary: probabilities from 0 to 1 with a dotted line at the
 * uniform 1/V, or gradients from −1 to 1 around zero.
 */
export class ColumnChart {
  readonly #bars: SVGRectElement[]
  readonly #labels: SVGTextElement[]
  readonly #kind: 'probability' | 'gradient'
  readonly #zeroY: number
  readonly #scale: number

  /** `columns` bars, `columnWidth` apart as in the logit chart, so each sits under its word. */
  constructor(element: SVGSVGElement, kind: 'probability' | 'gradient', columns: number, columnWidth: number) {
    this.#kind = kind
    const width = columns * columnWidth
    const height = kind === 'probability' ? 104 : 116
    element.setAttribute('viewBox', `0 0 ${width} ${height}`)
    this.#zeroY = kind === 'probability' ? 96 : 58
    this.#scale = kind === 'probability' ? 76 : 44
    svg(element, 'line', { class: 'zero', x1: 0, x2: width, y1: this.#zeroY, y2: this.#zeroY })
    if (kind === 'probability') {
      const uniformY = this.#zeroY - this.#scale / columns
      svg(element, 'line', { class: 'uniform', x1: 0, x2: width, y1: uniformY, y2: uniformY })
    }
    this.#bars = []
    this.#labels = []
    for (let i = 0; i < columns; i++) {
      const x = i * columnWidth + columnWidth / 2
      this.#bars.push(
        svg(element, 'rect', { class: 'column-bar', x: x - 20, width: 40, y: this.#zeroY, height: 0, rx: 3 })
      )
      this.#labels.push(svg(element, 'text', { class: 'bar-value', x, y: this.#zeroY, 'text-anchor': 'middle' }))
    }
  }

  show(values: number[], target: number): void {
    values.forEach((value, i) => {
      const end = this.#zeroY - value * this.#scale
      const top = Math.min(end, this.#zeroY)
      setAttributes(this.#bars[i], { y: top, height: Math.max(0.5, Math.abs(end - this.#zeroY)) })
      this.#bars[i].classList.toggle('target', i === target)
      this.#bars[i].classList.toggle('negative', value < 0)
      const label = this.#labels[i]
      label.textContent = this.#kind === 'probability' ? formatPercent(value) : signed(value)
      label.setAttribute('y', String(value >= 0 ? top - 5 : end + 14))
    })
  }
}

function signed(value: number): string {
  const rounded = value.toFixed(2)
  return value > 0 && rounded !== '0.00' ? `+${rounded}` : rounded === '-0.00' ? '0.00' : rounded
}
