import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, onTestFinished } from 'vitest'
import { type AppConfig, type AppOptions, appConfig, buildApp } from '../src/app.js'
import { type Dtype, readSafetensors, type TensorToWrite, writeSafetensors } from '../src/codec/safetensors.js'
import { createEngine, type Engine, type EngineOptions } from '../src/engine/engine.js'

export const TEST_CONFIG: AppConfig = appConfig({
  POOL_THREADS: 2,
  BODY_LIMIT_MB: 64,
  KERNEL_MEMORY_MB: 256,
  // The most that 256 MiB of kernel memory can always serve (see src/limits.ts).
  MAX_ELEMENTS: 2 ** 22,
  LOG_LEVEL: 'silent'
})

/** Builds a ready app for one test; it is closed when the test finishes. */
export async function build(config: Partial<AppConfig> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp({ ...TEST_CONFIG, ...config }, options)
  onTestFinished(() => app.close())
  await app.ready()
  return app
}

/** Builds one ready app for every test in a file (pools are slow to start); closed after the file. */
export async function buildForFile(config: Partial<AppConfig> = {}): Promise<FastifyInstance> {
  const app = await buildApp({ ...TEST_CONFIG, ...config })
  afterAll(() => app.close())
  await app.ready()
  return app
}

export interface FixtureCase {
  name: string
  request: Record<string, unknown> & { logits: number[][] | number[][][]; targets: number[] | number[][] }
  expected: {
    loss: number | null | number[] | number[][]
    perplexity: number | null
    count: number
    token_losses: number[] | number[][]
    gradients: number[][] | number[][][]
  }
}

/**
 * The oracle: test/fixtures/cross_entropy_torch.json is a copy of ../shared/fixtures/cross_entropy_torch.json,
 * 14 cases computed by PyTorch 1.13's torch.nn.functional.cross_entropy (float64 math on float32-rounded
 * inputs; see its "meta"). Do not edit it by hand.
 */
export const fixtures: FixtureCase[] = JSON.parse(
  readFileSync(new URL('./fixtures/cross_entropy_torch.json', import.meta.url), 'utf8')
).cases

/** The fixtures' tolerance for scalars: relative 1e-5, absolute 1e-6 near zero. */
export function expectScalarClose(actual: number | null, expected: number | null, what: string): void {
  if (expected === null) {
    if (actual !== null) throw new Error(`${what}: expected null, got ${actual}`)
    return
  }
  if (actual === null || !(Math.abs(actual - expected) <= Math.max(1e-6, 1e-5 * Math.abs(expected)))) {
    throw new Error(`${what}: expected ${expected}, got ${actual}`)
  }
}

/** The fixtures' tolerance for arrays: |a − e| ≤ 1e-6 + 1e-5·|e| everywhere, same shape. */
export function expectArrayClose(actual: unknown, expected: unknown, what: string): void {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      throw new Error(
        `${what}: expected an array of length ${expected.length}, got ${JSON.stringify(actual)?.slice(0, 80)}`
      )
    }
    for (let i = 0; i < expected.length; i++) expectArrayClose(actual[i], expected[i], `${what}[${i}]`)
    return
  }
  const e = expected as number
  const a = actual as number
  if (typeof a !== 'number' || !(Math.abs(a - e) <= 1e-6 + 1e-5 * Math.abs(e))) {
    throw new Error(`${what}: expected ${e}, got ${a}`)
  }
}

/** A JSON answer against a fixture's expectations, every field at the fixtures' tolerances. */
export function expectAnswerMatches(answer: Record<string, unknown>, expected: FixtureCase['expected']): void {
  if (Array.isArray(expected.loss)) expectArrayClose(answer.loss, expected.loss, 'loss')
  else expectScalarClose(answer.loss as number | null, expected.loss, 'loss')
  expectScalarClose(answer.perplexity as number | null, expected.perplexity, 'perplexity')
  if (answer.count !== expected.count) throw new Error(`count: expected ${expected.count}, got ${answer.count}`)
  expectArrayClose(answer.token_losses, expected.token_losses, 'token_losses')
  expectArrayClose(answer.gradients, expected.gradients, 'gradients')
}

/** A safetensors file as one Buffer, for a request body. */
export function safetensorsFile(tensors: TensorToWrite[]): Buffer {
  return Buffer.concat(
    writeSafetensors(tensors).map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  )
}

/** The tensors of a safetensors answer, as plain numbers. */
export function readSafetensorsAnswer(
  body: Buffer
): Record<string, { dtype: Dtype; shape: number[]; values: number[] }> {
  const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  const answer: Record<string, { dtype: Dtype; shape: number[]; values: number[] }> = {}
  for (const [name, info] of readSafetensors(bytes).tensors) {
    const raw = body.buffer.slice(body.byteOffset + info.begin, body.byteOffset + info.end)
    const values = {
      F64: () => Array.from(new Float64Array(raw)),
      F32: () => Array.from(new Float32Array(raw)),
      I64: () => Array.from(new BigInt64Array(raw), Number),
      BF16: () => Array.from(new Uint16Array(raw)),
      F16: () => Array.from(new Uint16Array(raw))
    }[info.dtype as 'F64' | 'F32' | 'I64' | 'BF16' | 'F16']()
    answer[name] = { dtype: info.dtype, shape: info.shape, values }
  }
  return answer
}

/** One metric's value as /metrics serves it (`name` with its labels, as the line starts); 0 when absent. */
export async function metricValue(app: FastifyInstance, name: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

/** A pino logger whose lines the test keeps, parsed, in `lines`. */
export function keptLogs(level = 'info'): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    }
  })
  return { logger: pino({ level, redact: ['req.headers.authorization'] }, sink), lines }
}

/** Everything the server sends on a raw socket until it closes it: the status and the JSON body. */
export async function readRawAnswer(socket: Socket): Promise<{ status: number; body: Record<string, unknown> }> {
  const chunks: Buffer[] = []
  for await (const chunk of socket) chunks.push(chunk as Buffer)
  const [head, body] = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n', 2)
  return { status: Number(head.split(' ')[1]), body: JSON.parse(body) }
}

/**
 * An engine of its own for one test, closed when the test ends: one worker, 16 MiB of kernel
 * memory, a queue of 4 and 2^20 elements, unless `options` say otherwise.
 */
export function testEngine(options: Partial<EngineOptions> = {}): Engine {
  const engine = createEngine({
    threads: 1,
    memoryMegabytes: 16,
    maxQueue: 4,
    maxElements: 2 ** 20,
    workerMaxOldGenerationMb: 64,
    ...options
  })
  onTestFinished(() => engine.close())
  return engine
}
