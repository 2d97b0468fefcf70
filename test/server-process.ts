import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Starting the real, built server as a child process: for tests of process behaviour and for
// the benchmarks. No test-runner imports here, so load/ scripts can use it too.

export interface RunningServer {
  child: ChildProcess
  port: number
  base: string
  output: () => string
  exited: Promise<number | null>
}

/**
 * Spawns a real server process (`node <script>` in `cwd`) on a free loopback port and resolves once
 * it logs that it listens; rejects with its output if it exits first.
 */
export function startServer(
  options: { cwd?: string; script?: string; env?: Record<string, string>; keepOutput?: boolean } = {}
): Promise<RunningServer> {
  const cwd = options.cwd ?? fileURLToPath(new URL('..', import.meta.url))
  const script = options.script ?? 'dist/src/server.js'
  if (!existsSync(join(cwd, script))) throw new Error(`${join(cwd, script)} is missing: run \`npm run build\` first`)
  const child = spawn(process.execPath, [script], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      POOL_THREADS: '2',
      LOG_LEVEL: 'info',
      ...options.env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  // The output is kept as chunks, joined only when asked for: matching a pattern against one
  // ever-growing string would copy all of it at every chunk (the logs of a busy server come at
  // hundreds of KB a second). Without keepOutput, what comes after the listening line is read
  // and dropped, as a benchmark's client, which reads the log pipe, should spend nothing on it.
  const chunks: string[] = []
  let listened = false
  const output = () => chunks.join('')
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      if (listened && options.keepOutput === false) return
      chunks.push(chunk.toString())
      if (listened) return
      const listening = /Server listening at (http:\/\/127\.0\.0\.1:(\d+))/.exec(output())
      if (listening !== null) {
        listened = true
        resolve({ child, port: Number(listening[2]), base: listening[1], output, exited })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    exited.then((code) => reject(new Error(`server exited with ${code} before listening:\n${output()}`)))
  })
}
