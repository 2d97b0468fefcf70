import { connect, type Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { eventually } from '../faults.js'
import { build, readRawAnswer, safetensorsFile } from '../helper.js'

// Uploads that stall hold nothing scarce: no admission slot (taken once the body has arrived) and
// no kernel memory until half their declared body has come; and every upload has a deadline.

type App = Awaited<ReturnType<typeof build>>

/** Opens a connection that sends headers declaring `declared` bytes and then only `sent` of them. */
async function stall(port: number, type: string, declared: number, sent: Buffer): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  onTestFinished(() => {
    socket.destroy()
  })
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(
    `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: ${declared}\r\n\r\n`
  )
  socket.write(sent)
  return socket
}

const listen = async (app: App) => Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port)
const small = { logits: [[1, 2, 3]], targets: [2] }
const JSON_TYPE = 'application/json'
const OCTET = 'application/octet-stream'

describe('stalled uploads', () => {
  it('leave normal requests answering, whatever their content type and declared length', async () => {
    // One worker and one queue place: before, two stalled sockets locked everyone out.
    const app = await build({ POOL_THREADS: 1, MAX_QUEUE: 1 })
    const port = await listen(app)
    const stalled: Socket[] = []
    for (let i = 0; i < 20; i++) stalled.push(await stall(port, JSON_TYPE, 1000, Buffer.from('{"logits": [[1,')))
    for (let i = 0; i < 20; i++) stalled.push(await stall(port, OCTET, 40_000_000, Buffer.alloc(14)))
    // Some have sent less than half of a larger body.
    for (let i = 0; i < 4; i++) stalled.push(await stall(port, OCTET, 8_000_000, Buffer.alloc(3_000_000)))
    await eventually(() => app.uploadsInProgress() === stalled.length, 'every upload has begun')
    expect(app.engine.stats().slotsTaken).toBe(0)
    expect(app.engine.arena.usedBytes).toBe(0)
    for (let i = 0; i < 10; i++) {
      const res = await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: small })
      expect(res.statusCode, res.body).toBe(200)
    }
    const binary = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [1, 3], data: Float32Array.of(1, 2, 3) },
      { name: 'targets', dtype: 'I32', shape: [1], data: Int32Array.of(2) }
    ])
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers: { 'content-type': OCTET },
      payload: binary
    })
    expect(res.statusCode).toBe(200)
    // The stalled ones are still there, holding nothing.
    expect(app.uploadsInProgress()).toBe(stalled.length)
    expect(stalled.every((socket) => !socket.destroyed)).toBe(true)
  })

  it.each([
    ['JSON', JSON_TYPE, 1000, Buffer.from('{"logits": [[1,')],
    ['safetensors', OCTET, 40_000_000, Buffer.alloc(14)]
  ])(
    '%s: get 408 XENT_UPLOAD_TIMEOUT at UPLOAD_TIMEOUT_MS, and the connection is closed',
    async (_name, type, declared, sent) => {
      const app = await build({ UPLOAD_TIMEOUT_MS: 300 })
      const socket = await stall(await listen(app), type, declared, sent)
      const answer = await readRawAnswer(socket)
      expect(answer.status).toBe(408)
      expect(answer.body).toMatchObject({ statusCode: 408, code: 'XENT_UPLOAD_TIMEOUT' })
      await eventually(() => app.uploadsInProgress() === 0, 'the upload is forgotten')
      expect(app.engine.arena.usedBytes).toBe(0)
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
      expect(metrics).toMatch(/^xent_rejections_total\{reason="timeout"\} 1$/m)
    }
  )

  it('are cut at REQUEST_TIMEOUT_MS when it is the shorter: it covers the upload too', async () => {
    const app = await build({ REQUEST_TIMEOUT_MS: 300, UPLOAD_TIMEOUT_MS: 600_000 })
    const answer = await readRawAnswer(await stall(await listen(app), JSON_TYPE, 1000, Buffer.from('{"logits": [[1,')))
    expect(answer.status).toBe(408)
    expect(answer.body.code).toBe('XENT_UPLOAD_TIMEOUT')
  })

  it('hold kernel memory only once half the declared body has come, and give it back at the deadline', async () => {
    const app = await build({ UPLOAD_TIMEOUT_MS: 1000 })
    const port = await listen(app)
    const declared = 8_000_000
    const socket = await stall(port, OCTET, declared, Buffer.alloc(declared / 2 + 10))
    await eventually(() => app.engine.arena.usedBytes >= declared, 'half the body reserves the whole')
    const answer = await readRawAnswer(socket)
    expect(answer.body.code).toBe('XENT_UPLOAD_TIMEOUT')
    await eventually(() => app.engine.arena.usedBytes === 0, 'the memory is given back')
  })
})
