import { describe, expect, it } from 'vitest'
import {
  type CallLayout,
  COPY_BLOCKS_CALL,
  CROSS_ENTROPY_CALL,
  JSON_INDEX_CALL,
  KERNEL_CONSTANTS,
  KERNEL_ENTRIES,
  KERNEL_RESERVED_BYTES,
  LOGPROBS_CALL,
  NUMBER_ROWS_CALL,
  PRINT_ROWS_CALL,
  readCall,
  writeCall
} from '../../src/engine/abi.js'
import { instantiateKernels } from '../../src/engine/kernels.js'

// The host's ABI (src/engine/abi.ts) against the kernel module's own exports: every constant,
// every field offset and struct size, every entry point, and where the module's data ends.
const PAGE = 65_536
const memory = new WebAssembly.Memory({ initial: 4, maximum: 4, shared: true })
const { exports } = instantiateKernels(memory)

const globalValue = (name: string): unknown => {
  const value = exports[name]
  return value instanceof WebAssembly.Global ? value.value : undefined
}
/** labelSmoothing → LABEL_SMOOTHING, as the kernel names its globals. */
const snake = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()
const layouts: Array<CallLayout<string>> = [
  CROSS_ENTROPY_CALL,
  LOGPROBS_CALL,
  JSON_INDEX_CALL,
  NUMBER_ROWS_CALL,
  PRINT_ROWS_CALL,
  COPY_BLOCKS_CALL
]

describe('the host↔kernel ABI', () => {
  it('has every scalar constant equal to the kernel’s global of the same name', () => {
    for (const [name, value] of Object.entries(KERNEL_CONSTANTS)) {
      expect(globalValue(name), name).toBe(value)
    }
  })

  it('has every call-struct field at the kernel’s offset, and each struct’s size', () => {
    for (const layout of layouts) {
      for (const [name, field] of Object.entries(layout.fields)) {
        expect(globalValue(`${layout.prefix}${snake(name)}`), `${layout.prefix}${name}`).toBe(field.offset)
      }
      expect(globalValue(`${layout.prefix}BYTES`)).toBe(layout.bytes)
    }
  })

  it('knows every offset the kernel exports, and nothing the kernel does not', () => {
    const hostNames = new Set([
      ...Object.keys(KERNEL_CONSTANTS),
      ...layouts.flatMap((layout) => [
        `${layout.prefix}BYTES`,
        ...Object.keys(layout.fields).map((name) => `${layout.prefix}${snake(name)}`)
      ])
    ])
    const kernelGlobals = Object.keys(exports).filter((name) => exports[name] instanceof WebAssembly.Global)
    expect(new Set(kernelGlobals)).toEqual(hostNames)
  })

  it('has the entry points the engine calls, each taking (call, rowStart, rowEnd, control)', () => {
    const functions = Object.keys(exports).filter((name) => typeof exports[name] === 'function')
    expect(new Set(functions)).toEqual(new Set(KERNEL_ENTRIES))
    for (const entry of KERNEL_ENTRIES) expect((exports[entry] as (...args: number[]) => number).length).toBe(4)
  })

  it('lays fields out without overlap, f64s aligned, inside the struct', () => {
    for (const layout of layouts) {
      const spans = Object.values(layout.fields)
        .map(({ offset, type }) => ({ offset, end: offset + (type === 'f64' ? 8 : 4), type }))
        .sort((a, b) => a.offset - b.offset)
      for (const [i, span] of spans.entries()) {
        if (span.type === 'f64') expect(span.offset % 8).toBe(0)
        expect(span.end).toBeLessThanOrEqual(layout.bytes)
        if (i > 0) expect(span.offset).toBeGreaterThanOrEqual(spans[i - 1].end)
      }
    }
  })

  it('reads back what writeCall wrote, field by field', () => {
    for (const layout of layouts) {
      const values = Object.fromEntries(
        Object.entries(layout.fields).map(([name, { type }], i) => [name, type === 'f64' ? i + 0.25 : i * 1000 + 7])
      )
      writeCall(memory.buffer, 1024, layout, values)
      expect(readCall(memory.buffer, 1024, layout)).toEqual(values)
    }
  })

  it('keeps the module’s own data below KERNEL_RESERVED_BYTES, where the arena never allocates', () => {
    // A fresh memory is zeros; instantiating the module copied its data segments in.
    const fresh = new WebAssembly.Memory({ initial: 4, maximum: 4, shared: true })
    instantiateKernels(fresh)
    const bytes = new Uint8Array(fresh.buffer)
    expect(bytes.subarray(0, KERNEL_RESERVED_BYTES).some((byte) => byte !== 0)).toBe(true)
    expect(bytes.subarray(KERNEL_RESERVED_BYTES, 4 * PAGE).every((byte) => byte === 0)).toBe(true)
  })
})
