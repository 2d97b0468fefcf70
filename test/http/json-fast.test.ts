import { once } from 'node:events'
import { type AddressInfo, connect } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { INDEX_HERE_BELOW, indexJson } from '../../src/codec/json-text.js'
import { blockBytes } from '../../src/engine/memory.js'
import { build, buildForFile, metricValue, readRawAnswer, safetensorsFile } from '../helper.js'

// JSON bodies are read by the workers, straight from kernel memory, and answers printed by them.
// The general reading (JSON.parse, the schema, the plain decoders) is the oracle: a body whose
// first key is spelt with an escape ("\u006cogits") is one the fast reading declines, so the same
// request goes the general way, and both must give the same answer, or the same error, to the byte.

const app = await buildForFile()

/** The same JSON text with its "logits" key escaped, which only the general reading takes. */
const general = (text: string) => text.replace('"logits"', '"\\u006cogits"')

const send = (url: string, text: string) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: text })

const readings = async () => ({
  workers: await metricValue(app, 'xent_json_bodies_total{reading="workers"}'),
  general: await metricValue(app, 'xent_json_bodies_total{reading="general"}')
})

async function expectSameAnswer(url: string, text: string): Promise<string> {
  expect(text).toContain('"logits"')
  const before = await readings()
  const fast = await send(url, text)
  const between = await readings()
  const slow = await send(url, general(text))
  // The escaped spelling always goes the general way; a good body never does.
  expect((await readings()).general).toBe(between.general + 1)
  if (fast.statusCode === 200) expect(between.workers).toBe(before.workers + 1)
  // The escape is 5 bytes longer: a position JSON.parse gives past it moves by as much.
  const at = text.indexOf('"logits"')
  const slowBody = slow.body.replace(/at position (\d+)/, (_, n) => `at position ${Number(n) > at ? Number(n) - 5 : n}`)
  expect({ status: fast.statusCode, body: fast.body }).toEqual({ status: slow.statusCode, body: slowBody })
  return fast.body
}

/** Logits as JSON text: doubles as JavaScript prints them, with spaces and newlines here and there. */
const logitsText = (values: number[][][], spaced: boolean) =>
  spaced
    ? `[\n ${values.map((matrix) => `[ ${matrix.map((row) => `[ ${row.join(' , ')} ]`).join(',\n')} ]`).join(' , ')} ]`
    : JSON.stringify(values)

const logitValue = fc.oneof(
  fc.double({ min: -30, max: 30, noNaN: true }),
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom(0, -0, 1e-45, 3.4e38, -3.4e38)
)

describe('JSON read by the workers', () => {
  it('gives what the general reading gives, for every option and both shapes', async () => {
    const outputs = ['token_losses', 'gradients', 'entropy', 'target_logprobs', 'predictions', 'accuracy', 'z_loss']
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom('mean', 'sum', 'none'),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        async (b, t, v, flat, spaced, reduction, seed) => {
          const random = fc.sample(fc.array(logitValue, { minLength: b * t * v, maxLength: b * t * v }), {
            seed,
            numRuns: 1
          })[0]
          const logits = Array.from({ length: b }, (_, i) =>
            Array.from({ length: t }, (_, j) => random.slice((i * t + j) * v, (i * t + j + 1) * v))
          )
          const targets = logits.map((matrix, i) =>
            matrix.map((_, j) => ((i + j + seed) % (v + 1)) - (j === 1 ? 100 : 0))
          )
          const safe = targets.map((row) => row.map((x) => (x >= 0 && x < v ? x : -100)))
          const options = `"reduction":"${reduction}","outputs":${JSON.stringify(outputs)},"z_loss":1e-4`
          const text = flat
            ? `{"logits":${JSON.stringify(logits.flat())},"targets":${JSON.stringify(safe.flat())},${options}}`
            : `{ "logits" : ${logitsText(logits, spaced)} ,\n "targets": ${JSON.stringify(safe)}, ${options} }`
          await expectSameAnswer('/v1/cross-entropy', text)
          await expectSameAnswer(
            '/v1/logprobs',
            `{"logits":${JSON.stringify(logits)},"targets":${JSON.stringify(safe)},"top_k":${Math.min(3, v)},"outputs":["target_logprobs","top_k","entropy"]}`
          )
        }
      ),
      { numRuns: 25 }
    )
  })

  it('gives what the general reading gives with soft targets, class weights and label smoothing', async () => {
    const logits = [
      [0.5, -1.25, 3],
      [2, 2, -0.125]
    ]
    await expectSameAnswer(
      '/v1/cross-entropy',
      JSON.stringify({
        logits,
        soft_targets: [
          [0.25, 0.25, 0.5],
          [1, 0, 0]
        ],
        outputs: ['gradients']
      })
    )
    await expectSameAnswer(
      '/v1/cross-entropy',
      JSON.stringify({ logits, targets: [2, 0], weight: [1, 0.5, 2], label_smoothing: 0.1, outputs: ['gradients'] })
    )
  })

  it('answers every bad body exactly as the general reading does', async () => {
    const good = { logits: [[[1, 2, 3]], [[4, 5, 6]]], targets: [[0], [2]] }
    const bodies = [
      '{"logits": [[1, 2, 3]], "targets": [0],}',
      '{"logits": [[1, 2, 3]], "targets": [0]} x',
      '{"logits": [[1, 2, 3]] "targets": [0]}',
      '{"logits": [[1, 2, 3], [4, 5]], "targets": [0, 1]}',
      '{"logits": [[1, 2, 3], [4, 5, 6, 7]], "targets": [0, 1]}',
      '{"logits": [[[1, 2, 3]], [[4, 5, 6], [7, 8, 9]]], "targets": [[0], [2, 1]]}',
      '{"logits": [[1, "2", 3]], "targets": [0]}',
      '{"logits": [[1, null, 3]], "targets": [0]}',
      '{"logits": [[1, 1e39, 3]], "targets": [0]}',
      '{"logits": [[1, 01, 3]], "targets": [0]}',
      '{"logits": [[1, -, 3]], "targets": [0]}',
      '{"logits": [[1, 2, 3]], "targets": [1.5]}',
      '{"logits": [[1, 2, 3]], "targets": [3]}',
      '{"logits": [[1, 2, 3]], "targets": [[0]]}',
      '{"logits": [[1, 2, 3]], "targets": [0, 1]}',
      '{"logits": [[1, 2, 3]]}',
      '{"logits": [[1, 2, 3]], "targets": [0], "soft_targets": [[1, 0, 0]]}',
      '{"logits": [[1, 2, 3]], "soft_targets": [[0.5, 0, 0]]}',
      '{"logits": [[1, 2, 3]], "targets": [0], "weight": [1, -1, 1]}',
      '{"logits": [[1, 2, 3]], "targets": [0], "weight": [1, 1]}',
      '{"logits": [[1, 2, 3]], "targets": [0], "reduction": "avg"}',
      '{"logits": [[1, 2, 3]], "targets": [0], "reduction": "mean", "reduction": "sum"}',
      '{"logits": [[1, 2, 3]], "targets": [0], "extra": 1}',
      '{"logits": [[1, 2, 3]], "targets": [0], "__proto__": {"x": 1}}',
      '{"logits": [[]], "targets": [0]}',
      '{"logits": [], "targets": []}',
      '{"logits": [[[[1]]]], "targets": [[[0]]]}',
      '{"logits": {"a": 1}, "targets": [0]}',
      '[{"logits": [[1]]}]',
      '{"logits": [[1, 2, 3]], "targets": [0]',
      `{"logits": ${JSON.stringify(good.logits)}, "targets": ${JSON.stringify(good.targets)}, "ignore_index": 1.5}`
    ]
    for (const body of bodies) {
      const answer = await expectSameAnswer('/v1/cross-entropy', body)
      expect(JSON.parse(answer).statusCode, body).toBeGreaterThanOrEqual(400)
    }
    await expectSameAnswer('/v1/logprobs', '{"logits": [[1, 2, 3]], "top_k": 4}')
    await expectSameAnswer('/v1/logprobs', '{"logits": [[1, 2, "x"]]}')
  })

  it('prints gradients as the shortest decimals that read back to the float32s the safetensors answer holds', async () => {
    const logits = Array.from({ length: 4 }, (_, i) => Array.from({ length: 50 }, (_, c) => Math.sin(i * 50 + c) * 7))
    const targets = [3, 17, 49, 0]
    const json = await send('/v1/cross-entropy', JSON.stringify({ logits, targets, outputs: ['gradients'] }))
    const file = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [4, 50], data: Float32Array.from(logits.flat()) },
      { name: 'targets', dtype: 'I32', shape: [4], data: Int32Array.from(targets) }
    ])
    const binary = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy?outputs=gradients',
      headers: { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
      payload: file
    })
    const header = Number(binary.rawPayload.readBigUInt64LE(0))
    const meta = JSON.parse(binary.rawPayload.subarray(8, 8 + header).toString())
    const [start, end] = meta.gradients.data_offsets as [number, number]
    const data = binary.rawPayload.subarray(8 + header + start, 8 + header + end)
    const expected = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
    const printed = json.body.slice(json.body.indexOf('"gradients":') + 12, -1)
    const read = (JSON.parse(printed) as number[][]).flat()
    expect(Float32Array.from(read)).toEqual(expected)
    for (const text of printed.replace(/[[\]]/g, '').split(',')) {
      // Never more than the 9 significant digits a float32 can need.
      expect(text.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').length).toBeLessThanOrEqual(
        9
      )
    }
  })

  it('reads a body that arrives in many chunks over a socket exactly as one that arrives whole', async () => {
    // 4 MB written in 256 pieces: the chunks that come before half of it wait, then move into
    // kernel memory a few at a time while the rest streams in where it will be read.
    const values = Array.from({ length: 8 * 32 * 512 }, (_, i) => Math.sin(i) * 9.87654321)
    const logits = [0, 1, 2, 3, 4, 5, 6, 7].map((b) =>
      Array.from({ length: 32 }, (_, t) => values.slice((b * 32 + t) * 512, (b * 32 + t + 1) * 512))
    )
    const targets = logits.map((matrix, b) => matrix.map((_, t) => (b * 31 + t * 7) % 512))
    const text = JSON.stringify({ logits, targets, outputs: ['token_losses', 'gradients'] })
    const whole = await send('/v1/cross-entropy', text)
    expect(whole.statusCode).toBe(200)
    const server = await build()
    await server.listen({ port: 0, host: '127.0.0.1' })
    const { port } = server.server.address() as AddressInfo
    const before = await metricValue(server, 'xent_json_bodies_total{reading="workers"}')
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const body = Buffer.from(text)
    socket.write(
      `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`
    )
    const piece = Math.ceil(body.length / 256)
    for (let at = 0; at < body.length; at += piece) {
      if (!socket.write(body.subarray(at, at + piece))) await once(socket, 'drain')
    }
    const answer = await readRawAnswer(socket)
    expect(answer.status).toBe(200)
    expect(JSON.stringify(answer.body)).toBe(JSON.stringify(whole.json()))
    expect(await metricValue(server, 'xent_json_bodies_total{reading="workers"}')).toBe(before + 1)
  })

  it('reads a body the kernel memory cannot take the general way, and still answers', async () => {
    const small = await build({ KERNEL_MEMORY_MB: 16, MAX_ELEMENTS: 1000, BODY_LIMIT_MB: 32 })
    // 20 MB of text: more than the 16 MiB of kernel memory holds, for a 2 × 3 request.
    const padding = ' '.repeat(20 * 1024 * 1024)
    const text = `{"logits": [[1, 2, 3], [3, 2, 1]],${padding}"targets": [2, 0], "outputs": ["gradients"]}`
    const res = await small.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': 'application/json' },
      payload: text
    })
    expect(res.statusCode, res.body.slice(0, 200)).toBe(200)
    expect(res.json().count).toBe(2)
    expect(small.engine.arena.usedBytes).toBe(0)
  })

  it('reads, computes and prints in one run of tasks: a range of logits read, computed and its gradients printed by one task', async () => {
    const rows = 64
    const vocab = 2048
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => Math.cos(r * 7 + c) * 5)
    )
    const targets = logits.map((_, r) => (r * 13) % vocab)
    const text = JSON.stringify({ logits, targets, outputs: ['token_losses', 'gradients'] })
    const runs: string[] = []
    const run = app.engine.run
    app.engine.run = (memory, entry, call, rowCount, width, options) => {
      const stages = (list?: ReadonlyArray<{ entry: string }>) => (list ?? []).map((stage) => stage.entry).join('+')
      runs.push([stages(options?.before), entry, stages(options?.after)].filter((name) => name !== '').join(' → '))
      return run(memory, entry, call, rowCount, width, options)
    }
    try {
      const fused = await send('/v1/cross-entropy', text)
      expect(runs).toEqual(['jsonIndex', 'numberRows → hardTargetRows → printRows'])
      // With a query parameter (one the handler checks first) each stage is a run of its own.
      runs.length = 0
      const staged = await app.inject({
        method: 'POST',
        url: '/v1/cross-entropy?grad_dtype=F32',
        headers: { 'content-type': 'application/json' },
        payload: text
      })
      expect(runs).toEqual(['jsonIndex', 'numberRows', 'hardTargetRows', 'printRows'])
      expect(fused.statusCode).toBe(200)
      expect(fused.body).toBe(staged.body)
      // A logprobs request's top-k has a row for each row of logits: printed in the same tasks.
      runs.length = 0
      const logprobs = JSON.stringify({ logits, targets, top_k: 4, outputs: ['entropy'] })
      const answer = await send('/v1/logprobs', logprobs)
      expect(answer.statusCode).toBe(200)
      expect(runs).toEqual(['jsonIndex', 'numberRows → logprobRows → printRows+printRows'])
      await expectSameAnswer('/v1/logprobs', logprobs)
      // A body under INDEX_HERE_BELOW is indexed on this thread: one hand-off in all.
      runs.length = 0
      const small = JSON.stringify({ logits: logits.slice(0, 4), targets: targets.slice(0, 4), outputs: ['gradients'] })
      expect(small.length).toBeLessThan(INDEX_HERE_BELOW)
      expect((await send('/v1/cross-entropy', small)).statusCode).toBe(200)
      expect(runs).toEqual(['numberRows → hardTargetRows → printRows'])
    } finally {
      app.engine.run = run
    }
    await expectSameAnswer('/v1/cross-entropy', text)
  })

  it('answers as the general reading does when one task of a split run refuses its rows and the others compute theirs', async () => {
    // Two tasks of 32 rows; the last row's refusal (a string, a float32 overflow) is the second's alone.
    const rows = 64
    const vocab = 2048
    const logits = Array.from({ length: rows }, (_, r) => Array.from({ length: vocab }, (_, c) => Math.sin(r + c) * 3))
    const targets = logits.map((_, r) => (r * 5) % vocab)
    const text = JSON.stringify({ logits, targets, outputs: ['gradients'] })
    const last = text.lastIndexOf(',', text.indexOf(']]'))
    for (const bad of ['"7"', '1e39', 'null']) {
      const body = `${text.slice(0, last + 1)}${bad}${text.slice(text.indexOf(']]'))}`
      const answer = await expectSameAnswer('/v1/cross-entropy', body)
      expect(JSON.parse(answer).statusCode).toBe(400)
    }
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('indexes a body on this thread exactly as a worker indexes it', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => [i % 7, -i / 3])
    const bodies = [
      JSON.stringify({ logits: [[[1, 2, 3]], [[4, 5, 6]]], targets: [[0], [2]], outputs: ['gradients'] }),
      // More rows than the first guess of the index's row table: it runs again with room for them.
      JSON.stringify({ logits: rows, targets: rows.map(() => 1), ignore_index: 1 }),
      '{"logits": [[1, 2, 3], [4, 5]], "targets": [0, 1]}',
      '{"\u006cogits": [[1]], "targets": [0]}',
      '{"logits": [[1, 2, 3]], "targets": [0], "logits": [[1, 2, 3]]}',
      '{"logits": [[1, 2, 3]], "targets": [0]',
      ' {"a": {"b": [1, [2, [3]]]}, "c": "d\\"e", "f": [[1.5e3, -0], [2, 3]]} '
    ]
    const index = async (text: string, hereBelow: number) => {
      const memory = app.engine.openRequest()
      try {
        const body = Buffer.from(text)
        const bytes = memory.bytes(body.length)
        bytes.set(body)
        const json = await indexJson(app.engine, memory, bytes, {}, hereBelow)
        return json === null
          ? null
          : [...json.fields.values()].map(({ rowStarts, ...field }) => ({
              ...field,
              // Where each row starts, read out of the row table (whose address differs between runs).
              starts: Array.from(new Uint32Array(app.engine.arena.buffer, rowStarts, field.rows))
            }))
      } finally {
        memory.release()
      }
    }
    for (const text of bodies) {
      const here = await index(text, Number.POSITIVE_INFINITY)
      expect(here, text.slice(0, 60)).toEqual(await index(text, 0))
    }
    expect((await index(bodies[1], Number.POSITIVE_INFINITY))?.find((field) => field.key === 'logits')?.rows).toBe(
      20_000
    )
  })

  it('keeps one row table when a body has more rows than the first guess (16 384)', async () => {
    /** Kernel memory an index of `rows` rows holds, once it is made. */
    const held = async (rows: number) => {
      const memory = app.engine.openRequest()
      try {
        const body = Buffer.from(JSON.stringify({ logits: Array.from({ length: rows }, () => [1, 2]) }))
        const bytes = memory.bytes(body.length)
        bytes.set(body)
        const before = app.engine.arena.usedBytes
        expect(await indexJson(app.engine, memory, bytes, {})).not.toBeNull()
        return app.engine.arena.usedBytes - before
      } finally {
        memory.release()
      }
    }
    // 16 000 rows fit the first table (of 16 384 rows); 20 000 take a second, larger one, and
    // only that one is held: the difference is the two tables', not a whole second index.
    const fits = await held(16_000)
    const larger = await held(20_000)
    expect(larger - fits).toBe(blockBytes(20_000 * 4) - blockBytes(16_384 * 4))
  })

  it('gives back what the fast reading allocated when it declines, so the general reading has room to word the error', async () => {
    // 64 × 1875 logits written with 47 decimals (~50 bytes a number): the body, the fast reading's
    // tensors and the text it prints into (24 bytes a number) fit 10 MiB, but leave too little for
    // the general reading's own tensors beside them unless the fast reading's memory goes back
    // first (it would answer 503, the memory busy, where the general reading answers 400).
    const small = await build({ KERNEL_MEMORY_MB: 10, MAX_ELEMENTS: 131_072, BODY_LIMIT_MB: 16 })
    const rows = 64
    const vocab = 1875
    const row = (r: number) => Array.from({ length: vocab }, (_, c) => (Math.sin(r * c) * 4).toFixed(47))
    const numbers = Array.from({ length: rows }, (_, r) => row(r))
    const body = (last: string) => {
      numbers[rows - 1][vocab - 1] = last
      return `{"logits": [${numbers.map((values) => `[${values.join(',')}]`).join(',')}], "targets": [${numbers.map((_, r) => r).join(',')}], "outputs": ["gradients"]}`
    }
    const post = (payload: string) =>
      small.inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        headers: { 'content-type': 'application/json' },
        payload
      })
    const good = await post(body('1.5'))
    expect(good.statusCode, good.body.slice(0, 200)).toBe(200)
    const answer = await post(body('1e39'))
    expect(answer.statusCode, answer.body.slice(0, 200)).toBe(400)
    expect(answer.json().message).toContain('logits[63][1874]')
    expect(small.engine.arena.usedBytes).toBe(0)
  })
})
