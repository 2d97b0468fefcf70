import { request as httpRequest } from 'node:http'
import { describe, expect, it, onTestFinished } from 'vitest'
import { EVENT_DEADLINE_MS } from './faults.js'
import { type RunningServer, startServer } from './server-process.js'

// Process behaviour (signals, exit codes, real sockets) needs the real server: the built one
// that `npm start` and the Docker image run. `npm test` builds it first. The delay before the
// listener closes (SHUTDOWN_DELAY_MS) is tested in process (test/plugins/shutdown.test.ts).

async function start(env: Record<string, string> = {}): Promise<RunningServer> {
  const server = await startServer({ env })
  onTestFinished(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL')
  })
  return server
}

/** Resolves once the server's output matches, up to EVENT_DEADLINE_MS. */
async function waitForOutput(server: RunningServer, pattern: RegExp): Promise<void> {
  const deadline = performance.now() + EVENT_DEADLINE_MS
  while (!pattern.test(server.output())) {
    if (performance.now() > deadline) throw new Error(`the server never logged ${pattern}:\n${server.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * A request whose body is sent in two parts: until `finish()`, the server holds it in flight,
 * whatever it does meanwhile. Resolves `answer` with the status and the body.
 */
function splitRequest(base: string, body: string) {
  const req = httpRequest(`${base}/v1/cross-entropy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  })
  const half = Math.floor(body.length / 2)
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
  })
  req.write(body.slice(0, half))
  return { answer, finish: () => req.end(body.slice(half)) }
}

describe('the server process', () => {
  it('on SIGTERM turns not ready, refuses new connections, finishes the request in flight and exits 0', async () => {
    const server = await start({ SHUTDOWN_GRACE_MS: '20000' })
    expect((await fetch(`${server.base}/readyz`)).status).toBe(200)
    const rows = 64
    const vocab = 512
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => ((r * 31 + c * 17) % 97) / 10)
    )
    const targets = Array.from({ length: rows }, (_, r) => r % vocab)
    const inFlight = splitRequest(server.base, JSON.stringify({ logits, targets, outputs: ['gradients'] }))
    // The request has arrived, and half its body is still to come.
    await waitForOutput(server, /"url":"\/v1\/cross-entropy"/)
    server.child.kill('SIGTERM')
    await waitForOutput(server, /closing: not ready/)

    // The listener closes while the request is still in flight: new connections are refused.
    const deadline = performance.now() + EVENT_DEADLINE_MS
    for (;;) {
      const refused = await fetch(`${server.base}/healthz`).then(
        () => false,
        () => true
      )
      if (refused) break
      if (performance.now() > deadline) throw new Error('the listener never closed')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    expect(server.child.exitCode).toBeNull()

    inFlight.finish()
    const res = await inFlight.answer
    expect(res.status).toBe(200)
    const body = JSON.parse(res.body) as { count: number; gradients: unknown[] }
    expect(body.count).toBe(rows)
    expect(body.gradients).toHaveLength(rows)
    // 0: it closed within SHUTDOWN_GRACE_MS (past it, close-with-grace exits 1).
    expect(await server.exited).toBe(0)
    // Bodies are never logged: no run of logits appears in the log.
    expect(server.output()).not.toContain('[0,1.7,3.4')
    // Log lines are written in batches: none is lost at exit. Every request that came in (the
    // readiness check, the health probes, the one in flight) has its line saying it completed.
    const incoming = server.output().match(/"msg":"incoming request"/g) ?? []
    const completed = server.output().match(/"msg":"request completed"/g) ?? []
    expect(incoming.length).toBeGreaterThanOrEqual(2)
    expect(completed).toHaveLength(incoming.length)
  })

  it('refuses to start on bad configuration, naming the variable', async () => {
    // The log line is JSON, so the quotes around the value arrive escaped.
    await expect(start({ POOL_THREADS: 'many' })).rejects.toThrow(
      /exited with 1 .*POOL_THREADS=\\"many\\" must be integer/s
    )
  })

  it('refuses to start when KERNEL_MEMORY_MB cannot hold what MAX_ELEMENTS allows, naming both', async () => {
    await expect(start({ KERNEL_MEMORY_MB: '64' })).rejects.toThrow(
      /exited with 1 .*KERNEL_MEMORY_MB=64 cannot hold the largest request MAX_ELEMENTS=33554432 allows/s
    )
  })
})
