import { fileURLToPath } from 'node:url'

// Built artefacts (the wasm kernel, the playground) sit in the package root's dist/, whether the
// code runs from src/ (tests, tsx) or from dist/src/ (npm start, the image).
const fromSources = import.meta.url.endsWith('.ts')

/** The absolute path of `relative` within dist/. */
export function distPath(relative: string): string {
  return fileURLToPath(new URL(fromSources ? `../dist/${relative}` : `../${relative}`, import.meta.url))
}

/**
 * The kernel's WebAssembly: under the sources, the committed wasm/kernels.wasm itself; when built,
 * the copy that `npm run build` puts in dist/wasm/, so that dist/ is all an image needs.
 */
export const KERNEL_WASM_FILE = fromSources
  ? fileURLToPath(new URL('../wasm/kernels.wasm', import.meta.url))
  : distPath('wasm/kernels.wasm')
