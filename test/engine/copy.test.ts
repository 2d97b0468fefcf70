import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { COPY_BLOCK_BYTES } from '../../src/engine/abi.js'
import { testEngine } from '../helper.js'

describe('copying within the kernel memory', () => {
  it('copies any range to any other, skewed or not, across block boundaries', async () => {
    const engine = testEngine({ memoryMegabytes: 16 })
    const memory = engine.openRequest()
    try {
      const length = 2 * COPY_BLOCK_BYTES + 4099
      const from = memory.bytes(length + 16)
      const to = memory.bytes(length + 16)
      for (let i = 0; i < from.length; i++) from[i] = (i * 131 + 7) & 0xff
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 15 }),
          fc.integer({ min: 0, max: 15 }),
          fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: length })),
          (fromAt, toAt, n) => {
            to.fill(0xee)
            engine.copy(to.subarray(toAt, toAt + n), from.subarray(fromAt, fromAt + n))
            expect(Buffer.compare(to.subarray(toAt, toAt + n), from.subarray(fromAt, fromAt + n))).toBe(0)
            // Not a byte either side.
            expect(to.subarray(0, toAt).every((byte) => byte === 0xee)).toBe(true)
            expect(to.subarray(toAt + n).every((byte) => byte === 0xee)).toBe(true)
          }
        ),
        { numRuns: 40 }
      )
    } finally {
      memory.release()
    }
  })

  it('takes only two views of the kernel memory, of one length', () => {
    const engine = testEngine({ memoryMegabytes: 16 })
    const memory = engine.openRequest()
    try {
      const inKernel = memory.bytes(64)
      expect(() => engine.copy(inKernel, new Uint8Array(64))).toThrow(/two views of the kernel memory/)
      expect(() => engine.copy(new Uint8Array(64), inKernel)).toThrow(/two views of the kernel memory/)
      expect(() => engine.copy(inKernel.subarray(0, 32), inKernel.subarray(32, 63))).toThrow(/of one length/)
    } finally {
      memory.release()
    }
  })
})
