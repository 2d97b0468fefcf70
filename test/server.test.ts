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
  it('finishes in-flight requests on SIGTERM, then refuses connections and exits 0', async () => {
    const server = await start()
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
    server.child.kill('SIGTERM')

    const res = await inFlight
    expect(res.status).toBe(200)
    const body = (await res.json()) as { count: number; gradients: unknown[] }
    expect(body.count).toBe(rows)
    expect(body.gradients).toHaveLength(rows)

    expect(await server.exited).toBe(0)
    await expect(fetch(`${server.base}/healthz`)).rejects.toThrow()
    expect(server.output()).toContain('closing: finishing in-flight requests')
    // Bodies are never logged: no run of logits appears in the log.
    expect(server.output()).not.toContain('[0,1.7,3.4')
  })

  it('refuses to start on bad configuration, naming the variable', async () => {
    // The log line is JSON, so the quotes around the value arrive escaped.
    await expect(start({ POOL_THREADS: 'many' })).rejects.toThrow(
      /exited with 1 .*POOL_THREADS=\\"many\\" must be integer/s
    )
  })
})
