import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { INTEGERS_HERE_BELOW, indexJson, parseNumbers, printNumbers } from '../../src/codec/json-text.js'
import { localEngine, openMemory } from '../kernels/local.js'

// The kernel's number reading and printing against V8's: every float read must be bit for bit
// Math.fround(JSON.parse(text)), every float32 printed must read back to itself and be as short
// as any decimal that does, and float64 and int32 values print exactly as JSON.stringify prints.

const engine = localEngine('wasm', 3)

/**
 * Reads `texts` as one JSON row through the index and the number kernel (or, with `here`, as the
 * main thread reads a short integer field).
 */
async function readRow(
  texts: string[],
  kind: 'f32' | 'i32' = 'f32',
  here = false,
  separators: string[] = []
): Promise<Float32Array | Int32Array | null> {
  const memory = openMemory()
  try {
    // The text between two numbers: `separators[i]` after the ith, or a bare comma.
    const row = texts.map((text, i) => (i === 0 ? '' : (separators[i - 1] ?? ',')) + text).join('')
    const body = Buffer.from(`{"x":[${row}]}`)
    const bytes = memory.bytes(body.length)
    bytes.set(body)
    const json = await indexJson(engine, memory, bytes, {})
    const field = json?.fields.get('x')
    if (json === null || field === undefined) return null
    const into =
      kind === 'f32'
        ? memory.allocate({ v: { type: 'f32', length: texts.length } }).v
        : memory.allocate({ v: { type: 'i32', length: texts.length } }).v
    // The kernel reads every field unless `here`: integers read on the main thread are held to it below.
    const ok = await parseNumbers(engine, memory, json, field, into, {}, here ? INTEGERS_HERE_BELOW : 0)
    return ok ? into.slice() : null
  } finally {
    memory.release()
  }
}

async function print(values: Float32Array | Float64Array | Int32Array, shape = [values.length]): Promise<string> {
  const memory = openMemory()
  try {
    const copy =
      values instanceof Float32Array
        ? memory.allocate({ v: { type: 'f32', length: values.length } }).v
        : values instanceof Float64Array
          ? memory.allocate({ v: { type: 'f64', length: values.length } }).v
          : memory.allocate({ v: { type: 'i32', length: values.length } }).v
    copy.set(values)
    const chunks = await printNumbers(engine, memory, copy, shape, {})
    return Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))).toString('latin1')
  } finally {
    memory.release()
  }
}

/** Reads `texts` as float32s: Math.fround(JSON.parse) bit for bit, or refused when one overflows float32. */
const expectF32 = async (texts: string[]) => {
  const read = await readRow(texts)
  const expected = Float32Array.from(texts, (text) => Math.fround(JSON.parse(text)))
  if (!expected.every(Number.isFinite)) {
    expect(read).toBeNull()
    return
  }
  expect(read).not.toBeNull()
  const same = new Uint32Array((read as Float32Array).buffer)
  const want = new Uint32Array(expected.buffer)
  for (let i = 0; i < texts.length; i++) {
    if (same[i] !== want[i]) expect({ text: texts[i], got: read?.[i] }).toEqual({ text: texts[i], got: expected[i] })
  }
}

/** A float32's bits → the float (finite ones only). */
const float32 = fc
  .integer({ min: 0, max: 0xffffffff })
  .map((bits) => new Float32Array(new Uint32Array([bits]).buffer)[0])
  .filter(Number.isFinite)

/** Doubles whose float32 rounding is finite: the values a logit may take. */
const inFloat32Range = fc
  .double({ noNaN: true, noDefaultInfinity: true })
  .filter((x) => Number.isFinite(Math.fround(x)))

/** The exact decimal expansion of a double, to `digits` significant digits, with a small nudge. */
function decimal(value: number, digits: number): string {
  return value.toExponential(Math.min(99, digits - 1))
}

const RUNS = { numRuns: 40 }

describe('reading JSON numbers in the kernel', () => {
  it('reads random doubles, as JavaScript prints them, as Math.fround(JSON.parse)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(inFloat32Range, { minLength: 1, maxLength: 300 }), async (values) => {
        await expectF32(values.map((value) => JSON.stringify(value)))
      }),
      RUNS
    )
  })

  it('reads widened float32 values and the decimals either side of float32 midpoints', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(float32, { minLength: 1, maxLength: 100 }), async (values) => {
        const texts: string[] = []
        for (const value of values) {
          texts.push(String(value))
          // The midpoint to the next float32 up, exactly (a double), and a hair either side.
          const bits = new Uint32Array(new Float32Array([Math.abs(value)]).buffer)[0]
          const next = new Float32Array(new Uint32Array([bits + 1]).buffer)[0]
          if (!Number.isFinite(next)) continue
          const middle = (Math.abs(value) + next) / 2
          const sign = value < 0 ? '-' : ''
          texts.push(sign + decimal(middle, 40))
          texts.push(sign + decimal(middle * (1 + 2 ** -52), 30))
          texts.push(sign + decimal(middle * (1 - 2 ** -53), 30))
          texts.push(sign + decimal(middle, 17))
          texts.push(sign + decimal(middle, 9))
        }
        await expectF32(texts)
      }),
      RUNS
    )
  })

  it('reads 17- to 40-digit mantissas, subnormals, float32 limits, -0 and exponents past ±400', async () => {
    const digits = fc.stringMatching(/^[1-9][0-9]{16,39}$/)
    const exponent = fc.integer({ min: -460, max: 460 })
    const text = fc
      .tuple(fc.boolean(), digits, fc.integer({ min: 1, max: 39 }), exponent)
      .map(([negative, mantissa, point, e]) => {
        const at = Math.min(point, mantissa.length - 1)
        return `${negative ? '-' : ''}${mantissa.slice(0, at)}.${mantissa.slice(at)}e${e}`
      })
    await fc.assert(
      fc.asyncProperty(fc.array(text, { minLength: 1, maxLength: 200 }), async (texts) => {
        // Row by row: one overflowing value refuses its whole row.
        for (const one of texts) await expectF32([one])
      }),
      RUNS
    )
    await expectF32([
      '-0',
      '0',
      '-0.0e5',
      '0e-999',
      '1e-400',
      '-1e-400',
      '1.401298464324817e-45',
      '7.006492321624085e-46',
      '7.006492321624086e-46',
      '1.1754942106924411e-38',
      '1.1754943508222875e-38',
      '3.4028234663852886e38',
      '3.4028235677973366e38',
      '3.4028235677973362e38',
      '4.9406564584124654e-324',
      '2.2250738585072011e-308',
      '2.2250738585072012e-308',
      '1.7976931348623157e308',
      '9007199254740993',
      '0.1',
      '1E2',
      '1e+2',
      '123456789012345678901234567890',
      '0.000000000000000000000000000000000000000000001'
    ])
  })

  it('reads the usual shape, -d.ddd with up to 19 digits and no exponent, as Math.fround(JSON.parse)', async () => {
    // The kernel reads this shape its own quick way (SIMD digit masks, and for float32 a binary64
    // product where it decides), once 32 bytes or more follow: rows of 20 or more hold to that.
    const usual = fc
      .tuple(
        fc.boolean(),
        fc.stringMatching(/^(0|[1-9][0-9]{0,9})$/),
        fc.option(fc.stringMatching(/^[0-9]{1,18}$/), { nil: undefined })
      )
      .map(
        ([negative, whole, fraction]) => `${negative ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}`
      )
    // Float32 midpoints written out to as many decimals as the shape holds, and a hair either
    // side: where the product alone cannot decide.
    const nearMidpoint = float32
      .filter((value) => Math.abs(value) >= 1e-7 && Math.abs(value) < 1e8)
      .chain((value) => {
        const bits = new Uint32Array(new Float32Array([Math.abs(value)]).buffer)[0]
        const next = new Float32Array(new Uint32Array([bits + 1]).buffer)[0]
        const middle = (Math.abs(value) + next) / 2
        const decimals = Math.min(16, 19 - String(Math.floor(middle)).length)
        const sign = value < 0 ? '-' : ''
        return fc.constantFrom(
          sign + middle.toFixed(decimals),
          sign + middle.toFixed(decimals - 1),
          sign + (middle * (1 + 2 ** -52)).toFixed(decimals),
          sign + (middle * (1 - 2 ** -53)).toFixed(decimals)
        )
      })
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(usual, nearMidpoint), { minLength: 20, maxLength: 300 }), async (texts) => {
        await expectF32(texts)
      }),
      { numRuns: 200 }
    )
    // Midpoints themselves, exactly: 1 + 2^-24 ties to even (1), 1 + 3·2^-24 to 1 + 2^-22.
    await expectF32([
      ...Array.from({ length: 20 }, () => '1.000000059604644775390625'),
      '1.000000059604644775',
      '1.0000001788139343',
      '-1.00000017881393432617',
      '0.0000001',
      '12345678.9',
      '123456789.5',
      ...Array.from({ length: 20 }, () => '0.5')
    ])
  })

  it('reads the wider shapes, zeros after "0." and exponents of 1 to 3 digits, as Math.fround(JSON.parse)', async () => {
    // What JSON.stringify and Python's json write for probabilities and other small values
    // (0.000046743367205959314, 3.985238626758787e-7, 5.9604645e-08): the kernel reads these a
    // quicker way too, with at most 19 significant digits, once 32 bytes or more follow.
    const zerosFirst = fc
      .tuple(fc.boolean(), fc.integer({ min: 0, max: 12 }), fc.stringMatching(/^[1-9][0-9]{0,18}$/))
      .map(([negative, zeros, digits]) => `${negative ? '-' : ''}0.${'0'.repeat(zeros)}${digits}`)
    const withExponent = fc
      .tuple(
        fc.boolean(),
        fc.stringMatching(/^(0|[1-9][0-9]{0,7})$/),
        fc.option(fc.stringMatching(/^[0-9]{1,18}$/), { nil: undefined }),
        fc.constantFrom('e', 'E', 'e-', 'e+', 'E-'),
        fc.stringMatching(/^[0-9]{1,3}$/)
      )
      .map(
        ([negative, whole, fraction, e, power]) =>
          `${negative ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}${e}${power}`
      )
    // Float32 midpoints written both ways, and a hair either side.
    const nearMidpoint = float32
      .filter((value) => value !== 0)
      .chain((value) => {
        const bits = new Uint32Array(new Float32Array([Math.abs(value)]).buffer)[0]
        const next = new Float32Array(new Uint32Array([bits + 1]).buffer)[0]
        const middle = (Math.abs(value) + next) / 2
        const sign = value < 0 ? '-' : ''
        const written = [16, 17, 18].flatMap((digits) => [
          middle.toExponential(digits),
          (middle * (1 + 2 ** -52)).toExponential(digits),
          (middle * (1 - 2 ** -53)).toExponential(digits)
        ])
        const zeros = -Math.floor(Math.log10(middle)) - 1
        if (middle < 1 && zeros <= 20) written.push(middle.toFixed(zeros + 17), middle.toFixed(zeros + 16))
        return fc.constantFrom(...written.map((text) => sign + text))
      })
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(zerosFirst, withExponent, nearMidpoint), { minLength: 20, maxLength: 300 }),
        async (texts) => {
          await expectF32(texts)
        }
      ),
      { numRuns: 200 }
    )
    const more = Array.from({ length: 20 }, (_, i) => `-${i}.125e-3`)
    await expectF32([
      '0.000046743367205959314',
      '3.985238626758787e-7',
      '5.9604645e-08',
      '1E+38',
      '3.4028235e38',
      '1.401298464324817e-45',
      '7e-46',
      '-0.0000',
      '0e-999',
      '1e-999',
      '123.456e-20',
      '0.00000000000000000000000000001',
      ...more
    ])
    // More than three exponent digits are read the long way, the same.
    await expectF32(['1e0005', '1e-0045', '2.5e-0000000007', ...more])
  })

  it('reads exactly what the fast algorithms cannot decide: a hair past a halfway point between doubles', async () => {
    // h = 1 + 2^-24 + 2^-53 is halfway between the double m = 1 + 2^-24 (a float32 midpoint) and
    // the next double up. A hair above h reads as that double, whose float32 is 1 + 2^-23; the
    // truncated first 19 digits alone would read as m, whose float32 ties to even at 1.
    const exact = ((2n ** 53n + 2n ** 29n + 1n) * 5n ** 53n).toString()
    const above = `${exact[0]}.${exact.slice(1)}0001`
    const below = `${exact[0]}.${exact.slice(1, -1)}${Number(exact.at(-1)) - 1}9999`
    expect(Math.fround(JSON.parse(above))).toBe(1 + 2 ** -23)
    expect(Math.fround(JSON.parse(below))).toBe(1)
    await expectF32([above, below, `-${above}`, '0.5', above])
  })

  it('reads integers for int32 tensors: 1.0 and 1e2 are integers, 1.5 is not', async () => {
    expect(Array.from((await readRow(['0', '1.0', '1e2', '-100', '2147483647', '-2147483648'], 'i32')) ?? [])).toEqual([
      0, 1, 100, -100, 2147483647, -2147483648
    ])
    expect(await readRow(['1.5'], 'i32')).toBeNull()
    expect(await readRow(['2147483648'], 'i32')).toBeNull()
    expect(await readRow(['1e400'], 'i32')).toBeNull()
  })

  it('reads a short integer field on the main thread exactly as the kernel does', async () => {
    const integer = fc.oneof(
      fc.integer().map(String),
      fc.integer({ min: -3e9, max: 3e9 }).map(String),
      fc.integer({ min: -100, max: 100 }).map((n) => `${n}.0`),
      fc.tuple(fc.integer({ min: -99, max: 99 }), fc.integer({ min: -3, max: 12 })).map(([m, e]) => `${m}e${e}`),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
      fc.constantFrom('1.5', '-0', '-0.0', '1E2', '100e-2', '1e400', '2147483648', '-2147483649', '"1"', 'true', '01')
    )
    await fc.assert(
      fc.asyncProperty(fc.array(integer, { minLength: 1, maxLength: 40 }), async (texts) => {
        const kernel = await readRow(texts, 'i32')
        const here = await readRow(texts, 'i32', true)
        expect(here === null ? null : Array.from(here)).toEqual(kernel === null ? null : Array.from(kernel))
      }),
      { numRuns: 300 }
    )
  })

  it('reads numbers apart by any JSON spacing around their commas, and refuses anything else between them', async () => {
    // "," (JSON.stringify) and ", " (Python's json.dumps) are read the quick way, any other
    // spacing the general way.
    const separator = fc.constantFrom(',', ', ', ',  ', ' ,', ' , ', ',\n  ', ',\t', '\r\n,\r\n')
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(inFloat32Range.map(String), separator), { minLength: 1, maxLength: 60 }),
        async (pairs) => {
          const texts = pairs.map(([text]) => text)
          const read = await readRow(
            texts,
            'f32',
            false,
            pairs.map(([, between]) => between)
          )
          expect(read).not.toBeNull()
          expect(Array.from(read ?? [])).toEqual(texts.map((text) => Math.fround(JSON.parse(text))))
        }
      ),
      RUNS
    )
    const texts = Array.from({ length: 24 }, (_, i) => `${i}.5`)
    for (const bad of [',,', ', ,', ' ', ',x', ';', ', ,\n']) {
      for (const at of [0, 11, 22]) {
        const separators = texts.map((_, i) => (i === at ? bad : ', '))
        expect(await readRow(texts, 'f32', false, separators), `${JSON.stringify(bad)} after number ${at}`).toBeNull()
      }
    }
  })

  it('takes nothing JSON does not: leading zeros, bare points, signs, words, overflowing float32', async () => {
    for (const text of [
      '01',
      '1.',
      '.5',
      '+1',
      '-',
      '1e',
      '1e+',
      'NaN',
      'Infinity',
      '0x10',
      '"1"',
      'true',
      '1e39',
      '-3.5e38',
      '00.5',
      '-01.25',
      '1.5e',
      '1.5x',
      '1.2.3',
      '--1',
      '-.5',
      '1e-',
      '1E',
      '1e+-5',
      '2.5e-',
      '0.00e',
      '1e1234'
    ]) {
      expect(await readRow([text]), text).toBeNull()
      // Where 32 bytes or more follow, the quick reading meets it first: it must refuse it too.
      const more = Array.from({ length: 20 }, (_, i) => `-${i}.125`)
      expect(await readRow([text, ...more]), `${text} first`).toBeNull()
      expect(await readRow([...more, text, ...more]), `${text} between`).toBeNull()
    }
  })
})

describe('printing numbers in the kernel', () => {
  it('prints each float32 as the shortest decimal that reads back to it, laid out as JavaScript would', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(float32, { minLength: 1, maxLength: 300 }), async (values) => {
        const floats = Float32Array.from(values)
        const text = await print(floats)
        const read = JSON.parse(text) as number[]
        expect(read.length).toBe(floats.length)
        for (let i = 0; i < floats.length; i++) {
          expect(Object.is(Math.fround(read[i]), floats[i])).toBe(true)
        }
        // Shortest: no decimal with fewer significant digits reads back; the layout is JavaScript's.
        const printed = text.slice(1, -1).split(',')
        for (let i = 0; i < floats.length; i++) {
          const value = floats[i]
          if (value === 0) {
            expect(printed[i]).toBe(Object.is(value, -0) ? '-0' : '0')
            continue
          }
          let shortest = ''
          for (let precision = 1; precision <= 9; precision++) {
            const candidate = Number(value.toPrecision(precision))
            if (Math.fround(candidate) === value) {
              shortest = String(candidate)
              break
            }
          }
          const digits = (s: string) =>
            s.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').length
          expect(digits(printed[i])).toBeLessThanOrEqual(digits(shortest))
          expect(/^-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][0-9]+)?$/.test(printed[i])).toBe(true)
          if (digits(printed[i]) === digits(shortest) && Number(printed[i]) === Number(shortest)) {
            expect(printed[i]).toBe(shortest)
          }
        }
      }),
      RUNS
    )
    expect(
      await print(Float32Array.of(0.1, -2.5e-7, 1e21, 1e20, 123456, 3.4028234663852886e38, 1.401298464324817e-45))
    ).toBe('[0.1,-2.5e-7,1e+21,100000000000000000000,123456,3.4028235e+38,1e-45]')
  })

  it('prints float64 and int32 values exactly as JSON.stringify does, in the nesting of their shape', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.double(), { minLength: 6, maxLength: 6 }), async (values) => {
        const doubles = Float64Array.from(values)
        expect(await print(doubles, [2, 3])).toBe(JSON.stringify([values.slice(0, 3), values.slice(3)]))
        expect(await print(doubles, [1, 2, 3])).toBe(JSON.stringify([[values.slice(0, 3), values.slice(3)]]))
      }),
      RUNS
    )
    const ints = Int32Array.of(1, -2, 2147483647, -2147483648)
    expect(await print(ints, [2, 2])).toBe('[[1,-2],[2147483647,-2147483648]]')
  })

  it('nests float32 rows as (B, T, V) across task boundaries', async () => {
    const values = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 8 - 1)
    const nested = [0, 1].map((b) =>
      [0, 1, 2].map((t) => Array.from(values.subarray((b * 3 + t) * 4, (b * 3 + t + 1) * 4)))
    )
    expect(await print(values, [2, 3, 4])).toBe(JSON.stringify(nested))
  })
})
