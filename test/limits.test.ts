import fc from 'fast-check'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ANALYTICS_OUTPUTS, OUTPUT_NAMES, type OutputName } from '../schemas/cross-entropy.js'
import { appConfig, buildApp } from '../src/app.js'
import { ConfigError } from '../src/config.js'
import type { AdmissionSize, Engine } from '../src/engine/engine.js'
import type { RequestMemory } from '../src/engine/request.js'
import { largestRequestBytes, SAFETENSORS_HEADER_ALLOWANCE, safetensorsBodyLimit } from '../src/limits.js'
import { computeCrossEntropy } from '../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../src/ops/cross-entropy/json.js'
import { decodeCrossEntropySafetensors } from '../src/ops/cross-entropy/safetensors.js'
import { computeLogprobs } from '../src/ops/logprobs/compute.js'
import { decodeLogprobsJson } from '../src/ops/logprobs/json.js'
import { decodeLogprobsSafetensors } from '../src/ops/logprobs/safetensors.js'
import { build, buildForFile, readSafetensorsAnswer, safetensorsFile } from './helper.js'

const OCTET = 'application/octet-stream'
const MIB = 2 ** 20

describe('the defaults agree', () => {
  it('a default server takes an 8 × 256 × 8192 F32 safetensors request (64 MiB of logits)', {
    timeout: 60_000
  }, async () => {
    const app = await buildApp(appConfig({ LOG_LEVEL: 'silent' }))
    onTestFinished(() => app.close())
    await app.ready()
    const [b, t, v] = [8, 256, 8192]
    const logits = new Float32Array(b * t * v)
    for (let i = 0; i < logits.length; i++) logits[i] = ((i * 7919) % 1000) / 100
    const targets = Int32Array.from({ length: b * t }, (_, i) => (i * 31) % v)
    const body = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [b, t, v], data: logits },
      { name: 'targets', dtype: 'I32', shape: [b, t], data: targets }
    ])
    expect(body.byteLength).toBeGreaterThan(64 * MIB)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': OCTET },
      payload: body
    })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ count: b * t })
    expect(app.engine.arena.usedBytes).toBe(0)
  })

  it('the safetensors body limit is the largest tensors MAX_ELEMENTS allows, plus the header allowance', () => {
    // (E, 1) logits with I64 targets and a weight: 4E + 8E + 4 bytes of tensors.
    expect(safetensorsBodyLimit(1000)).toBe(12 * 1000 + 4 + SAFETENSORS_HEADER_ALLOWANCE)
    expect(safetensorsBodyLimit(2 ** 25)).toBeGreaterThan(2 ** 25 * 12)
  })
})

describe('a configuration that can never serve its own MAX_ELEMENTS', () => {
  it('is a boot error naming KERNEL_MEMORY_MB and MAX_ELEMENTS', async () => {
    const failed = buildApp(appConfig({ LOG_LEVEL: 'silent', POOL_THREADS: 1, KERNEL_MEMORY_MB: 64 }))
    await expect(failed).rejects.toThrow(ConfigError)
    const message = await failed.then(
      () => 'it started',
      (error: Error) => error.message
    )
    const match =
      /^invalid configuration: KERNEL_MEMORY_MB=64 cannot hold the largest request MAX_ELEMENTS=33554432 allows \((\d+) bytes of kernel memory with every output\); raise KERNEL_MEMORY_MB to at least (\d+) or lower MAX_ELEMENTS$/.exec(
        message
      )
    expect(match, message).not.toBeNull()
    // (E, 1) logits with every output: 4 + 8 bytes of body, then int32 targets (4), token losses
    // and NLL (8 + 8), gradients (4) and row stats (24) for each of the E rows.
    const [needed, leastMb] = [Number(match?.[1]), Number(match?.[2])]
    expect(needed).toBeGreaterThanOrEqual(60 * 2 ** 25)
    expect(leastMb * MIB).toBeGreaterThanOrEqual(needed)
  })

  it('is not one at the least KERNEL_MEMORY_MB that message asks for, which serves the largest requests', {
    timeout: 60_000
  }, async () => {
    const elements = 200_000
    const kernelMemoryMb = Math.ceil(largestRequestBytes(elements) / MIB) + 1
    // One less than that leaves too little.
    await expect(
      buildApp(
        appConfig({
          LOG_LEVEL: 'silent',
          POOL_THREADS: 1,
          MAX_ELEMENTS: elements,
          KERNEL_MEMORY_MB: kernelMemoryMb - 2
        })
      )
    ).rejects.toThrow(ConfigError)
    const app = await build({ POOL_THREADS: 1, MAX_ELEMENTS: elements, KERNEL_MEMORY_MB: kernelMemoryMb })
    const everyOutput = OUTPUT_NAMES.join(',')
    const softOutputs = ['token_losses', 'gradients', 'entropy', 'predictions', 'z_loss'].join(',')
    const post = (url: string, tensors: Parameters<typeof safetensorsFile>[0]) =>
      app.inject({ method: 'POST', url, headers: { 'content-type': OCTET }, payload: safetensorsFile(tensors) })
    for (const [rows, vocab] of [
      [elements, 1],
      [1, elements]
    ]) {
      const logits = {
        name: 'logits',
        dtype: 'F32' as const,
        shape: [rows, vocab],
        data: new Float32Array(rows * vocab)
      }
      const targets = { name: 'targets', dtype: 'I64' as const, shape: [rows], data: new BigInt64Array(rows) }
      const weight = { name: 'weight', dtype: 'F32' as const, shape: [vocab], data: new Float32Array(vocab).fill(1) }
      const soft = {
        name: 'soft_targets',
        dtype: 'F32' as const,
        shape: [rows, vocab],
        data: new Float32Array(rows * vocab).fill(1 / vocab)
      }
      const answers = [
        await post(`/v1/cross-entropy?outputs=${everyOutput}&z_loss=0.001`, [logits, targets, weight]),
        await post(`/v1/cross-entropy?outputs=${softOutputs}`, [logits, soft, weight]),
        await post(`/v1/logprobs?top_k=${Math.min(64, vocab)}&outputs=entropy`, [logits, targets])
      ]
      for (const res of answers) expect(res.statusCode, `${rows} × ${vocab}: ${res.body.slice(0, 200)}`).toBe(200)
      expect(app.engine.arena.usedBytes).toBe(0)
    }
  })
})

describe('admission counts exactly what a request allocates', async () => {
  const app = await buildForFile()
  const arena = app.engine.arena

  type Decoded = { kind: 'cross-entropy' | 'logprobs'; job: unknown }
  /**
   * Decodes into a fresh request memory with an engine whose admission records the plan's size,
   * computes on the real workers, and compares the plan with what the arena holds then.
   */
  async function expectPlanMatches(decode: (memory: RequestMemory, engine: Engine) => Decoded) {
    let planned = -1
    const recording: Engine = {
      ...app.engine,
      admit: (size: AdmissionSize) => {
        planned = size.bytes
        app.engine.admit(size)
      }
    }
    const memory = app.engine.openRequest()
    try {
      const { kind, job } = decode(memory, recording)
      if (kind === 'cross-entropy') await computeCrossEntropy(app.engine, job as never)
      else await computeLogprobs(app.engine, job as never)
      expect(arena.usedBytes).toBe(planned)
    } finally {
      memory.release()
    }
  }
  const crossEntropy = (job: unknown): Decoded => ({ kind: 'cross-entropy', job })
  const logprobs = (job: unknown): Decoded => ({ kind: 'logprobs', job })
  /** A safetensors body in the request's memory, as the body parser leaves it. */
  const bodyIn = (memory: RequestMemory, file: Buffer) => {
    const bytes = memory.bytes(file.byteLength)
    bytes.set(file)
    return bytes
  }

  const problem = fc.record({
    rows: fc.integer({ min: 1, max: 40 }),
    vocab: fc.integer({ min: 1, max: 300 }),
    outputs: fc.subarray([...OUTPUT_NAMES]),
    zLoss: fc.constantFrom(0, 0.01),
    weight: fc.boolean(),
    soft: fc.boolean()
  })
  const softAllowed = (outputs: OutputName[]) =>
    outputs.filter(
      (name) => ANALYTICS_OUTPUTS.includes(name as never) && !['entropy', 'predictions', 'z_loss'].includes(name)
    ).length === 0

  it('for cross-entropy in JSON and safetensors, whatever the outputs', async () => {
    await fc.assert(
      fc.asyncProperty(problem, async ({ rows, vocab, outputs, zLoss, weight, soft }) => {
        const useSoft = soft && softAllowed(outputs)
        const logits = Array.from({ length: rows }, (_, r) => Array.from({ length: vocab }, (_, c) => (r + c) % 5))
        const request = {
          logits,
          ...(useSoft
            ? { soft_targets: logits.map((row) => row.map(() => 1 / vocab)) }
            : { targets: logits.map((_, r) => r % vocab) }),
          outputs,
          z_loss: zLoss,
          ...(weight ? { weight: new Array(vocab).fill(1) } : {})
        }
        await expectPlanMatches((memory, engine) =>
          crossEntropy(decodeCrossEntropyJson(request as never, memory, engine))
        )

        const file = safetensorsFile([
          { name: 'logits', dtype: 'F32', shape: [rows, vocab], data: Float32Array.from(logits.flat()) },
          useSoft
            ? {
                name: 'soft_targets',
                dtype: 'F32',
                shape: [rows, vocab],
                data: new Float32Array(rows * vocab).fill(1 / vocab)
              }
            : {
                name: 'targets',
                dtype: 'I64',
                shape: [rows],
                data: BigInt64Array.from(logits, (_, r) => BigInt(r % vocab))
              },
          ...(weight
            ? [{ name: 'weight', dtype: 'F32' as const, shape: [vocab], data: new Float32Array(vocab).fill(1) }]
            : [])
        ])
        await expectPlanMatches((memory, engine) => {
          const query = { outputs: outputs.join(','), z_loss: String(zLoss) }
          return crossEntropy(decodeCrossEntropySafetensors(bodyIn(memory, file), query as never, memory, engine))
        })
      }),
      { numRuns: 60 }
    )
  })

  it('for logprobs in JSON and safetensors, whatever the outputs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 0, max: 64 }),
        fc.boolean(),
        async (rows, vocab, topK, entropy) => {
          const k = Math.min(topK, vocab)
          const logits = Array.from({ length: rows }, (_, r) => Array.from({ length: vocab }, (_, c) => (r * c) % 7))
          const targets = logits.map((_, r) => r % vocab)
          const request = {
            logits,
            targets,
            ...(k > 0 ? { top_k: k } : {}),
            ...(entropy ? { outputs: ['entropy'] } : {})
          }
          await expectPlanMatches((memory, engine) => logprobs(decodeLogprobsJson(request as never, memory, engine)))
          const file = safetensorsFile([
            { name: 'logits', dtype: 'F32', shape: [rows, vocab], data: Float32Array.from(logits.flat()) },
            { name: 'targets', dtype: 'I32', shape: [rows], data: Int32Array.from(targets) }
          ])
          await expectPlanMatches((memory, engine) => {
            const query = { ...(k > 0 ? { top_k: String(k) } : {}), ...(entropy ? { outputs: 'entropy' } : {}) }
            return logprobs(decodeLogprobsSafetensors(bodyIn(memory, file), query as never, memory, engine))
          })
        }
      ),
      { numRuns: 60 }
    )
  })

  it('counting the aligned copy of misaligned logits', async () => {
    // A header whose length is not a multiple of 4 leaves F32 logits misaligned.
    const rows = 3
    const vocab = 5
    const header = JSON.stringify({
      logits: { dtype: 'F32', shape: [rows, vocab], data_offsets: [0, rows * vocab * 4] },
      targets: { dtype: 'I32', shape: [rows], data_offsets: [rows * vocab * 4, rows * vocab * 4 + rows * 4] }
    })
    const padded = header.length % 4 === 1 ? header : `${header}${' '.repeat((5 - (header.length % 4)) % 4)}`
    expect(padded.length % 4).toBe(1)
    const file = Buffer.alloc(8 + padded.length + rows * vocab * 4 + rows * 4)
    file.writeBigUInt64LE(BigInt(padded.length), 0)
    file.write(padded, 8, 'utf8')
    await expectPlanMatches((memory, engine) =>
      crossEntropy(decodeCrossEntropySafetensors(bodyIn(memory, file), {}, memory, engine))
    )
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': OCTET, accept: OCTET },
      payload: file
    })
    expect(answer.statusCode).toBe(200)
    expect(readSafetensorsAnswer(answer.rawPayload).count.values).toEqual([rows])
  })
})
