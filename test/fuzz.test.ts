import fc from 'fast-check'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { describe, expect, it } from 'vitest'
import { buildForFile, expectArrayClose, expectScalarClose } from './helper.js'
import { referenceCrossEntropy } from './oracles/reference.js'

// Hostile and random input through the whole app (app.inject): every case gets a 4xx JSON error
// naming what is wrong, or a correct 200; never a 5xx, a hang or a crash. 2,400 cases in all.

const app: FastifyInstance = await buildForFile()

/** What every answer must be, whatever was sent. */
function expectCleanAnswer(res: LightMyRequestResponse): void {
  expect(res.statusCode === 200 || (res.statusCode >= 400 && res.statusCode < 500)).toBe(true)
  const body = res.json()
  expect(res.body).not.toMatch(/\n\s+at /) // no stack trace
  if (res.statusCode !== 200) {
    expect(body.statusCode).toBe(res.statusCode)
    expect(body.code).toMatch(/^XENT_[A-Z_]+$/)
    expect(typeof body.message).toBe('string')
    expect(body.message.length).toBeGreaterThan(0)
  }
}

const send = (payload: string | Buffer, contentType = 'application/json') =>
  app.inject({ method: 'POST', url: '/v1/cross-entropy', headers: { 'content-type': contentType }, payload })

interface ValidBody {
  logits: number[][]
  targets: number[]
  reduction?: 'mean' | 'sum' | 'none'
  label_smoothing?: number
  outputs?: Array<'token_losses' | 'gradients'>
}

const validBody: fc.Arbitrary<ValidBody> = fc
  .record({ rows: fc.integer({ min: 1, max: 4 }), vocab: fc.integer({ min: 1, max: 8 }) })
  .chain(({ rows, vocab }) =>
    fc.record(
      {
        logits: fc.array(
          fc.array(
            fc.integer({ min: -320, max: 320 }).map((k) => k / 16),
            { minLength: vocab, maxLength: vocab }
          ),
          { minLength: rows, maxLength: rows }
        ),
        targets: fc.array(fc.oneof(fc.integer({ min: 0, max: vocab - 1 }), fc.constant(-100)), {
          minLength: rows,
          maxLength: rows
        }),
        reduction: fc.constantFrom('mean' as const, 'sum' as const, 'none' as const),
        label_smoothing: fc.constantFrom(0, 0.1),
        outputs: fc.subarray(['token_losses' as const, 'gradients' as const])
      },
      { requiredKeys: ['logits', 'targets'] }
    )
  )

/** A 200 must be right: the loss and token losses of the textbook computation. */
function expectCorrect(body: ValidBody, answer: Record<string, unknown>): void {
  const reference = referenceCrossEntropy({
    logits: body.logits,
    targets: body.targets,
    ignoreIndex: -100,
    labelSmoothing: body.label_smoothing ?? 0,
    reduction: body.reduction ?? 'mean'
  })
  if ((body.reduction ?? 'mean') === 'none') expectArrayClose(answer.loss, reference.loss, 'loss')
  else {
    const loss = reference.loss as number
    expectScalarClose(answer.loss as number | null, Number.isNaN(loss) ? null : loss, 'loss')
  }
  if ((body.outputs ?? ['token_losses']).includes('token_losses')) {
    expectArrayClose(answer.token_losses, reference.tokenLoss, 'token_losses')
  }
}

/** Ways to spoil a valid body, each on the serialized text or on the value. */
const NOT_A_NUMBER = ['"NaN"', '"Infinity"', '"-Infinity"', '"1e999"', 'null', 'true', '{}', '[]', '"0x10"', '""']
const HUGE_OR_NEGATIVE = ['1e300', '-1e300', '2147483648', '-2147483649', '1.5', '-1', '1e999', '-0.5']

const mutation = fc.oneof(
  // A number swapped for something that is not one (wrong type, NaN-like string).
  fc.record({ kind: fc.constant('not-a-number'), pick: fc.nat(), value: fc.constantFrom(...NOT_A_NUMBER) }),
  // A row one shorter or longer than the others (ragged).
  fc.record({ kind: fc.constant('ragged'), pick: fc.nat(), value: fc.constant('') }),
  // A target (or option) far outside its range, or not an integer.
  fc.record({ kind: fc.constant('huge-target'), pick: fc.nat(), value: fc.constantFrom(...HUGE_OR_NEGATIVE) }),
  // Logits buried under many more array levels (deep nesting).
  fc.record({ kind: fc.constant('deep'), pick: fc.integer({ min: 1, max: 3000 }), value: fc.constant('') }),
  // Prototype-poisoning keys, at the top or inside.
  fc.record({
    kind: fc.constant('poison'),
    pick: fc.nat(),
    value: fc.constantFrom('"__proto__":{"polluted":true}', '"constructor":{"prototype":{"polluted":true}}')
  }),
  // Fields of the wrong type or unknown ones.
  fc.record({
    kind: fc.constant('field'),
    pick: fc.nat(),
    value: fc.constantFrom(
      '"reduction":"avg"',
      '"reduction":1',
      '"ignore_index":"x"',
      '"label_smoothing":2',
      '"outputs":["everything"]',
      '"weight":[1]',
      '"extra":1',
      '"targets":[]',
      '"logits":[]',
      '"logits":[[]]'
    )
  })
)

function mutate(body: ValidBody, change: { kind: string; pick: number; value: string }): string {
  const text = JSON.stringify(body)
  switch (change.kind) {
    case 'not-a-number': {
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)]
      const target = numbers[change.pick % numbers.length]
      return text.slice(0, target.index) + change.value + text.slice((target.index ?? 0) + target[0].length)
    }
    case 'ragged': {
      const logits = body.logits.map((row) => [...row])
      const row = logits[change.pick % logits.length]
      if (change.pick % 2 === 0 || row.length === 1) row.push(0.5)
      else row.pop()
      return JSON.stringify({ ...body, logits })
    }
    case 'huge-target': {
      const i = change.pick % body.targets.length
      const targets = body.targets.map((t, k) => (k === i ? '@' : t))
      return JSON.stringify({ ...body, targets }).replace('"@"', change.value)
    }
    case 'deep': {
      const deep = `${'['.repeat(change.pick)}${JSON.stringify(body.logits)}${']'.repeat(change.pick)}`
      return JSON.stringify({ ...body, logits: '@' }).replace('"@"', deep)
    }
    default: {
      // poison / field: insert at the top level, or (poison) inside the first row's object form.
      const inner = change.kind === 'poison' && change.pick % 2 === 1
      if (inner) return text.replace('"logits":[', `"logits":{${change.value},"0":`).replace(/\]\]/, ']}')
      return `{${change.value},${text.slice(1)}`
    }
  }
}

describe('fuzzing the JSON route', () => {
  it('answers random JSON values with a 4xx JSON error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        const res = await send(JSON.stringify(value) ?? 'null')
        expectCleanAnswer(res)
      }),
      { numRuns: 500 }
    )
  })

  it('answers random text as JSON with a 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200, unit: 'binary' }), async (text) => {
        expectCleanAnswer(await send(text))
      }),
      { numRuns: 300 }
    )
  })

  it('answers valid bodies correctly', async () => {
    await fc.assert(
      fc.asyncProperty(validBody, async (body) => {
        const res = await send(JSON.stringify(body))
        expect(res.statusCode).toBe(200)
        expectCorrect(body, res.json())
      }),
      { numRuns: 200 }
    )
  })

  it('answers mutated bodies with a 4xx naming the problem, or a correct 200', async () => {
    await fc.assert(
      fc.asyncProperty(validBody, mutation, async (body, change) => {
        const res = await send(mutate(body, change))
        expectCleanAnswer(res)
        if (res.statusCode !== 200) {
          // The message names the field at fault, or says the body is not JSON.
          expect(res.json().message).toMatch(
            /logits|targets|reduction|ignore_index|label_smoothing|outputs|weight|extra|__proto__|constructor|JSON/
          )
        }
        // A mutation may leave a body valid (a shorter row of one, 1.5 → still a bad target...):
        // then the answer must be right for what was actually sent.
        if (res.statusCode === 200) {
          const sent = JSON.parse(mutate(body, change))
          expectCorrect(sent, res.json())
        }
      }),
      { numRuns: 800 }
    )
  })
})

describe('fuzzing the safetensors route', () => {
  it('answers random bytes with a 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
        expectCleanAnswer(await send(Buffer.from(bytes), 'application/octet-stream'))
      }),
      { numRuns: 300 }
    )
  })

  it('answers a plausible header over random bytes with a 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.uint8Array({ maxLength: 256 }), async (header, tail) => {
        const json = Buffer.from(JSON.stringify(header) ?? 'null')
        const length = Buffer.alloc(8)
        length.writeBigUInt64LE(BigInt(json.length))
        expectCleanAnswer(await send(Buffer.concat([length, json, tail]), 'application/octet-stream'))
      }),
      { numRuns: 300 }
    )
  })

  it('is still whole afterwards: serving, with all its kernel memory back', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
    const res = await send(JSON.stringify({ logits: [[1, 2]], targets: [1] }))
    expect(res.statusCode).toBe(200)
    expect(app.engine.arena.usedBytes).toBe(0)
  })
})
