import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

// The kernel's wasm is committed so that a fresh clone starts without compiling it; this is what
// keeps it honest. A change to the kernel sources, the compiler or the flags that is not rebuilt
// and committed fails here, as does a committed wasm that is not what its sources compile to.
const run = promisify(execFile)

describe('the committed wasm/kernels.wasm', () => {
  it('is byte for byte what src/kernels/assembly compiles to, as wasm/kernels.json records', {
    timeout: 120_000
  }, async () => {
    const script = new URL('../../scripts/build-wasm.mjs', import.meta.url).pathname
    const { stdout } = await run(process.execPath, [script, '--check'])
    expect(stdout).toContain('wasm/kernels.wasm is what src/kernels/assembly builds to')
  })
})
