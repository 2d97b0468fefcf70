import type { CrossEntropyResponse } from '../client/index.js'
import type { PlaygroundApi } from './api.js'
import { ColumnChart } from './column-chart.js'
import { clamp, find, formatLoss, formatPercent, formatPerplexity, setAttributes, showError, svg } from './dom.js'
import { LossGauge } from './gauge.js'

/** The vocabulary of the first picture: what might end "the cat sat on the …". */
export const WORDS = ['mat', 'sofa', 'hat', 'roof', 'floor', 'dog', 'moon', 'piano'] as const
const START_LOGITS = [2.2, 1.6, 0.9, 0.4, 1.2, -0.6, -1.8, -2.6]

/** Logits run from −LOGIT_LIMIT to LOGIT_LIMIT on the chart. */
const LOGIT_LIMIT = 8
/** A keyboard step, and with Shift or PageUp/PageDown a big one. */
const STEP = 0.25
const BIG_STEP = 1

const COLUMN = 80
const WIDTH = COLUMN * WORDS.length
const ZERO_Y = 122
const HALF_HEIGHT = 104
const PIXELS_PER_LOGIT = HALF_HEIGHT / LOGIT_LIMIT
const WORD_Y = 246

interface State {
  logits: number[]
  target: number
}

/**
 * The first picture: logits as bars that can be dragged (mouse, touch, pen) or stepped with the
 * arrow keys, a word to click as the target, and, from the service's answer, the loss, softmax
 * probabilities and the gradient p − onehot.
 */
export function mountLogits(section: HTMLElement, api: PlaygroundApi): void {
  const state: State = { logits: [...START_LOGITS], target: 0 }
  const chart = find<SVGSVGElement>(section, '.logit-chart')
  const lossValue = find(section, '[data-testid="loss-value"]')
  const pTarget = find(section, '.p-target')
  const perplexity = find(section, '.perplexity')
  const targetWord = find(section, '.target-word')
  const story = find(section, '.story')
  const error = find(section, '.error')
  const gauge = new LossGauge(find<SVGSVGElement>(section, '.gauge'))
  const probabilities = new ColumnChart(
    find<SVGSVGElement>(section, '.prob-chart'),
    'probability',
    WORDS.length,
    COLUMN
  )
  const gradients = new ColumnChart(find<SVGSVGElement>(section, '.grad-chart'), 'gradient', WORDS.length, COLUMN)
  gauge.show(null, WORDS.length)

  const call = api.latest<State, CrossEntropyResponse>({
    run: (input) =>
      api.client.crossEntropy({ logits: [input.logits], targets: [input.target], outputs: ['gradients'] }),
    show: (answer, input) => {
      const loss = answer.loss as number
      const gradient = (answer.gradients as number[][])[0]
      const p = gradient.map((g, i) => g + (i === input.target ? 1 : 0))
      lossValue.textContent = formatLoss(loss)
      pTarget.textContent = formatPercent(p[input.target])
      perplexity.textContent = formatPerplexity(answer.perplexity)
      gauge.show(loss, WORDS.length)
      story.textContent = storyOf(loss, p[input.target], answer.perplexity, WORDS[input.target])
      probabilities.show(p, input.target)
      gradients.show(gradient, input.target)
      showError(error, null)
    },
    fail: (message) => showError(error, message),
    busy: (busy) => lossValue.setAttribute('data-state', busy ? 'busy' : 'idle')
  })

  const bars = drawChart(chart, state, {
    setLogit: (index, value) => {
      state.logits[index] = Math.round(clamp(value, -LOGIT_LIMIT, LOGIT_LIMIT) * 100) / 100
      update()
    },
    setTarget: (index) => {
      state.target = index
      update()
    }
  })

  // All logits equal is the untrained model: p = 1/V for every word, a loss of exactly log V.
  find(section, '#logits-even').addEventListener('click', () => {
    state.logits.fill(0)
    update()
  })
  find(section, '#logits-reset').addEventListener('click', () => {
    state.logits.splice(0, WORDS.length, ...START_LOGITS)
    state.target = 0
    update()
  })

  function update(): void {
    bars.draw(state)
    targetWord.textContent = WORDS[state.target]
    call.request({ logits: [...state.logits], target: state.target })
  }
  update()
}

/** The numbers in words: how sure the model is, and how that compares with knowing nothing. */
function storyOf(loss: number, p: number, perplexity: number | null, word: string): string {
  const logV = Math.log(WORDS.length)
  const torn = `as unsure as a pick among ${formatPerplexity(perplexity)} words`
  if (loss > logV)
    return `“${word}” gets ${formatPercent(p)}: worse than an even guess over all ${WORDS.length}. Confident and wrong is expensive.`
  if (loss < 0.05) return `“${word}” gets ${formatPercent(p)}: confident and right, nearly free.`
  return `“${word}” gets ${formatPercent(p)}, ${torn}; knowing nothing would cost log ${WORDS.length} = ${logV.toFixed(2)}.`
}

interface ChartActions {
  setLogit: (index: number, value: number) => void
  setTarget: (index: number) => void
}

function yOf(logit: number): number {
  return ZERO_Y - logit * PIXELS_PER_LOGIT
}

function drawChart(chart: SVGSVGElement, state: State, actions: ChartActions): { draw: (state: State) => void } {
  chart.setAttribute('viewBox', `0 0 ${WIDTH} 264`)
  for (const logit of [-LOGIT_LIMIT, -4, 4, LOGIT_LIMIT]) {
    svg(chart, 'line', { class: 'grid', x1: 0, x2: WIDTH, y1: yOf(logit), y2: yOf(logit) })
  }
  svg(chart, 'line', { class: 'zero', x1: 0, x2: WIDTH, y1: ZERO_Y, y2: ZERO_Y })

  const columns = WORDS.map((word, i) => {
    const x = i * COLUMN + COLUMN / 2
    const column = svg(chart, 'g', {
      class: 'logit-column',
      'data-testid': `logit-bar-${i}`,
      role: 'slider',
      tabindex: 0,
      'aria-label': `logit of “${word}”`,
      'aria-valuemin': -LOGIT_LIMIT,
      'aria-valuemax': LOGIT_LIMIT,
      'aria-orientation': 'vertical'
    })
    svg(column, 'rect', {
      class: 'hit',
      x: x - COLUMN / 2 + 2,
      y: 8,
      width: COLUMN - 4,
      height: 2 * HALF_HEIGHT + 20,
      rx: 10
    })
    const bar = svg(column, 'rect', { class: 'logit-bar', x: x - 20, width: 40, rx: 4 })
    const knob = svg(column, 'rect', { class: 'knob', x: x - 24, width: 48, height: 8, rx: 4 })
    const value = svg(column, 'text', { class: 'bar-value', x, 'text-anchor': 'middle' })
    dragToSet(
      chart,
      column,
      () => state.logits[i],
      (logit) => actions.setLogit(i, logit)
    )
    column.addEventListener('keydown', (event) => {
      const step = event.shiftKey ? BIG_STEP : STEP
      const delta = {
        ArrowUp: step,
        ArrowRight: step,
        ArrowDown: -step,
        ArrowLeft: -step,
        PageUp: BIG_STEP,
        PageDown: -BIG_STEP
      }[event.key]
      if (delta !== undefined) actions.setLogit(i, state.logits[i] + delta)
      else if (event.key === 'Home') actions.setLogit(i, LOGIT_LIMIT)
      else if (event.key === 'End') actions.setLogit(i, -LOGIT_LIMIT)
      else return
      event.preventDefault()
    })

    const chip = svg(chart, 'g', {
      class: 'word',
      'data-testid': `target-${i}`,
      role: 'radio',
      tabindex: 0,
      'aria-label': `make “${word}” the target`
    })
    svg(chip, 'rect', { x: x - 36, y: WORD_Y - 18, width: 72, height: 28, rx: 14 })
    svg(chip, 'text', { class: 'word-label', x, y: WORD_Y + 1, 'text-anchor': 'middle' }, word)
    chip.addEventListener('click', () => actions.setTarget(i))
    chip.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' && event.key !== ' ') return
      event.preventDefault()
      actions.setTarget(i)
    })
    return { column, bar, knob, value, chip }
  })

  // The axis is drawn over the columns, so a highlighted column never hides it.
  for (const logit of [-LOGIT_LIMIT, -4, 4, LOGIT_LIMIT]) {
    svg(chart, 'text', { class: 'axis', x: 4, y: yOf(logit) - 4 }, logit > 0 ? `+${logit}` : String(logit))
  }

  return {
    draw: ({ logits, target }) => {
      columns.forEach(({ column, bar, knob, value, chip }, i) => {
        const top = yOf(Math.max(0, logits[i]))
        const bottom = yOf(Math.min(0, logits[i]))
        setAttributes(bar, { y: top, height: Math.max(0.5, bottom - top) })
        setAttributes(knob, { y: yOf(logits[i]) - 4 })
        setAttributes(value, { y: logits[i] >= 0 ? yOf(logits[i]) - 10 : yOf(logits[i]) + 22 })
        value.textContent = logits[i].toFixed(2)
        column.classList.toggle('target', i === target)
        column.setAttribute('aria-valuenow', String(logits[i]))
        column.setAttribute('aria-valuetext', `${logits[i].toFixed(2)}${i === target ? ', the target' : ''}`)
        chip.classList.toggle('target', i === target)
        chip.setAttribute('aria-checked', String(i === target))
      })
    }
  }
}

/**
 * Dragging moves the logit by the pointer's vertical travel, wherever the drag starts in the
 * column: a press alone changes nothing. Pointer events cover mouse, touch and pen; the chart
 * sets touch-action: none so a vertical drag does not scroll the page.
 */
function dragToSet(chart: SVGSVGElement, column: SVGGElement, get: () => number, set: (value: number) => void): void {
  column.addEventListener('pointerdown', (down) => {
    if (down.button !== 0) return
    down.preventDefault()
    column.focus()
    column.setPointerCapture(down.pointerId)
    const start = get()
    const logitsPerPixel = chart.viewBox.baseVal.height / chart.getBoundingClientRect().height / PIXELS_PER_LOGIT
    const move = (event: PointerEvent) => set(start - (event.clientY - down.clientY) * logitsPerPixel)
    const end = () => {
      column.removeEventListener('pointermove', move)
      column.removeEventListener('pointerup', end)
      column.removeEventListener('pointercancel', end)
      column.classList.remove('dragging')
    }
    column.classList.add('dragging')
    column.addEventListener('pointermove', move)
    column.addEventListener('pointerup', end)
    column.addEventListener('pointercancel', end)
  })
}
