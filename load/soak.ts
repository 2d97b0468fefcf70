/**
 * A bounded soak: valid and invalid requests mixed, for a fixed time, against a server on
 * 127.0.0.1 (the built one, started here, unless --url names one already running).
 *
 *   npm run load:soak [-- --duration 60 --connections 8 --url http://127.0.0.1:8080]
 *
 * It reports requests served, the status breakdown, p50/p99 latency and the server's RSS (from
 * /metrics) at the start, through the run and at the end. It exits 1 if any valid request
 * failed, an invalid one got anything but its 4xx, or RSS kept growing.
 */
import { parseArgs } from 'node:util'
import { writeSafetensors } from '../src/codec/safetensors.js'
import { type RunningServer, startServer } from '../test/server-process.js'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    connections: { type: 'string', default: '8' },
    url: { type: 'string' }
  }
})
const durationMs = Number(values.duration) * 1000
const connections = Number(values.connections)

interface Scenario {
  name: string
  valid: boolean
  weight: number
  contentType: string
  body: string | Uint8Array<ArrayBuffer>
  /** The status it must get. */
  expected: number
}

function logits(rows: number, vocab: number, seed: number): number[][] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: vocab }, (_, c) => (((r + seed) * 31 + c * 17) % 97) / 12 - 4)
  )
}

function safetensorsBody(rows: number, vocab: number): Uint8Array<ArrayBuffer> {
  const chunks = writeSafetensors([
    { name: 'logits', dtype: 'F32', shape: [rows, vocab], data: Float32Array.from(logits(rows, vocab, 3).flat()) },
    { name: 'targets', dtype: 'I32', shape: [rows], data: Int32Array.from({ length: rows }, (_, r) => r % vocab) }
  ])
  return new Uint8Array(Buffer.concat(chunks))
}

const json = 'application/json'
const scenarios: Scenario[] = [
  {
    name: 'small JSON with gradients',
    valid: true,
    weight: 40,
    contentType: json,
    body: JSON.stringify({ logits: logits(32, 512, 1), targets: Array(32).fill(7), outputs: ['gradients'] }),
    expected: 200
  },
  {
    name: 'medium JSON',
    valid: true,
    weight: 8,
    contentType: json,
    body: JSON.stringify({ logits: logits(256, 1024, 2), targets: Array(256).fill(3) }),
    expected: 200
  },
  {
    name: 'safetensors',
    valid: true,
    weight: 20,
    contentType: 'application/octet-stream',
    body: safetensorsBody(128, 2048),
    expected: 200
  },
  { name: 'malformed JSON', valid: false, weight: 8, contentType: json, body: '{"logits": [[1, 2]', expected: 400 },
  {
    name: 'NaN-like string',
    valid: false,
    weight: 8,
    contentType: json,
    body: '{"logits": [[1, "NaN"]], "targets": [0]}',
    expected: 400
  },
  {
    name: 'target out of range',
    valid: false,
    weight: 8,
    contentType: json,
    body: JSON.stringify({ logits: logits(4, 16, 5), targets: [0, 1, 99, 2] }),
    expected: 400
  },
  {
    name: 'poisoned key',
    valid: false,
    weight: 4,
    contentType: json,
    body: '{"__proto__": {"x": 1}, "logits": [[1, 2]], "targets": [0]}',
    expected: 400
  },
  {
    name: 'random bytes as safetensors',
    valid: false,
    weight: 4,
    contentType: 'application/octet-stream',
    body: Uint8Array.from({ length: 300 }, (_, i) => (i * 73) % 256),
    expected: 400
  }
]
const totalWeight = scenarios.reduce((sum, s) => sum + s.weight, 0)
let pick = 0
function nextScenario(): Scenario {
  // A fixed, interleaved order by weight (no randomness: runs are comparable).
  pick = (pick + 37) % totalWeight
  let left = pick
  for (const scenario of scenarios) {
    if (left < scenario.weight) return scenario
    left -= scenario.weight
  }
  return scenarios[0]
}

let server: RunningServer | undefined
let base = values.url
if (base === undefined) {
  server = await startServer({ env: { POOL_THREADS: '2' }, keepOutput: false })
  base = server.base
}

async function rssBytes(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('process_resident_memory_bytes '))
  return Number(line?.split(' ')[1])
}

const statuses = new Map<string, number>()
const latencies: number[] = []
const failures: string[] = []
let served = 0
const rss: Array<{ atS: number; mb: number }> = []
const started = Date.now()
const endAt = started + durationMs
const mb = (bytes: number) => Math.round(bytes / 2 ** 20)
rss.push({ atS: 0, mb: mb(await rssBytes()) })

async function client(): Promise<void> {
  while (Date.now() < endAt) {
    const scenario = nextScenario()
    const sent = performance.now()
    let status: number
    try {
      const res = await fetch(`${base}/v1/cross-entropy`, {
        method: 'POST',
        headers: { 'content-type': scenario.contentType },
        body: scenario.body
      })
      await res.arrayBuffer()
      status = res.status
    } catch (error) {
      status = 0
      failures.push(`${scenario.name}: ${(error as Error).message}`)
    }
    latencies.push(performance.now() - sent)
    served++
    const key = `${scenario.valid ? 'valid' : 'invalid'} ${status}`
    statuses.set(key, (statuses.get(key) ?? 0) + 1)
    if (status !== scenario.expected && failures.length < 20) {
      failures.push(`${scenario.name}: expected ${scenario.expected}, got ${status}`)
    }
  }
}

const sampler = setInterval(async () => {
  rss.push({ atS: Math.round((Date.now() - started) / 1000), mb: mb(await rssBytes()) })
}, 5000)
await Promise.all(Array.from({ length: connections }, client))
clearInterval(sampler)
rss.push({ atS: Math.round((Date.now() - started) / 1000), mb: mb(await rssBytes()) })
server?.child.kill('SIGTERM')

latencies.sort((a, b) => a - b)
const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
// Growth: the last third of the samples against the middle third (the first is warm-up).
const third = Math.floor(rss.length / 3)
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]
const middle = median(rss.slice(third, 2 * third).map((s) => s.mb))
const last = median(rss.slice(2 * third).map((s) => s.mb))
const growing = last > middle * 1.1 && last - middle > 32

console.log(`soak against ${base}: ${values.duration} s, ${connections} connections`)
console.log(`requests served   ${served} (${(served / (durationMs / 1000)).toFixed(1)} req/s)`)
console.log(
  `statuses          ${[...statuses.entries()]
    .sort()
    .map(([key, count]) => `${key}: ${count}`)
    .join(', ')}`
)
console.log(`latency           p50 ${quantile(0.5).toFixed(1)} ms, p99 ${quantile(0.99).toFixed(1)} ms`)
console.log(`RSS               start ${rss[0].mb} MB, end ${rss[rss.length - 1].mb} MB`)
console.log(`RSS samples (s:MB) ${rss.map((s) => `${s.atS}:${s.mb}`).join(' ')}`)
console.log(`RSS growth        middle third ${middle} MB, last third ${last} MB: ${growing ? 'GROWING' : 'flat'}`)
if (failures.length > 0) console.log(`failures:\n  ${failures.join('\n  ')}`)
const ok = failures.length === 0 && !growing
console.log(ok ? 'PASS' : 'FAIL')
process.exit(ok ? 0 : 1)
