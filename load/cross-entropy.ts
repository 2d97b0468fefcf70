/**
 * A bounded autocannon run against POST /v1/cross-entropy.
 *
 *   npm run load                                   # starts its own server on 127.0.0.1 and loads it
 *   npm run load -- --url http://127.0.0.1:8080    # loads a server you started (loopback only)
 *   npm run load -- --batch 4 --seq 64 --vocab 1024 --duration 10 --connections 8 --gradients
 *
 * It stops by itself after --duration seconds (at most 120) and prints one JSON summary line.
 */
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { buildApp } from '../src/app.js'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '64' },
    vocab: { type: 'string', default: '1024' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '8' },
    gradients: { type: 'boolean', default: false }
  }
})

const batch = Number(values.batch)
const seq = Number(values.seq)
const vocab = Number(values.vocab)
const duration = Math.min(Number(values.duration), 120)
const connections = Number(values.connections)

if (values.url !== undefined) {
  const host = new URL(values.url).hostname
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
    throw new Error(`load tests only target this machine's loopback; got ${host}`)
  }
}

// Deterministic pseudo-random logits, so runs are comparable.
let seed = 42
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const body = JSON.stringify({
  logits: Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => Array.from({ length: vocab }, () => Math.round((random() * 8 - 4) * 1e4) / 1e4))
  ),
  targets: Array.from({ length: batch }, () => Array.from({ length: seq }, () => Math.floor(random() * vocab))),
  outputs: values.gradients ? ['token_losses', 'gradients'] : ['token_losses']
})

const app =
  values.url === undefined
    ? await buildApp({
        POOL_THREADS: Number(process.env.POOL_THREADS ?? 2),
        BODY_LIMIT_MB: 256,
        KERNEL_MEMORY_MB: 2048,
        LOG_LEVEL: 'warn'
      })
    : null
const url = values.url ?? (await app?.listen({ host: '127.0.0.1', port: 0 }))

const result = await autocannon({
  url: `${url}/v1/cross-entropy`,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body,
  connections,
  duration
})
await app?.close()

const elements = batch * seq * vocab
console.log(
  JSON.stringify({
    scenario: `${batch}x${seq}x${vocab}${values.gradients ? '+gradients' : ''}`,
    body_bytes: body.length,
    requests: result.requests.total,
    req_per_s: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    melem_per_s: (result.requests.average * elements) / 1e6,
    non_2xx: result.non2xx,
    errors: result.errors
  })
)
if (result.non2xx > 0 || result.errors > 0) process.exitCode = 1
