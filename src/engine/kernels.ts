import { readFileSync } from 'node:fs'
import { KERNEL_WASM_FILE } from '../dist-path.js'
import { KERNEL_ENTRIES, type KernelEntry } from './abi.js'

/**
 * The kernel family's WebAssembly (src/kernels/assembly/, committed as wasm/kernels.wasm), and
 * typed handles on an instance of it. The module imports its memory, so one shared
 * WebAssembly.Memory serves the host (which writes tensors and call structs into it) and every
 * worker's instance (which computes on them in place).
 */

/** An entry point: rows [rowStart, rowEnd) of the call struct at `call`; `control` is the task's control word (0: none). */
export type RowsEntry = (call: number, rowStart: number, rowEnd: number, control: number) => number
export type Kernels = Record<KernelEntry, RowsEntry>

let compiled: WebAssembly.Module | undefined

/** The compiled module, read and compiled once per thread. */
export function kernelModule(): WebAssembly.Module {
  if (compiled === undefined) {
    let bytes: Buffer
    try {
      bytes = readFileSync(KERNEL_WASM_FILE)
    } catch (error) {
      throw new Error(`${KERNEL_WASM_FILE} is missing: run \`npm run build:wasm\``, { cause: error })
    }
    compiled = new WebAssembly.Module(new Uint8Array(bytes))
  }
  return compiled
}

/** An instance over `memory`, and its exports (entries and the ABI constants, as globals). */
export function instantiateKernels(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module = kernelModule()
): { kernels: Kernels; exports: WebAssembly.Exports } {
  const { exports } = new WebAssembly.Instance(module, { env: { memory } })
  const kernels = Object.fromEntries(KERNEL_ENTRIES.map((name) => [name, exports[name] as RowsEntry])) as Kernels
  return { kernels, exports }
}
