/**
 * The whole benchmark, every figure beside the floor it is measured against, in one run:
 *
 *   npm run bench [-- --duration 5 --connections 4]
 *
 * 1. the kernel on one thread (load/bench-kernel.ts) against memcpy;
 * 2. the pool with 1 and 2 workers on one large batch;
 * 3. where a medium JSON request's time goes (read by the workers, computed, printed by the
 *    workers), against JSON.parse + JSON.stringify of its texts;
 * 4. /v1/logprobs end to end (256×32000, top-8 and entropy, safetensors) against PyTorch doing
 *    the same work on one thread, in turns, when a Python with torch is found;
 * 5. the medium JSON request end to end, one at a time, against JSON.parse + JSON.stringify;
 * 6. autocannon against the built server on 127.0.0.1: small JSON (1×32×512), medium JSON
 *    (4×64×1024), and a large safetensors request answered in safetensors (8×256×8192);
 * 7. small and medium JSON at 8 connections against the FastAPI + PyTorch peer
 *    (../shared/peers/fastapi_torch.py, 2 uvicorn workers), in turns, when its Python is found;
 * 8. /healthz latency while four ~60 MB JSON requests are in flight.
 *
 * It needs `npm run build` first (the script does it) and curl, targets only loopback, and stops
 * by itself.
 */
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import autocannon from 'autocannon'
import Value from 'typebox/value'
import { CrossEntropyRequestSchema } from '../schemas/cross-entropy.js'
import { buildApp } from '../src/app.js'
import { writeSafetensors } from '../src/codec/safetensors.js'
import { computeCrossEntropy } from '../src/ops/cross-entropy/compute.js'
import { CROSS_ENTROPY_TENSORS, printCrossEntropyJson, readCrossEntropyJson } from '../src/ops/cross-entropy/json.js'
import { decodeCrossEntropySafetensors } from '../src/ops/cross-entropy/safetensors.js'
import { readSmallFields } from '../src/ops/json-body.js'
import { startServer } from '../test/server-process.js'
import { startPeer } from './peer.js'
import { startTorchFloor } from './torch-floor.js'

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
// Logits as a client's JSON.stringify writes doubles: 17 significant digits, ~19 bytes each.
const logit = () => random() * 16 - 8

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

const report: Record<string, unknown> = {}

/** A safetensors file as one buffer. */
function safetensorsBytes(tensors: Parameters<typeof writeSafetensors>[0]): Buffer {
  const chunks = writeSafetensors(tensors)
  return Buffer.concat(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
}

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
const poolFile = safetensorsBytes([
  {
    name: 'logits',
    dtype: 'F32',
    shape: [POOL_ROWS, POOL_VOCAB],
    data: Float32Array.from({ length: POOL_ROWS * POOL_VOCAB }, () => random() * 16 - 8)
  },
  {
    name: 'targets',
    dtype: 'I32',
    shape: [POOL_ROWS],
    data: Int32Array.from({ length: POOL_ROWS }, (_, r) => (r * 7919) % POOL_VOCAB)
  }
])

/** An app with `threads` workers and the batch in its memory; run() times one pass. */
async function poolRunner(threads: number) {
  const app = await buildApp({
    POOL_THREADS: threads,
    BODY_LIMIT_MB: 64,
    LOG_LEVEL: 'silent'
  })
  await app.ready()
  return {
    // Each run is a request of its own: the batch lands in its memory as a safetensors body
    // would, and only the computation is timed. Released memory is reused (already paged in).
    run: async () => {
      const memory = app.engine.openRequest()
      try {
        const bytes = memory.bytes(poolFile.byteLength)
        bytes.set(poolFile)
        const job = decodeCrossEntropySafetensors(bytes, { outputs: 'gradients' }, memory, app.engine)
        const start = performance.now()
        await computeCrossEntropy(app.engine, job)
        return performance.now() - start
      } finally {
        memory.release()
      }
    },
    close: () => app.close()
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
  MAX_ELEMENTS: 2 ** 21,
  LOG_LEVEL: 'silent'
})
await stagesApp.ready()
// The route checks the small fields with its own schema validator; here TypeBox's, on the same schema.
const validateRequest = (body: unknown) => Value.Check(CrossEntropyRequestSchema, body)
const mediumBytes = Buffer.from(medium)
/** One medium request's stages, in its own memory: read (index + small fields + tensors), compute, print. */
async function mediumStages() {
  const memory = stagesApp.engine.openRequest()
  try {
    const bytes = memory.bytes(mediumBytes.length)
    bytes.set(mediumBytes)
    const t0 = performance.now()
    const fast = await readSmallFields(stagesApp.engine, memory, bytes, CROSS_ENTROPY_TENSORS, validateRequest, {})
    const job = fast === null ? null : await readCrossEntropyJson(fast, memory, stagesApp.engine, {})
    if (job === null) throw new Error('the fast reading declined the bench body')
    const t1 = performance.now()
    const result = await computeCrossEntropy(stagesApp.engine, job)
    const t2 = performance.now()
    const chunks = await printCrossEntropyJson(stagesApp.engine, job, result, {})
    const t3 = performance.now()
    const text = Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))).toString()
    return { read: t1 - t0, compute: t2 - t1, print: t3 - t2, text }
  } finally {
    memory.release()
  }
}
const stageSamples: Array<{ read: number; compute: number; print: number }> = []
let answerText = ''
for (let round = 0; round < 12; round++) {
  const stages = await mediumStages()
  answerText = stages.text
  if (round >= 2) stageSamples.push(stages)
}
await stagesApp.close()
const answer = JSON.parse(answerText)
const parseMs = timeMs(() => JSON.parse(medium))
const stringifyMs = timeMs(() => JSON.stringify(answer))
const [readMs, computeMs, printMs] = (['read', 'compute', 'print'] as const).map((stage) =>
  median(stageSamples.map((sample) => sample[stage]))
)
console.log(
  `body ${(medium.length / 1e6).toFixed(2)} MB, answer ${(answerText.length / 1e6).toFixed(2)} MB (gradients as shortest float32 decimals)`
)
console.log(
  `JSON.parse ${parseMs.toFixed(1)} ms + JSON.stringify ${stringifyMs.toFixed(1)} ms = ${(parseMs + stringifyMs).toFixed(1)} ms`
)
console.log(
  `read by the workers ${readMs.toFixed(1)} ms, compute ${computeMs.toFixed(1)} ms, printed by the workers ${printMs.toFixed(1)} ms: ${(readMs + computeMs + printMs).toFixed(1)} ms`
)

// The built server, for the rest.
console.log(`\n# server on 127.0.0.1, ${connections} connections, ${duration} s per scenario`)
// LOG_LEVEL stays at its default, info, as a deployed server runs (and startServer waits for
// the info line that says it listens).
const server = await startServer({
  env: { BODY_LIMIT_MB: '256', KERNEL_MEMORY_MB: '3072', POOL_THREADS: '2' },
  keepOutput: false
})

function largeSafetensors(): Buffer {
  const [b, t, v] = [8, 256, 8192]
  const logits = new Float32Array(b * t * v)
  for (let i = 0; i < logits.length; i++) logits[i] = random() * 16 - 8
  const targets = BigInt64Array.from({ length: b * t }, () => BigInt(Math.floor(random() * v)))
  return safetensorsBytes([
    { name: 'logits', dtype: 'F32', shape: [b, t, v], data: logits },
    { name: 'targets', dtype: 'I64', shape: [b, t], data: targets }
  ])
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

/** One POST, its answer read and discarded; rejects unless it is a 200. */
function postOnce(url: string, body: Buffer | string, type: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', headers: { 'content-type': type, accept: type, 'content-length': Buffer.byteLength(body) } },
      (response) => {
        if (response.statusCode !== 200) reject(new Error(`status ${response.statusCode}`))
        response.on('data', () => {})
        response.on('end', resolve)
      }
    )
    request.on('error', reject)
    request.end(body)
  })
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
    await postOnce(url, body, type)
    latencies.push(performance.now() - start)
  }
  const total = latencies.reduce((sum, ms) => sum + ms, 0)
  return { rps: (1000 * latencies.length) / total, medianMs: median(latencies) }
}

// 4. /v1/logprobs end to end against PyTorch doing the same work locally, on the fresh server before
// the load scenarios (whose 67 MB answers leave the heap to be collected for a while): a safetensors request and
// answer at 256 × 32000 F32 with top-8, entropy and target log-probs, one at a time, taking turns
// with PyTorch's log_softmax + gather + topk + entropy on one thread (load/torch_floor.py). The
// client is curl, a separate native process, and the figure is its own time_total: from before
// the connection to the answer's last byte, the upload of the 33 MB body included.
const LOGPROBS_ROWS = 256
const LOGPROBS_VOCAB = 32_000
const logprobsFile = join(tmpdir(), `xent-bench-logprobs-${process.pid}.safetensors`)
writeFileSync(
  logprobsFile,
  safetensorsBytes([
    {
      name: 'logits',
      dtype: 'F32',
      shape: [LOGPROBS_ROWS, LOGPROBS_VOCAB],
      data: Float32Array.from({ length: LOGPROBS_ROWS * LOGPROBS_VOCAB }, () => random() * 16 - 8)
    },
    {
      name: 'targets',
      dtype: 'I32',
      shape: [LOGPROBS_ROWS],
      data: Int32Array.from({ length: LOGPROBS_ROWS }, (_, r) => (r * 7919) % LOGPROBS_VOCAB)
    }
  ])
)
const curlLogprobs = async () => {
  const { stdout } = await execFileAsync('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{time_total}',
    '-H',
    'content-type: application/octet-stream',
    '-H',
    'accept: application/octet-stream',
    '--data-binary',
    `@${logprobsFile}`,
    `${server.base}/v1/logprobs?top_k=8&outputs=entropy`
  ])
  const [status, seconds] = stdout.split(' ')
  if (status !== '200') throw new Error(`/v1/logprobs answered ${status}`)
  return Number(seconds) * 1000
}
const logprobsTorch = await startTorchFloor(LOGPROBS_ROWS, LOGPROBS_VOCAB)
if (logprobsTorch === undefined) {
  console.log('\n/v1/logprobs against PyTorch: skipped, no python3 with torch found (set XENT_TORCH_PYTHON)')
} else {
  const xentMs: number[] = []
  const torchMs: number[] = []
  for (let round = 0; round < 43; round++) {
    // Each side goes first in every other round, so neither always follows the other.
    let xent: number
    let torch: number
    if (round % 2 === 0) {
      xent = await curlLogprobs()
      torch = await logprobsTorch.timeMs('logprobs')
    } else {
      torch = await logprobsTorch.timeMs('logprobs')
      xent = await curlLogprobs()
    }
    if (round >= 3) {
      xentMs.push(xent)
      torchMs.push(torch)
    }
  }
  logprobsTorch.close()
  const ratios = xentMs.map((ms, i) => ms / torchMs[i])
  const range = (list: number[]) => `${Math.min(...list).toFixed(1)}–${Math.max(...list).toFixed(1)}`
  console.log(
    `\n/v1/logprobs 256 × 32000 F32, top-8 + entropy, safetensors both ways, one at a time: xent ${median(xentMs).toFixed(1)} ms (${range(xentMs)}) end to end; PyTorch ${logprobsTorch.version}, one thread, in process: ${median(torchMs).toFixed(1)} ms (${range(torchMs)}); xent / PyTorch ${median(ratios).toFixed(2)} (pairs ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`
  )
  report.logprobs_vs_torch = {
    xent_ms: Number(median(xentMs).toFixed(2)),
    torch_ms: Number(median(torchMs).toFixed(2)),
    ratio: Number(median(ratios).toFixed(3))
  }
}
rmSync(logprobsFile)

// 5. The medium JSON request end to end, one at a time (on the fresh server, before the load
// scenarios, like the /v1/logprobs comparison), from curl (a separate native process; its
// own time_total, from before the connection to the answer's last byte), in turns with
// JSON.parse of the body + JSON.stringify of the answer it got, in this process.
console.log(
  '\n# medium JSON (4 × 64 × 1024, with gradients) end to end, one at a time, against JSON.parse + JSON.stringify'
)
const mediumFile = join(tmpdir(), `xent-bench-medium-${process.pid}.json`)
const mediumAnswerFile = join(tmpdir(), `xent-bench-medium-answer-${process.pid}.json`)
writeFileSync(mediumFile, medium)
const curlMedium = async (saveTo = '/dev/null') => {
  // Asynchronously, so that this process keeps reading the server's log (a blocked reader would
  // let the log pipe fill and stall the server).
  const { stdout } = await execFileAsync('curl', [
    '-s',
    '-o',
    saveTo,
    '-w',
    '%{http_code} %{time_total}',
    '-H',
    'content-type: application/json',
    '--data-binary',
    `@${mediumFile}`,
    `${server.base}/v1/cross-entropy`
  ])
  const [status, seconds] = stdout.split(' ')
  if (status !== '200') throw new Error(`medium JSON answered ${status}`)
  return Number(seconds) * 1000
}
await curlMedium(mediumAnswerFile)
const servedAnswer = JSON.parse(readFileSync(mediumAnswerFile, 'utf8'))
const e2eMs: number[] = []
const floorMs: number[] = []
for (let round = 0; round < 23; round++) {
  const e2e = await curlMedium()
  const parseOnce = timeMs(() => JSON.parse(medium), 1)
  const stringifyOnce = timeMs(() => JSON.stringify(servedAnswer), 1)
  if (round >= 3) {
    e2eMs.push(e2e)
    floorMs.push(parseOnce + stringifyOnce)
  }
}
rmSync(mediumFile)
rmSync(mediumAnswerFile)
const e2eRatios = e2eMs.map((ms, i) => ms / floorMs[i])
const spread = (list: number[], digits = 1) =>
  `${Math.min(...list).toFixed(digits)}–${Math.max(...list).toFixed(digits)}`
console.log(
  `end to end ${median(e2eMs).toFixed(1)} ms (${spread(e2eMs)}); JSON.parse + JSON.stringify ${median(floorMs).toFixed(1)} ms (${spread(floorMs)}); ratio ${median(e2eRatios).toFixed(2)} (pairs ${spread(e2eRatios, 2)}); target ≤ 0.6`
)
report.json_medium = {
  body_bytes: medium.length,
  answer_bytes: answerText.length,
  parse_ms: Number(parseMs.toFixed(2)),
  stringify_ms: Number(stringifyMs.toFixed(2)),
  read_ms: Number(readMs.toFixed(2)),
  compute_ms: Number(computeMs.toFixed(2)),
  print_ms: Number(printMs.toFixed(2)),
  end_to_end_ms: Number(median(e2eMs).toFixed(2)),
  floor_ms: Number(median(floorMs).toFixed(2)),
  ratio: Number(median(e2eRatios).toFixed(3))
}

// 6. autocannon scenarios.
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
// 7. Throughput at 8 connections against the FastAPI + PyTorch peer, in turns (xent, peer,
// xent, peer), each run PEER_SECONDS long.
const PEER_CONNECTIONS = 8
const PEER_SECONDS = Math.max(3, Math.min(duration, 10))
console.log(
  `\n# small and medium JSON with gradients, ${PEER_CONNECTIONS} connections, against FastAPI + PyTorch (2 uvicorn workers)`
)
const peer = await startPeer()
if (typeof peer === 'string') {
  console.log(`skipped: ${peer}`)
} else {
  const throughput = async (base: string, body: string) => {
    const run = await autocannon({
      url: `${base}/v1/cross-entropy`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections: PEER_CONNECTIONS,
      duration: PEER_SECONDS
    })
    if (run.non2xx + run.errors > 0) throw new Error(`${base}: ${run.non2xx} non-2xx, ${run.errors} errors`)
    return run.requests.average
  }
  report.vs_peer = {}
  for (const [name, body] of [
    ['small 1×32×512', small],
    ['medium 4×64×1024', medium]
  ] as const) {
    const ours: number[] = []
    const theirs: number[] = []
    for (let round = 0; round < 2; round++) {
      ours.push(await throughput(server.base, body))
      theirs.push(await throughput(peer.base, body))
    }
    const ratios = ours.map((rps, i) => rps / theirs[i])
    console.log(
      `${name}: xent ${spread(ours)} req/s, the peer ${spread(theirs)} req/s; xent / peer ${spread(ratios, 2)} (target ≥ 5)`
    )
    ;(report.vs_peer as Record<string, unknown>)[name] = {
      xent_req_s: ours.map((n) => Number(n.toFixed(1))),
      peer_req_s: theirs.map((n) => Number(n.toFixed(1))),
      ratios: ratios.map((n) => Number(n.toFixed(2)))
    }
  }
  await peer.close()
}

// 8. /healthz while four ~60 MB JSON requests are in flight. Two processes of their own: one
// keeps four uploads of a 60 MB body (8 × 96 × 4000 logits, with gradients) going, each starting
// again as soon as its answer has come; the other asks for /healthz every 10 ms meanwhile. (This
// process reads the server's log: were it busy sending, the log pipe would fill and the server's
// writes to it would wait.) A first round of uploads alone, before the probes, pages in the
// kernel memory they use, as any server that has run for a while has.
console.log('\n# /healthz while four ~60 MB JSON requests are in flight')
const hugeFile = join(tmpdir(), `xent-bench-huge-${process.pid}.json`)
writeFileSync(hugeFile, jsonBody(8, 96, 4000, ['token_losses', 'gradients']))
const PROBE_SECONDS = Math.max(5, Math.min(duration * 2, 20))
const uploads = (seconds: number) =>
  execFileAsync(process.execPath, [
    '--input-type=module',
    '-e',
    `
  import http from 'node:http'
  import { readFileSync } from 'node:fs'
  const body = readFileSync(${JSON.stringify(hugeFile)})
  const until = Date.now() + ${seconds * 1000}
  let done = 0
  const post = () => new Promise((resolve, reject) => {
    const request = http.request('${server.base}/v1/cross-entropy', {
      method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length }
    }, (res) => {
      if (res.statusCode !== 200) reject(new Error('status ' + res.statusCode))
      res.resume()
      res.on('end', resolve)
    })
    request.on('error', reject)
    request.end(body)
  })
  await Promise.all(Array.from({ length: 4 }, async () => { while (Date.now() < until) { await post(); done++ } }))
  console.log(JSON.stringify({ done, bytes: body.length }))
  `
  ])
await uploads(Math.max(3, duration))
const probe = execFileAsync(process.execPath, [
  '--input-type=module',
  '-e',
  `
  import http from 'node:http'
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const latencies = []
  const end = Date.now() + ${PROBE_SECONDS * 1000}
  while (Date.now() < end) {
    const start = performance.now()
    await new Promise((resolve, reject) => http.get('${server.base}/healthz', { agent }, (res) => {
      res.resume(); res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error('status ' + res.statusCode)))
    }).on('error', reject))
    latencies.push(performance.now() - start)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  latencies.sort((a, b) => a - b)
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
  console.log(JSON.stringify({ probes: latencies.length, p50: at(0.5), p99: at(0.99), max: latencies.at(-1) }))
  `
])
const huge = JSON.parse((await uploads(PROBE_SECONDS)).stdout) as { done: number; bytes: number }
const probes = JSON.parse((await probe).stdout) as { probes: number; p50: number; p99: number; max: number }
rmSync(hugeFile)
console.log(
  `${probes.probes} probes: p50 ${probes.p50.toFixed(1)} ms, p99 ${probes.p99.toFixed(1)} ms, max ${probes.max.toFixed(1)} ms, while ${huge.done} requests of ${(huge.bytes / 1e6).toFixed(0)} MB were answered (target p99 ≤ 50 ms)`
)
report.probes_under_huge_json = { ...probes, huge_requests: huge.done, body_bytes: huge.bytes }

server.child.kill('SIGTERM')
await server.exited
report.server = rows
console.log(JSON.stringify(report))
