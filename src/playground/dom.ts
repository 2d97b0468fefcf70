/** Small DOM helpers for the playground: SVG elements by attribute, and number formats. */

const SVG_NS = 'http://www.w3.org/2000/svg'

export type Attributes = Record<string, string | number>

/** A new SVG element with these attributes, appended to parent. */
export function svg<K extends keyof SVGElementTagNameMap>(
  parent: Element,
  tag: K,
  attributes: Attributes = {},
  text?: string
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag)
  setAttributes(element, attributes)
  if (text !== undefined) element.textContent = text
  parent.append(element)
  return element
}

export function setAttributes(element: Element, attributes: Attributes): void {
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
}

/** The element under root matching selector; a missing one is a bug in index.html. */
export function find<E extends Element = HTMLElement>(root: ParentNode, selector: string): E {
  const element = root.querySelector<E>(selector)
  if (element === null) throw new Error(`the playground page has no ${selector}`)
  return element
}

export function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value))
}

/** A loss or log-probability: four decimals, "—" for null. */
export function formatLoss(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(4)
}

/** A perplexity: three significant digits, grouped when large. */
export function formatPerplexity(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  if (value >= 1000) return Math.round(value).toLocaleString('en')
  return value.toPrecision(3)
}

export function formatPercent(value: number): string {
  if (value >= 0.995) return `${(value * 100).toFixed(value >= 0.9995 ? 0 : 1)}%`
  if (value >= 0.1) return `${Math.round(value * 100)}%`
  if (value >= 0.001) return `${(value * 100).toFixed(1)}%`
  return value === 0 ? '0%' : '<0.1%'
}

/** Shows message in an alert element, or hides it for null. */
export function showError(element: HTMLElement, message: string | null): void {
  element.hidden = message === null
  element.textContent = message ?? ''
}
