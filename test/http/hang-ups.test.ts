import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { eventually } from '../faults.js'
import { build, keptLogs, metricValue, safetensorsFile } from '../helper.js'

// A client that hangs up part-way through its upload has done nothing wrong on our side: the
// rejection is counted as client_closed, logged at info, and never called internal.

async function loggedApp() {
  const { logger, lines } = keptLogs()
  const app = await build({}, { fastify: { loggerInstance: logger } })
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }))
  return { app, lines, port: Number(url.port) }
}

/** Sends the headers and the first half of `body`, then resets the connection once the server has read them. */
async function leaveMidUpload(port: number, type: string, body: Buffer, app: Awaited<ReturnType<typeof build>>) {
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.on('error', () => {})
  const headers = `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: ${body.length}\r\n\r\n`
  socket.write(headers)
  socket.write(body.subarray(0, body.length >> 1))
  await eventually(() => app.uploadsInProgress() === 1, 'the upload has begun')
  socket.resetAndDestroy()
}

describe('a client that hangs up mid-upload', () => {
  const json = Buffer.from(JSON.stringify({ logits: [Array.from({ length: 5000 }, (_, i) => i % 7)], targets: [1] }))
  const binary = safetensorsFile([
    { name: 'logits', dtype: 'F32', shape: [1, 5000], data: new Float32Array(5000) },
    { name: 'targets', dtype: 'I32', shape: [1], data: Int32Array.of(1) }
  ])

  it.each([
    ['JSON', 'application/json', json],
    ['safetensors', 'application/octet-stream', binary]
  ])('%s: is counted as client_closed, logged at info, never as an internal error', async (_name, type, body) => {
    const { app, lines, port } = await loggedApp()
    await leaveMidUpload(port, type, body, app)
    await eventually(
      async () => (await metricValue(app, 'xent_rejections_total{reason="client_closed"}')) === 1,
      'the hang-up is counted'
    )
    await eventually(() => app.engine.arena.usedBytes === 0 && app.engine.stats().slotsTaken === 0, 'all is given back')
    expect(await metricValue(app, 'xent_rejections_total{reason="bad_input"}')).toBe(0)
    expect(lines.filter((line) => (line.level as number) >= 50)).toEqual([])
    const closed = lines.filter((line) => line.code === 'XENT_CLIENT_CLOSED')
    expect(closed).toHaveLength(1)
    expect(closed[0].level).toBe(30)
    // The service goes on.
    expect(
      (await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: JSON.parse(json.toString()) })).statusCode
    ).toBe(200)
  })
})
