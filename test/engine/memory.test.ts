import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { copyInto } from '../../src/engine/memory.js'

// copyInto is `target.set(source, offset)` into kernel memory, staged when the two are skewed
// (see src/engine/memory.ts); it must write exactly the same bytes, and nothing else.

const memory = new WebAssembly.Memory({ initial: 8, maximum: 8, shared: true })
const shared = new Uint8Array(memory.buffer as unknown as SharedArrayBuffer)

describe('copyInto', () => {
  it('writes what target.set writes, at every skew, length and offset, and leaves the rest alone', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 255 }),
        (targetStart, length, offset, sourceStart, seed) => {
          const backing = new Uint8Array(sourceStart + length)
          for (let i = 0; i < backing.length; i++) backing[i] = (i * 31 + seed) & 255
          const source = backing.subarray(sourceStart)
          const targetLength = offset + length + 16
          const target = new Uint8Array(memory.buffer, targetStart, targetLength)
          shared.fill(seed ^ 0x5a, 0, targetStart + targetLength + 64)
          const expected = new Uint8Array(targetLength).fill(seed ^ 0x5a)
          expected.set(source, offset)
          copyInto(target, offset, source)
          expect(Buffer.compare(Buffer.from(target), Buffer.from(expected))).toBe(0)
          // Nothing past the target was touched either.
          expect(
            shared
              .subarray(targetStart + targetLength, targetStart + targetLength + 64)
              .every((b) => b === (seed ^ 0x5a))
          ).toBe(true)
          expect(shared.subarray(0, targetStart).every((b) => b === (seed ^ 0x5a))).toBe(true)
        }
      ),
      { numRuns: 300 }
    )
  })

  it('refuses a copy past the end of the target, as target.set does, writing nothing', () => {
    const target = new Uint8Array(memory.buffer, 3, 100_000)
    target.fill(0)
    // Aligned, then skewed (the staged path), each one byte too long.
    expect(() => copyInto(target, 8, new Uint8Array(99_993).fill(1))).toThrow(RangeError)
    expect(() => copyInto(target, 49, new Uint8Array(100_000).fill(1).subarray(1, 99_953))).toThrow(RangeError)
    expect(target.every((b) => b === 0)).toBe(true)
    copyInto(target, 49, new Uint8Array(100_000).fill(1).subarray(1, 99_952))
    expect(target.subarray(49).every((b) => b === 1)).toBe(true)
  })
})
