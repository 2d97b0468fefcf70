import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance } from 'fastify'
import { XentErrors } from '../errors.js'
import { errorBody } from './errors.js'

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (a bad Content-Length,
 * Content-Length beside Transfer-Encoding, headers past the 16 KiB limit, a method HTTP does not
 * define, anything that is not HTTP): answered, like every rejection, with a coded JSON body,
 * counted and logged at info, then the connection is closed (the parser cannot go on with it).
 */
function coded(error: NodeJS.ErrnoException): FastifyError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new XentErrors.HEADERS_TOO_LARGE()
    case 'HPE_INVALID_CONTENT_LENGTH':
      return new XentErrors.BAD_REQUEST('the Content-Length header must be one non-negative integer')
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return new XentErrors.BAD_REQUEST(
        'send Content-Length or Transfer-Encoding, not both (a request with both is refused, as RFC 9112 allows)'
      )
    case 'HPE_INVALID_METHOD':
      return new XentErrors.BAD_REQUEST(
        'the request line does not start with a method HTTP defines (or is not HTTP at all); the API takes POST'
      )
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new XentErrors.UPLOAD_TIMEOUT()
    default:
      return new XentErrors.BAD_REQUEST(`the request is not valid HTTP/1.1 (${error.code ?? 'unreadable'})`)
  }
}

/** Fastify's clientErrorHandler (bound to the app). */
export function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const answer = coded(error)
  const statusCode = answer.statusCode ?? 400
  this.log.info({ code: answer.code, parserError: error.code }, answer.message)
  const metrics = (this as Partial<FastifyInstance>).metrics
  metrics?.rejections.inc({ reason: statusCode === 431 ? 'too_large' : statusCode === 408 ? 'timeout' : 'bad_input' })
  if (socket.writable) {
    const body = JSON.stringify(errorBody(statusCode, answer.code, answer.message))
    socket.write(
      `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  }
  socket.destroySoon()
}
