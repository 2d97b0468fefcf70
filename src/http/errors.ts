import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  QueueFullError,
  RequestClosedError,
  ShuttingDownError,
  TooManyElementsError,
  WorkerFailedError
} from '../engine/errors.js'
import { ArenaFullError } from '../engine/memory.js'
import { XentErrors } from '../errors.js'
import type { RejectionReason } from './metrics.js'

/** Answers a client may retry soon get Retry-After (seconds). */
const RETRY_AFTER: Record<string, string> = {
  XENT_MEMORY_BUSY: '1',
  XENT_QUEUE_FULL: '1',
  XENT_UNDER_PRESSURE: '1',
  XENT_TIMEOUT: '5',
  XENT_SHUTTING_DOWN: '1'
}

/** Rejections by their code, for /metrics; any other 4xx is bad input. */
const REJECTION_REASON: Record<string, RejectionReason> = {
  XENT_QUEUE_FULL: 'queue_full',
  XENT_TOO_LARGE: 'too_large',
  XENT_TOO_MANY_ELEMENTS: 'too_large',
  XENT_BODY_TOO_LARGE: 'too_large',
  XENT_TIMEOUT: 'timeout',
  XENT_UNAUTHORIZED: 'unauthorized',
  XENT_RATE_LIMITED: 'rate_limited',
  XENT_UNDER_PRESSURE: 'under_pressure',
  XENT_MEMORY_BUSY: 'memory_busy',
  XENT_SHUTTING_DOWN: 'shutting_down',
  XENT_CLIENT_CLOSED: 'client_closed'
}

/**
 * One place where every failure becomes `{statusCode, code, error, message}`. Fastify's own
 * errors are translated into xent codes here, at the boundary; a 5xx never carries the original
 * message or stack to the client (it is logged instead).
 */
async function errorHandling(app: FastifyInstance): Promise<void> {
  const bodyLimit = app.initialConfig.bodyLimit ?? 0

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const translated =
      (clientLeft(request) ? new XentErrors.CLIENT_CLOSED() : undefined) ??
      fromEngine(error, app.engine.arena.capacity) ??
      translate(error, request.headers['content-type'], bodyLimit)
    if (translated.code === 'XENT_CLIENT_CLOSED') request.log.info({ code: translated.code }, translated.message)
    const retryAfter = RETRY_AFTER[translated.code]
    if (retryAfter !== undefined) reply.header('retry-after', retryAfter)
    if (translated.code === 'XENT_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer')
    const statusCode = translated.statusCode ?? 500
    const reason = REJECTION_REASON[translated.code] ?? (statusCode < 500 ? 'bad_input' : undefined)
    if (reason !== undefined) app.metrics.rejections.inc({ reason })
    if (statusCode >= 500 && translated.code?.startsWith('XENT_') !== true) {
      request.log.error({ err: error }, 'request failed')
      const internal = new XentErrors.INTERNAL(request.id)
      return reply.code(500).send(errorBody(500, internal.code, internal.message))
    }
    return reply.code(statusCode).send(errorBody(statusCode, translated.code, translated.message))
  })

  app.setNotFoundHandler((request, reply) => {
    const error = new XentErrors.NOT_FOUND(request.method, request.url.split('?')[0])
    return reply.code(404).send(errorBody(404, error.code, error.message))
  })
}

/**
 * Whether the client hung up before the request was whole (mid-upload: Node reports the body's
 * stream as aborted) or before its answer: then nothing failed on our side, whatever error the
 * hang-up surfaced as (an aborted body, ECONNRESET, a cancelled computation).
 */
function clientLeft(request: FastifyRequest): boolean {
  return (
    request.raw.aborted || (request.raw.destroyed && !request.raw.complete) || request.raw.socket?.destroyed === true
  )
}

/** The engine's failures as coded errors; undefined for any other error. */
function fromEngine(error: Error, capacity: number): FastifyError | undefined {
  if (error instanceof ArenaFullError) {
    // A request larger than the whole kernel memory can never run; one that merely found it
    // busy can retry.
    if (error.bytes > capacity) {
      return new XentErrors.TOO_LARGE(
        `the request needs ${error.bytes} bytes of kernel memory; KERNEL_MEMORY_MB allows ${capacity}`
      )
    }
    return new XentErrors.MEMORY_BUSY(`the kernel memory is busy with other requests; retry shortly`)
  }
  if (error instanceof TooManyElementsError) return new XentErrors.TOO_MANY_ELEMENTS(error.message)
  if (error instanceof QueueFullError) return new XentErrors.QUEUE_FULL()
  if (error instanceof WorkerFailedError) return new XentErrors.WORKER_FAILED(error.requestId ?? 'unknown')
  if (error instanceof ShuttingDownError) return new XentErrors.SHUTTING_DOWN()
  if (error instanceof RequestClosedError) return new XentErrors.CLIENT_CLOSED()
  return undefined
}

function translate(error: FastifyError, contentType: string | undefined, bodyLimit: number): FastifyError {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new XentErrors.UNSUPPORTED_MEDIA_TYPE(JSON.stringify(contentType ?? ''))
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new XentErrors.BODY_TOO_LARGE(String(bodyLimit), 'BODY_LIMIT_MB')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new XentErrors.MALFORMED_JSON('the body is empty')
    case 'FST_BEARER_AUTH_MISSING_AUTHORIZATION_HEADER':
      return new XentErrors.UNAUTHORIZED('send Authorization: Bearer <key> (API_KEYS is set)')
    case 'FST_BEARER_AUTH_INVALID_AUTHORIZATION_HEADER':
      return new XentErrors.UNAUTHORIZED('the Authorization header does not hold a valid Bearer key')
    default:
      if (error.code?.startsWith('XENT_') === true || error.statusCode === undefined) return error
      if (error.statusCode >= 500) return error
      // Any other client error Fastify raises (a bad Content-Length, say) keeps its status.
      return Object.assign(new XentErrors.BAD_REQUEST(error.message), { statusCode: error.statusCode })
  }
}

/** The JSON body of every error answer: `{statusCode, code, error, message}`. */
export function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

export default fp(errorHandling, { name: 'errors', dependencies: ['metrics'] })
