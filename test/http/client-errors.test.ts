import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { build, readRawAnswer } from '../helper.js'

// Requests Node's HTTP parser refuses before any route sees them still get a coded JSON answer.

/** Sends raw bytes and resolves to the status and JSON body of the answer, read until the server closes. */
async function raw(port: number, request: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(request)
  return readRawAnswer(socket)
}

const body = '{"logits":[[1,2]],"targets":[0]}'

describe('requests Node refuses before routing', () => {
  it.each([
    [
      'a Content-Length that is not a number',
      `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: abc\r\n\r\n${body}`,
      400,
      'XENT_BAD_REQUEST',
      /Content-Length/
    ],
    [
      'a negative Content-Length',
      `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: -5\r\n\r\n${body}`,
      400,
      'XENT_BAD_REQUEST',
      /Content-Length/
    ],
    [
      'Content-Length with Transfer-Encoding',
      `POST /v1/cross-entropy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      400,
      'XENT_BAD_REQUEST',
      /not both/
    ],
    [
      'headers over 16 KiB',
      `GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: ${'a'.repeat(17_000)}\r\n\r\n`,
      431,
      'XENT_HEADERS_TOO_LARGE',
      /16384 bytes/
    ],
    [
      'a method HTTP does not define',
      'BREW /v1/cross-entropy HTTP/1.1\r\nhost: x\r\n\r\n',
      400,
      'XENT_BAD_REQUEST',
      /method/
    ],
    ['something that is not HTTP', 'hello there\r\n\r\n', 400, 'XENT_BAD_REQUEST', /not HTTP at all/],
    ['a malformed header line', 'GET /healthz HTTP/1.1\r\nhost x\r\n\r\n', 400, 'XENT_BAD_REQUEST', /not valid HTTP/]
  ])('answers %s with a coded JSON error', async (_what, request, status, code, message) => {
    const app = await build()
    const port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port)
    const answer = await raw(port, request)
    expect(answer.status).toBe(status)
    expect(answer.body).toMatchObject({ statusCode: status, code })
    expect(answer.body.message).toMatch(message)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toMatch(
      new RegExp(`^xent_rejections_total\\{reason="${status === 431 ? 'too_large' : 'bad_input'}"\\} 1$`, 'm')
    )
    // The server goes on serving.
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  })

  it('answers a method HTTP defines but no route takes with a coded 404', async () => {
    const app = await build()
    const res = await app.inject({ method: 'PUT', url: '/v1/cross-entropy', payload: body })
    expect(res.statusCode).toBe(404)
    expect(res.json().code).toBe('XENT_NOT_FOUND')
  })
})
