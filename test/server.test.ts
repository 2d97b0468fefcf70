import { describe, expect, it, onTestFinished } from 'vitest'
import { type RunningServer, startServer } from './server-process.js'

// Process behaviour (signals, exit codes, real sockets) needs the real server: the built one
// that `npm start` and the Docker image run. `npm test` builds it first.

async function start(env: Record<string, string> = {}): Promise<RunningServer> {
  const server = await startServer({ env })
  onTestFinished(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL')
  })
  return server
}

function waitForOutput(server: RunningServer, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (pattern.test(server.output())) resolve()
      else setTimeout(check, 5)
    }
    check()
  })
}

describe('the server process', () => {
  it('on SIGTERM turns /readyz 503, finishes in-flight requests, refuses new connections and exits 0 in its grace', async () => {
    const server = await start({ SHUTDOWN_DELAY_MS: '1500', SHUTDOWN_GRACE_MS: '8000' })
    expect((await fetch(`${server.base}/readyz`)).status).toBe(200)

    // A request large enough to still be running when the signal lands.
    const rows = 512
    const vocab = 2048
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => ((r * 31 + c * 17) % 97) / 10)
    )
    const targets = Array.from({ length: rows }, (_, r) => r % vocab)
    const inFlight = fetch(`${server.base}/v1/cross-entropy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ logits, targets, outputs: ['gradients'] })
    })
    await waitForOutput(server, /"url":"\/v1\/cross-entropy"/)
    const signalled = Date.now()
    server.child.kill('SIGTERM')
    await waitForOutput(server, /closing: not ready/)

    // Not ready at once, while it still answers (SHUTDOWN_DELAY_MS), so balancers move away.
    const probe = await fetch(`${server.base}/readyz`)
    expect(probe.status).toBe(503)
    expect(await probe.json()).toEqual({ status: 'shutting_down' })
    expect((await fetch(`${server.base}/healthz`)).status).toBe(200)

    const res = await inFlight
    expect(res.status).toBe(200)
    const body = (await res.json()) as { count: number; gradients: unknown[] }
    expect(body.count).toBe(rows)
    expect(body.gradients).toHaveLength(rows)

    expect(await server.exited).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(8000)
    await expect(fetch(`${server.base}/healthz`)).rejects.toThrow()
    // Bodies are never logged: no run of logits appears in the log.
    expect(server.output()).not.toContain('[0,1.7,3.4')
  })

  it('refuses new connections once the listener closes, before in-flight work ends', async () => {
    const server = await start({ POOL_THREADS: '1' })
    const rows = 2048
    const vocab = 1024
    const logits = Array.from({ length: rows }, (_, r) => Array.from({ length: vocab }, (_, c) => ((r + c) % 13) / 4))
    const inFlight = fetch(`${server.base}/v1/cross-entropy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ logits, targets: Array(rows).fill(1), outputs: ['gradients'] })
    })
    await waitForOutput(server, /"url":"\/v1\/cross-entropy"/)
    server.child.kill('SIGTERM')
    await waitForOutput(server, /closing: not ready/)
    // SHUTDOWN_DELAY_MS is 0 here: the listener closes at once.
    await expect(
      (async () => {
        for (;;) {
          await fetch(`${server.base}/healthz`)
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
      })()
    ).rejects.toThrow()
    const res = await inFlight
    expect(res.status).toBe(200)
    expect(((await res.json()) as { count: number }).count).toBe(rows)
    expect(await server.exited).toBe(0)
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
