import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'

// Process behaviour (signals, exit codes, real sockets) needs the real server: the built one
// that `npm start` and the Docker image run. `npm test` builds it first.
const SERVER = fileURLToPath(new URL('../dist/src/server.js', import.meta.url))

interface Running {
  child: ChildProcess
  port: number
  output: () => string
  exited: Promise<number | null>
}

function start(env: Record<string, string>): Promise<Running> {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: run \`npm run build\` first`)
  const child = spawn(process.execPath, [SERVER], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', POOL_THREADS: '2', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let output = ''
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const listening = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (listening !== null) resolve({ child, port: Number(listening[1]), output: () => output, exited })
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    exited.then((code) => reject(new Error(`server exited with ${code} before listening:\n${output}`)))
  })
}

function waitForOutput(running: Running, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (pattern.test(running.output())) resolve()
      else setTimeout(check, 5)
    }
    check()
  })
}

describe('the server process', () => {
  it('finishes in-flight requests on SIGTERM, then refuses connections and exits 0', async () => {
    const server = await start({})
    const base = `http://127.0.0.1:${server.port}`
    expect((await fetch(`${base}/readyz`)).status).toBe(200)

    // A request large enough to still be running when the signal lands.
    const rows = 512
    const vocab = 2048
    const logits = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: vocab }, (_, c) => ((r * 31 + c * 17) % 97) / 10)
    )
    const targets = Array.from({ length: rows }, (_, r) => r % vocab)
    const inFlight = fetch(`${base}/v1/cross-entropy`, {
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
    await expect(fetch(`${base}/healthz`)).rejects.toThrow()
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
