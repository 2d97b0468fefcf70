import type { CrossEntropyResponse } from '../client/index.js'
import type { PlaygroundApi } from './api.js'
import { find, formatLoss, formatPerplexity, setAttributes, showError, svg } from './dom.js'

/** The curve's words: the right one and seven others sharing what probability is left. */
const VOCABULARY = 8
/** Where p = 1 puts the other words' logits: exp(−80) vanishes beside 1 even in float64. */
const VANISHING_LOGIT = -80

const WIDTH = 560
const HEIGHT = 300
const LEFT = 48
const RIGHT = WIDTH - 20
const TOP = 18
const BOTTOM = HEIGHT - 40
const LOSS_MAX = 7

const xOf = (p: number) => LEFT + (RIGHT - LEFT) * p
const yOf = (loss: number) => BOTTOM - (BOTTOM - TOP) * Math.min(1, loss / LOSS_MAX)

/**
 * Logits over VOCABULARY words giving the target (word 0) probability p and the others
 * (1 − p)/(V − 1) each: relative to the target's logit of 0, each other logit is
 * log((1 − p) / ((V − 1)·p)).
 */
export function logitsFor(p: number): number[] {
  const other = p >= 1 ? VANISHING_LOGIT : Math.log((1 - p) / ((VOCABULARY - 1) * p))
  return [0, ...Array.from({ length: VOCABULARY - 1 }, () => other)]
}

/** The second picture: −log p drawn, a slider for p, and the service's loss and perplexity for it. */
export function mountCurve(section: HTMLElement, api: PlaygroundApi): void {
  const chart = find<SVGSVGElement>(section, '.curve-chart')
  const slider = find<HTMLInputElement>(section, '#p-slider')
  const pValue = find<HTMLOutputElement>(section, '.p-value')
  const lossValue = find(section, '.curve-loss')
  const perplexity = find(section, '.curve-perplexity')
  const error = find(section, '.error')
  const point = drawAxes(chart)

  const call = api.latest<number, CrossEntropyResponse>({
    run: (p) => api.client.crossEntropy({ logits: [logitsFor(p)], targets: [0], outputs: [] }),
    show: (answer) => {
      lossValue.textContent = formatLoss(answer.loss as number)
      perplexity.textContent = formatPerplexity(answer.perplexity)
      showError(error, null)
    },
    fail: (message) => showError(error, message),
    busy: (busy) => lossValue.setAttribute('data-state', busy ? 'busy' : 'idle')
  })

  const update = () => {
    const p = Number(slider.value)
    pValue.textContent = p.toFixed(3)
    point(p)
    call.request(p)
  }
  slider.addEventListener('input', update)
  update()
}

function drawAxes(chart: SVGSVGElement): (p: number) => void {
  chart.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`)
  for (let loss = 0; loss <= LOSS_MAX; loss++) {
    svg(chart, 'line', { class: 'grid', x1: LEFT, x2: RIGHT, y1: yOf(loss), y2: yOf(loss) })
    svg(chart, 'text', { class: 'axis', x: LEFT - 8, y: yOf(loss) + 4, 'text-anchor': 'end' }, String(loss))
  }
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    svg(chart, 'text', { class: 'axis', x: xOf(p), y: BOTTOM + 18, 'text-anchor': 'middle' }, String(p))
  }
  svg(
    chart,
    'text',
    { class: 'axis-title', x: (LEFT + RIGHT) / 2, y: HEIGHT - 4, 'text-anchor': 'middle' },
    'p[target]'
  )
  svg(
    chart,
    'text',
    { class: 'axis-title', x: 14, y: TOP + 60, transform: `rotate(-90 14 ${TOP + 60})`, 'text-anchor': 'middle' },
    'loss'
  )

  // The uniform guess: p = 1/V, loss = log V.
  const uniformP = 1 / VOCABULARY
  const logV = Math.log(VOCABULARY)
  svg(chart, 'line', { class: 'baseline', x1: LEFT, x2: RIGHT, y1: yOf(logV), y2: yOf(logV) })
  svg(chart, 'line', { class: 'baseline', x1: xOf(uniformP), x2: xOf(uniformP), y1: TOP, y2: BOTTOM })
  svg(
    chart,
    'text',
    { class: 'baseline-label', x: RIGHT - 4, y: yOf(logV) - 6, 'text-anchor': 'end' },
    `uniform guess: log ${VOCABULARY} = ${logV.toFixed(2)}`
  )

  const samples: string[] = []
  for (let i = 0; i <= 400; i++) {
    // Denser near 0, where the curve climbs.
    const p = 0.0009 + (1 - 0.0009) * (i / 400) ** 2
    samples.push(`${xOf(p).toFixed(2)},${yOf(-Math.log(p)).toFixed(2)}`)
  }
  svg(chart, 'path', { class: 'curve', d: `M${samples.join('L')}` })

  const guides = svg(chart, 'path', { class: 'guide' })
  const dot = svg(chart, 'circle', { class: 'dot', r: 7 })
  const label = svg(chart, 'text', { class: 'dot-label' })
  return (p) => {
    const loss = -Math.log(p)
    const x = xOf(p)
    const y = yOf(loss)
    setAttributes(dot, { cx: x, cy: y })
    setAttributes(guides, { d: `M${x},${BOTTOM}V${y}H${LEFT}` })
    setAttributes(label, { x: x + (p > 0.8 ? -12 : 12), y: y - 12, 'text-anchor': p > 0.8 ? 'end' : 'start' })
    label.textContent = `−log ${p.toFixed(3)} = ${loss.toFixed(2)}`
  }
}
