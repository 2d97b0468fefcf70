/**
 * The whole benchmark, every figure beside the floor it is measured against, in one run:
 *
 *   npm run bench [-- --duration 5 --connections 4]
 *
 * 1. the kernel on one thread (load/bench-kernel.ts) against memcpy;
 * 2. the pool with 1 and 2 workers on one large batch;
 * 3. where a medium JSON request's time goes, against JSON.parse + JSON.stringify;
 * 4. autocannon against the built server on 127.0.0.1: small JSON (1×32×512), medium JSON
 *    (4×64×1024), and a large safetensors request answered in safetensors (8×256×8192).
 *
 * It needs `npm run build` first (the script does it) and curl, targets only loopback, and stops
 * by itself.
 */
import { execFile, execFileSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import autocannon from 'autocannon'
import { buildApp } from '../src/app.js'
import type { CrossEntropyBatch } from '../src/batch.js'
import { decodeJsonRequest, encodeJsonResponse } from '../src/codec/json.js'
import { writeSafetensors } from '../src/codec/safetensors.js'
import { startServer } from '../test/server-process.js'

const execFileAsync = promisify(execFile)

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '4' }
  }
})
const duration = Math.min(Number(values.duration), 60)
const connections = Number(values.connections)

let seed = 7
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const logit = () => Math.round((random() * 16 - 8) * 1e4) / 1e4

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function timeMs(run: () => unknown, repeats = 9): number {
  for (let i = 0; i < 2; i++) run()
  const samples: number[] = []
  for (let i = 0; i < repeats; i++) {
    const start = performance.now()
    run()
    samples.push(performance.now() - start)
  }
  return median(samples)
}

async function timeMsAsync(run: () => Promise<unknown>, repeats = 7): Promise<number> {
  for (let i = 0; i < 2; i++) await run()
  const samples: number[] = []
  for (let i = 0; i < repeats; i++) {
    const start = performance.now()
    await run()
    samples.push(performance.now() - start)
  }
  return median(samples)
}

const report: Record<string, unknown> = {}

// 1. The kernel on one thread.
console.log('# kernel, one thread, 2048 × 32000 F32')
const kernelOutput = execFileSync(
  process.execPath,
  ['--import', 'tsx', 'load/bench-kernel.ts', '--rows', '2048', '--vocab', '32000'],
  {
    encoding: 'utf8'
  }
)
process.stdout.write(kernelOutput)
report.kernel = JSON.parse(kernelOutput.trim().split('\n').at(-1) as string)

// 2. One large batch through the pool, with 1 and 2 workers.
console.log('\n# pool, 1024 × 32000 F32 with gradients, 1 and 2 workers measured in alternation')
const POOL_ROWS = 1024
const POOL_VOCAB = 32_000
const poolLogits = Float32Array.from({ length: POOL_ROWS * POOL_VOCAB }, () => random() * 16 - 8)

/** An app with `threads` workers and the batch in its memory; run() times one pass. */
async function poolRunner(threads: number) {
  const app = await buildApp({
    POOL_THREADS: threads,
    BODY_LIMIT_MB: 64,
    KERNEL_MEMORY_MB: 1024,
    MAX_ELEMENTS: 2 ** 24,
    LOG_LEVEL: 'silent'
  })
  await app.ready()
  const memory = app.kernelArena.group()
  const logits = memory.float32(poolLogits.length)
  logits.set(poolLogits)
  const targets = memory.int32(POOL_ROWS)
  for (let r = 0; r < POOL_ROWS; r++) targets[r] = (r * 7919) % POOL_VOCAB
  const batch: CrossEntropyBatch = {
    memory,
    logits,
    logitsDtype: 'F32',
    targets,
    rows: POOL_ROWS,
    vocab: POOL_VOCAB,
    logitsShape: [POOL_ROWS, POOL_VOCAB],
    targetsShape: [POOL_ROWS],
    weight: null,
    reduction: 'mean',
    ignoreIndex: -100,
    labelSmoothing: 0,
    zLoss: 0,
    softcap: 0,
    softTargets: null,
    outputs: new Set(['gradients'])
  }
  return {
    // Each run takes its outputs from a group of its own and gives them back, as requests do,
    // so the memory is reused (already paged in) rather than fresh every time.
    run: async () => {
      const outputs = app.kernelArena.group()
      const start = performance.now()
      try {
        await app.crossEntropy({ ...batch, memory: outputs })
      } finally {
        outputs.release()
      }
      return performance.now() - start
    },
    close: async () => {
      memory.release()
      await app.close()
    }
  }
}
const runners = { 1: await poolRunner(1), 2: await poolRunner(2) }
const poolSamples: Record<1 | 2, number[]> = { 1: [], 2: [] }
for (let round = 0; round < 12; round++) {
  // Alternating the two keeps the machine's slow drifts from favouring either.
  for (const threads of [1, 2] as const) {
    const ms = await runners[threads].run()
    if (round >= 2) poolSamples[threads].push(ms)
  }
}
await runners[1].close()
await runners[2].close()
const poolRates = {
  1: (POOL_ROWS * POOL_VOCAB) / median(poolSamples[1]) / 1e3,
  2: (POOL_ROWS * POOL_VOCAB) / median(poolSamples[2]) / 1e3
}
for (const threads of [1, 2] as const) {
  console.log(
    `${threads} worker(s): median ${median(poolSamples[threads]).toFixed(1)} ms, ${poolRates[threads].toFixed(0)} M elements/s`
  )
}
report.pool = {
  one_worker_melem_s: Math.round(poolRates[1]),
  two_workers_melem_s: Math.round(poolRates[2]),
  speedup: Number((poolRates[2] / poolRates[1]).toFixed(2))
}
console.log(`speedup with 2 workers: ${(poolRates[2] / poolRates[1]).toFixed(2)}×`)

// 3. Where a medium JSON request's time goes, stage by stage, with the service's own functions.
function jsonBody(b: number, t: number, v: number, outputs: string[]): string {
  return JSON.stringify({
    logits: Array.from({ length: b }, () => Array.from({ length: t }, () => Array.from({ length: v }, logit))),
    targets: Array.from({ length: b }, () => Array.from({ length: t }, () => Math.floor(random() * v))),
    outputs
  })
}
const medium = jsonBody(4, 64, 1024, ['token_losses', 'gradients'])
const small = jsonBody(1, 32, 512, ['token_losses', 'gradients'])
console.log('\n# medium JSON request (4 × 64 × 1024, with gradients), in process')
const stagesApp = await buildApp({
  POOL_THREADS: 2,
  BODY_LIMIT_MB: 64,
  KERNEL_MEMORY_MB: 256,
  MAX_ELEMENTS: 2 ** 22,
  LOG_LEVEL: 'silent'
})
await stagesApp.ready()
const parsed = JSON.parse(medium)
const parseMs = timeMs(() => JSON.parse(medium))
const decodeMs = timeMs(() => decodeJsonRequest(parsed, stagesApp.kernelArena).memory.release())
const stageBatch = decodeJsonRequest(parsed, stagesApp.kernelArena)
const computeMs = await timeMsAsync(() => stagesApp.crossEntropy(stageBatch))
const result = await stagesApp.crossEntropy(stageBatch)
const encodeMs = timeMs(() => encodeJsonResponse(stageBatch, result))
const answer = encodeJsonResponse(stageBatch, result)
const stringifyMs = timeMs(() => JSON.stringify(answer))
stageBatch.memory.release()
await stagesApp.close()
const floorMs = parseMs + stringifyMs
console.log(
  `JSON.parse ${parseMs.toFixed(1)} ms, JSON.stringify ${stringifyMs.toFixed(1)} ms: the floor, ${floorMs.toFixed(1)} ms`
)
console.log(`decode ${decodeMs.toFixed(1)} ms, compute ${computeMs.toFixed(1)} ms, encode ${encodeMs.toFixed(1)} ms`)

// 4. autocannon against the built server.
console.log(`\n# server on 127.0.0.1, ${connections} connections, ${duration} s per scenario`)
// LOG_LEVEL stays at its default, info, as a deployed server runs (and startServer waits for
// the info line that says it listens).
const server = await startServer({ env: { BODY_LIMIT_MB: '256', KERNEL_MEMORY_MB: '3072', POOL_THREADS: '2' } })

function largeSafetensors(): Buffer {
  const [b, t, v] = [8, 256, 8192]
  const logits = new Float32Array(b * t * v)
  for (let i = 0; i < logits.length; i++) logits[i] = random() * 16 - 8
  const targets = BigInt64Array.from({ length: b * t }, () => BigInt(Math.floor(random() * v)))
  const chunks = writeSafetensors([
    { name: 'logits', dtype: 'F32', shape: [b, t, v], data: logits },
    { name: 'targets', dtype: 'I64', shape: [b, t], data: targets }
  ])
  return Buffer.concat(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
}

/** Requests per second if the server did nothing but the unavoidable work, on one core. */
function jsonFloorRps(body: string): number {
  const sample = JSON.parse(body)
  const parse = timeMs(() => JSON.parse(body), 5)
  const fakeAnswer = { loss: 1, perplexity: 1, count: 1, token_losses: sample.targets, gradients: sample.logits }
  const stringify = timeMs(() => JSON.stringify(fakeAnswer), 5)
  return 1000 / (parse + stringify)
}
function bytesFloorRps(requestBytes: Buffer, responseBytes: number): number {
  const into = Buffer.allocUnsafe(requestBytes.length + responseBytes)
  const copy = timeMs(() => {
    requestBytes.copy(into)
    into.copy(into, requestBytes.length, 0, responseBytes)
  }, 5)
  return 1000 / copy
}

async function leanClientRps(
  url: string,
  body: Buffer | string,
  type: string,
  seconds: number
): Promise<{ rps: number; medianMs: number }> {
  const latencies: number[] = []
  const end = performance.now() + seconds * 1000
  while (performance.now() < end) {
    const start = performance.now()
    await new Promise<void>((resolve, reject) => {
      const request = http.request(
        url,
        {
          method: 'POST',
          headers: { 'content-type': type, accept: type, 'content-length': Buffer.byteLength(body) }
        },
        (response) => {
          if (response.statusCode !== 200) reject(new Error(`status ${response.statusCode}`))
          response.on('data', () => {})
          response.on('end', resolve)
        }
      )
      request.on('error', reject)
      request.end(body)
    })
    latencies.push(performance.now() - start)
  }
  const total = latencies.reduce((sum, ms) => sum + ms, 0)
  return { rps: (1000 * latencies.length) / total, medianMs: median(latencies) }
}

const large = largeSafetensors()
const scenarios = [
  {
    name: 'small JSON 1×32×512',
    elements: 32 * 512,
    body: small,
    type: 'application/json',
    accept: 'application/json',
    query: '',
    floor: () => jsonFloorRps(small)
  },
  {
    name: 'medium JSON 4×64×1024',
    elements: 4 * 64 * 1024,
    body: medium,
    type: 'application/json',
    accept: 'application/json',
    query: '',
    floor: () => jsonFloorRps(medium)
  },
  {
    name: 'large safetensors 8×256×8192, gradients as safetensors',
    elements: 8 * 256 * 8192,
    body: large,
    type: 'application/octet-stream',
    accept: 'application/octet-stream',
    query: '?outputs=gradients',
    floor: () => bytesFloorRps(large, 8 * 256 * 8192 * 4),
    // autocannon handles a 67 MB answer slowly in JavaScript; more connections only starve it.
    connections: 1
  }
]
const rows: Array<Record<string, unknown>> = []
for (const scenario of scenarios) {
  const run = await autocannon({
    url: `${server.base}/v1/cross-entropy${scenario.query}`,
    method: 'POST',
    headers: { 'content-type': scenario.type, accept: scenario.accept },
    body: scenario.body,
    connections: 'connections' in scenario ? scenario.connections : connections,
    duration
  })
  const floor = scenario.floor()
  const row = {
    scenario: scenario.name,
    req_per_s: Number(run.requests.average.toFixed(1)),
    p50_ms: run.latency.p50,
    p99_ms: run.latency.p99,
    melem_per_s: Number(((run.requests.average * scenario.elements) / 1e6).toFixed(1)),
    floor_req_per_s: Number(floor.toFixed(1)),
    ratio_to_floor: Number((run.requests.average / floor).toFixed(3)),
    non_2xx: run.non2xx,
    errors: run.errors
  }
  rows.push(row)
  console.log(
    `${row.scenario}: ${row.req_per_s} req/s, p50 ${row.p50_ms} ms, p99 ${row.p99_ms} ms, ${row.melem_per_s} M elements/s; floor ${row.floor_req_per_s} req/s, ratio ${row.ratio_to_floor}${row.non_2xx + row.errors > 0 ? ` (${row.non_2xx} non-2xx, ${row.errors} errors)` : ''}`
  )
}
// The large scenario again with a lean client (node:http, answer discarded unread), one request
// at a time: what the server sustains when the client is not the bottleneck.
const lean = await leanClientRps(
  `${server.base}/v1/cross-entropy?outputs=gradients`,
  large,
  'application/octet-stream',
  duration
)
console.log(
  `large safetensors with a lean client, one connection: ${lean.rps.toFixed(2)} req/s, median ${lean.medianMs.toFixed(0)} ms, ${((lean.rps * 8 * 256 * 8192) / 1e6).toFixed(0)} M elements/s`
)
rows.push({
  scenario: 'large safetensors, lean node:http client',
  req_per_s: Number(lean.rps.toFixed(2)),
  p50_ms: Math.round(lean.medianMs)
})
// The medium JSON request, one at a time: the server's own account of each request (Fastify's
// responseTime, from its arrival to the last byte of the answer handed to the socket), against
// JSON.parse + JSON.stringify of the same body and answer, measured again just before and after.
// The client is curl, a separate native process that reads the answer at once; a client in this
// process would compete with the server for the two cores and slow its writes.
const logStart = server.output().length
const floorBefore = timeMs(() => JSON.parse(medium)) + timeMs(() => JSON.stringify(answer))
const mediumFile = join(tmpdir(), `xent-bench-medium-${process.pid}.json`)
writeFileSync(mediumFile, medium)
const curlUntil = performance.now() + duration * 1000
while (performance.now() < curlUntil) {
  // Asynchronously, so that this process keeps reading the server's log (a blocked reader would
  // let the log pipe fill and stall the server).
  await execFileAsync('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-H',
    'content-type: application/json',
    '--data-binary',
    `@${mediumFile}`,
    `${server.base}/v1/cross-entropy`
  ])
}
rmSync(mediumFile)
await new Promise((resolve) => setTimeout(resolve, 200))
const floorAfter = timeMs(() => JSON.parse(medium)) + timeMs(() => JSON.stringify(answer))
const serverMs = median(
  server
    .output()
    .slice(logStart)
    .split('\n')
    .filter((line) => line.includes('"responseTime"'))
    .map((line) => JSON.parse(line).responseTime as number)
)
const floorNow = (floorBefore + floorAfter) / 2
const beyond = serverMs - floorNow
console.log(
  `medium JSON, one at a time: the server takes ${serverMs.toFixed(1)} ms (median); JSON.parse + JSON.stringify ${floorNow.toFixed(1)} ms; beyond them ${beyond.toFixed(1)} ms = ${((100 * beyond) / floorNow).toFixed(0)}% of them`
)
report.json_stages_ms = {
  parse: Number(parseMs.toFixed(2)),
  stringify: Number(stringifyMs.toFixed(2)),
  decode: Number(decodeMs.toFixed(2)),
  compute: Number(computeMs.toFixed(2)),
  encode: Number(encodeMs.toFixed(2)),
  server_median: Number(serverMs.toFixed(2)),
  floor: Number(floorNow.toFixed(2)),
  beyond_floor_ratio: Number((beyond / floorNow).toFixed(3))
}
server.child.kill('SIGTERM')
await server.exited
report.server = rows
console.log(JSON.stringify(report))
