import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

/**
 * The FastAPI + PyTorch service a Python team would write instead (../shared/peers/fastapi_torch.py),
 * started under uvicorn with 2 workers on a loopback port, for the bench to compare against.
 */
export interface Peer {
  base: string
  close: () => Promise<void>
}

const PEER_DIR = fileURLToPath(new URL('../../shared/peers/', import.meta.url))

/** A loopback port no socket holds now (the system's choice). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
}

/**
 * Starts the peer on a free loopback port, trying another if a socket took that one meanwhile (as
 * a client's ephemeral port may); a reason instead when it cannot.
 */
export async function startPeer(): Promise<Peer | string> {
  let reason = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const peer = await startPeerOn(await freePort())
    if (typeof peer !== 'string') return peer
    reason = peer
    if (peer !== EXITED_AT_START) break
  }
  return reason
}

const EXITED_AT_START = 'the peer exited at start'

/**
 * Starts the peer with the first Python that has torch, fastapi and uvicorn (XENT_TORCH_PYTHON,
 * python3 or /usr/bin/python3); a reason instead when it cannot.
 */
async function startPeerOn(port: number): Promise<Peer | string> {
  if (!existsSync(`${PEER_DIR}fastapi_torch.py`)) return `no ${PEER_DIR}fastapi_torch.py`
  const candidates = [process.env.XENT_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (python): python is string => python !== undefined && python !== ''
  )
  const python = candidates.find(
    (candidate) => spawnSync(candidate, ['-c', 'import torch, fastapi, uvicorn']).status === 0
  )
  if (python === undefined)
    return 'no python3 with torch, fastapi and uvicorn (apt: python3-torch python3-fastapi python3-uvicorn)'
  const child: ChildProcess = spawn(
    python,
    [
      '-m',
      'uvicorn',
      'fastapi_torch:app',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--workers',
      '2',
      '--log-level',
      'warning'
    ],
    { cwd: PEER_DIR, stdio: ['ignore', 'ignore', 'inherit'] }
  )
  const base = `http://127.0.0.1:${port}`
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Ready once both workers answer; give up after 60 s.
  const until = performance.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) return EXITED_AT_START
    if (performance.now() > until) {
      child.kill('SIGKILL')
      return 'the peer did not start within 60 s'
    }
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get(`${base}/openapi.json`, (res) => {
          res.resume()
          resolve(res.statusCode === 200)
        })
        .on('error', () => resolve(false))
    })
    if (ok) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return {
    base,
    close: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}
