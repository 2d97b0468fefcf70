import type { BatchShape } from './batch-input.js'
import { lossColor, textOn } from './colors.js'
import { formatLoss, formatPerplexity, svg } from './dom.js'

/** More cells than this would make the page crawl; the heatmap then shows the first sequences. */
export const MAX_CELLS = 65_536

const LABEL_WIDTH = 64
const PERPLEXITY_WIDTH = 96
const HEADER_HEIGHT = 22

export interface HeatmapData {
  shape: BatchShape
  /** Row-major B·T per-token losses, 0 at ignored positions. */
  tokenLosses: number[]
  /** One per sequence; null where a sequence has no counted position. */
  sequencePerplexities: (number | null)[]
}

/** Longer sequences wrap onto several bands of this many positions. */
export const BAND_POSITIONS = 128

/**
 * One row per sequence, one cell per position, coloured by its loss on the page's scale (log V in
 * the middle); padding is hatched. A sequence longer than BAND_POSITIONS wraps onto bands under
 * each other. Each sequence ends with its perplexity. Cells carry class "cell", ignored ones also
 * "ignored", and a tooltip with the numbers.
 */
export function drawHeatmap(element: SVGSVGElement, data: HeatmapData): { shownSequences: number } {
  const { sequences, positions, vocabulary, targets, ignoreIndex } = data.shape
  const logV = Math.log(Math.max(2, vocabulary))
  const shownPositions = Math.min(positions, MAX_CELLS)
  const shownSequences = Math.min(sequences, Math.max(1, Math.floor(MAX_CELLS / shownPositions)))
  const columns = Math.min(shownPositions, BAND_POSITIONS)
  const bands = Math.ceil(shownPositions / columns)
  const cell = Math.max(6, Math.min(40, Math.floor(900 / columns)))
  const height = bands > 1 ? Math.max(cell, 14) : Math.min(32, Math.max(cell, 18))
  const sequenceGap = bands > 1 ? 8 : 2
  const sequenceHeight = bands * (height + 1) - 1 + sequenceGap
  const width = LABEL_WIDTH + columns * cell + PERPLEXITY_WIDTH
  element.replaceChildren()
  element.setAttribute('viewBox', `0 0 ${width} ${HEADER_HEIGHT + shownSequences * sequenceHeight}`)
  element.setAttribute('width', String(width))
  element.setAttribute('data-sequences', String(shownSequences))
  element.setAttribute('data-positions', String(shownPositions))
  element.setAttribute('data-bands', String(bands))

  const pattern = svg(svg(element, 'defs'), 'pattern', {
    id: 'padding-hatch',
    width: 6,
    height: 6,
    patternUnits: 'userSpaceOnUse',
    patternTransform: 'rotate(45)'
  })
  svg(pattern, 'rect', { class: 'hatch-back', width: 6, height: 6 })
  svg(pattern, 'line', { class: 'hatch-line', x1: 0, y1: 0, x2: 0, y2: 6 })

  const tick = Math.max(1, niceStep(columns / Math.max(1, Math.floor((columns * cell) / 48))))
  for (let t = 0; t < columns; t += tick) {
    const x = LABEL_WIDTH + t * cell + cell / 2
    svg(element, 'text', { class: 'axis', x, y: 14, 'text-anchor': 'middle' }, String(t))
  }
  svg(element, 'text', { class: 'axis', x: width - 4, y: 14, 'text-anchor': 'end' }, 'perplexity')

  const writeValues = cell >= 28
  for (let b = 0; b < shownSequences; b++) {
    const top = HEADER_HEIGHT + b * sequenceHeight
    const middle = (band: number) => top + band * (height + 1) + height / 2 + 4
    svg(element, 'text', { class: 'row-label', x: LABEL_WIDTH - 8, y: middle(0), 'text-anchor': 'end' }, `seq ${b}`)
    for (let band = 1; band < bands; band++) {
      const label = `+${band * columns}`
      svg(element, 'text', { class: 'axis', x: LABEL_WIDTH - 8, y: middle(band) - 1, 'text-anchor': 'end' }, label)
    }
    for (let t = 0; t < shownPositions; t++) {
      const index = b * positions + t
      const ignored = targets !== null && targets[index] === ignoreIndex
      const loss = data.tokenLosses[index]
      const x = LABEL_WIDTH + (t % columns) * cell
      const y = top + Math.floor(t / columns) * (height + 1)
      const rect = svg(element, 'rect', {
        class: ignored ? 'cell ignored' : 'cell',
        x,
        y,
        width: Math.max(1, cell - 1),
        height,
        rx: Math.min(3, cell / 6),
        fill: ignored ? 'url(#padding-hatch)' : lossColor(loss, logV)
      })
      const target = targets === null ? '' : `, target ${targets[index]}`
      svg(
        rect,
        'title',
        {},
        ignored
          ? `seq ${b}, position ${t}: padding (ignore_index ${ignoreIndex})`
          : `seq ${b}, position ${t}${target}: loss ${formatLoss(loss)}`
      )
      if (writeValues && !ignored) {
        const attributes = { class: 'cell-value', x: x + cell / 2 - 0.5, y: y + height / 2 + 3.5 }
        svg(element, 'text', { ...attributes, 'text-anchor': 'middle', fill: textOn(loss, logV) }, loss.toFixed(1))
      }
    }
    const perplexity = formatPerplexity(data.sequencePerplexities[b])
    svg(element, 'text', { class: 'row-perplexity', x: width - 4, y: middle(0), 'text-anchor': 'end' }, perplexity)
  }
  return { shownSequences }
}

/** A legend for the colour scale, 0 to 2·log V with log V dashed, and for padding. */
export function drawLegend(element: SVGSVGElement, vocabulary: number): void {
  const logV = Math.log(Math.max(2, vocabulary))
  const scaleWidth = 340
  element.replaceChildren()
  element.setAttribute('viewBox', `0 0 ${scaleWidth + 120} 44`)
  const gradient = svg(svg(element, 'defs'), 'linearGradient', { id: 'loss-scale' })
  for (let i = 0; i <= 10; i++) {
    svg(gradient, 'stop', { offset: `${i * 10}%`, 'stop-color': lossColor((i / 10) * 2 * logV, logV) })
  }
  const middle = 8 + (scaleWidth - 16) / 2
  svg(element, 'rect', { x: 8, y: 6, width: scaleWidth - 16, height: 12, rx: 6, fill: 'url(#loss-scale)' })
  svg(element, 'line', { class: 'baseline', x1: middle, x2: middle, y1: 2, y2: 22 })
  svg(element, 'text', { class: 'axis', x: 8, y: 36 }, 'loss 0')
  svg(element, 'text', { class: 'axis', x: middle, y: 36, 'text-anchor': 'middle' }, `log V = ${logV.toFixed(2)}`)
  svg(element, 'text', { class: 'axis', x: scaleWidth - 8, y: 36, 'text-anchor': 'end' }, `≥ ${(2 * logV).toFixed(2)}`)
  svg(element, 'rect', {
    class: 'ignored-swatch',
    x: scaleWidth + 16,
    y: 4,
    width: 16,
    height: 16,
    rx: 3,
    fill: 'url(#padding-hatch)'
  })
  svg(element, 'text', { class: 'axis', x: scaleWidth + 38, y: 17 }, 'padding')
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw))
  for (const step of [1, 2, 5, 10]) if (raw <= step * power) return step * power
  return 10 * power
}
