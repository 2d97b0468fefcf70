import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { duplicateKey, duplicateTopLevelKey } from '../../src/codec/duplicate-keys.js'

/** A key spelt plainly, or with some letters as \u escapes (the same key to JSON.parse). */
const spell = (key: string, escapes: boolean[]) =>
  `"${[...key]
    .map((c, i) =>
      escapes[i % escapes.length]
        ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
        : JSON.stringify(c).slice(1, -1)
    )
    .join('')}"`

describe('duplicate keys in JSON text', () => {
  it('finds exactly the top-level keys given twice, however spelt and spaced, and never a string value', () => {
    const keyArb = fc.constantFrom('logits', 'targets', 'weight', 'outputs', 'reduction', 'a"b', 'x\\y')
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(keyArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 3 }), fc.constantFrom('', ' ', '\n\t')),
          {
            minLength: 1,
            maxLength: 6
          }
        ),
        fc.constantFrom(
          '[[1, 2.5e-3], [-0, 4]]',
          '"targets\\": 1"',
          '["targets", "logits"]',
          '{"targets": {}}',
          'null'
        ),
        (entries, value) => {
          const text = `{${entries.map(([key, escapes, space]) => `${spell(key, escapes)}${space}:${space}${value}`).join(', ')}}`
          // The plain answer: the first key (as JSON.parse reads it) seen before.
          const seen = new Set<string>()
          let expected: string | undefined
          for (const [key] of entries) {
            if (seen.has(key)) {
              expected = key
              break
            }
            seen.add(key)
          }
          JSON.parse(text) // valid JSON, as the functions require
          expect(duplicateTopLevelKey(text)).toBe(expected)
          expect(duplicateKey(text)?.[0] === expected || duplicateKey(text)?.length === 2).toBe(true)
        }
      ),
      { numRuns: 500 }
    )
  })

  it('names a key given twice inside a nested object by its path', () => {
    expect(duplicateKey('{"logits": {"dtype": "F32", "shape": [1], "dtype": "F16"}}')).toEqual(['logits', 'dtype'])
    expect(duplicateKey('{"a": [{"k": 1}, {"k": 2}], "b": {"k": 1}}')).toBeUndefined()
    expect(duplicateKey('{"logits": {}, "targets": {}, "logits": {}}')).toEqual(['logits'])
  })
})
