import createError from '@fastify/error'

/**
 * Every error xent answers with, one row each: a stable code, an HTTP status and a message
 * template. 4xx messages name the field and the first offending position.
 */
export const XentErrors = {
  INVALID_REQUEST: createError('XENT_INVALID_REQUEST', '%s', 400),
  UNKNOWN_FIELD: createError('XENT_UNKNOWN_FIELD', '%s', 400),
  EMPTY_DIMENSION: createError('XENT_EMPTY_DIMENSION', '%s', 400),
  SHAPE_MISMATCH: createError('XENT_SHAPE_MISMATCH', '%s', 400),
  NON_FINITE: createError('XENT_NON_FINITE', '%s', 400),
  TARGET_OUT_OF_RANGE: createError('XENT_TARGET_OUT_OF_RANGE', '%s', 400),
  INVALID_WEIGHT: createError('XENT_INVALID_WEIGHT', '%s', 400),
  INVALID_SAFETENSORS: createError('XENT_INVALID_SAFETENSORS', 'The body is not a valid safetensors request: %s', 400),
  MALFORMED_JSON: createError('XENT_MALFORMED_JSON', 'The body is not valid JSON: %s', 400),
  BAD_REQUEST: createError('XENT_BAD_REQUEST', '%s', 400),
  NOT_FOUND: createError('XENT_NOT_FOUND', 'No route %s %s', 404),
  BODY_TOO_LARGE: createError('XENT_BODY_TOO_LARGE', 'The body is larger than the limit of %s bytes (%s)', 413),
  UNSUPPORTED_MEDIA_TYPE: createError(
    'XENT_UNSUPPORTED_MEDIA_TYPE',
    'Content-Type %s is not supported; send application/json, or application/octet-stream (safetensors)',
    415
  ),
  TOO_LARGE: createError('XENT_TOO_LARGE', '%s', 413),
  TOO_MANY_ELEMENTS: createError('XENT_TOO_MANY_ELEMENTS', '%s', 413),
  HEADERS_TOO_LARGE: createError(
    'XENT_HEADERS_TOO_LARGE',
    'The request headers are larger than the limit of 16384 bytes',
    431
  ),
  UPLOAD_TIMEOUT: createError(
    'XENT_UPLOAD_TIMEOUT',
    'The request was not received in time (UPLOAD_TIMEOUT_MS); send it again, faster or smaller',
    408
  ),
  UNAUTHORIZED: createError('XENT_UNAUTHORIZED', '%s', 401),
  RATE_LIMITED: createError('XENT_RATE_LIMITED', 'Rate limit of %s requests a minute reached; retry in %s', 429),
  CLIENT_CLOSED: createError('XENT_CLIENT_CLOSED', 'The client closed the connection; the work was cancelled', 499),
  MEMORY_BUSY: createError('XENT_MEMORY_BUSY', '%s', 503),
  QUEUE_FULL: createError(
    'XENT_QUEUE_FULL',
    'Every worker is busy and the queue is full (MAX_QUEUE); retry shortly',
    503
  ),
  TIMEOUT: createError(
    'XENT_TIMEOUT',
    'The request took longer than REQUEST_TIMEOUT_MS (%s ms) and was cancelled; retry later or send less',
    503
  ),
  UNDER_PRESSURE: createError('XENT_UNDER_PRESSURE', 'The service is overloaded (%s); retry shortly', 503),
  WORKER_FAILED: createError(
    'XENT_WORKER_FAILED',
    'The worker computing this request failed and was replaced; the request id is %s',
    500
  ),
  SHUTTING_DOWN: createError('XENT_SHUTTING_DOWN', 'The service is shutting down; retry on another instance', 503),
  INTERNAL: createError('XENT_INTERNAL', 'Internal error; the request id is %s', 500)
} as const
