import { fileURLToPath } from 'node:url'

// Built artefacts (the wasm kernel, the playground) sit in the package root's dist/, whether the
// code runs from src/ (tests, tsx) or from dist/src/ (npm start, the image).
const fromSources = import.meta.url.endsWith('.ts')

/** The absolute path of `relative` within dist/. */
export function distPath(relative: string): string {
  return fileURLToPath(new URL(fromSources ? `../dist/${relative}` : `../${relative}`, import.meta.url))
}
