import { errorCodes, type FastifyInstance, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { RequestClosedError } from '../engine/errors.js'
import { copyInto } from '../engine/memory.js'
import type { RequestMemory } from '../engine/request.js'
import { XentErrors } from '../errors.js'
import { safetensorsBodyLimit } from '../limits.js'
import { chunkReleaser } from './chunk-release.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * This request's kernel memory (made on first use): its body, tensors and outputs. The
     * request lets go of it once its answer is sent or its connection has closed; the engine
     * frees it once, besides, every task of the request has settled.
     */
    kernelMemory: () => RequestMemory
  }
}

/** A safetensors body, as the parser leaves it: its bytes, in the request's kernel memory. */
export interface SafetensorsBody {
  bytes: Uint8Array
}

export interface KernelBodyOptions {
  /** MAX_ELEMENTS, from which the largest safetensors body follows. */
  maxElements: number
}

const kMemory = Symbol('xent.kernelMemory')
type WithMemory = FastifyRequest & { [kMemory]?: RequestMemory }

/**
 * Request bodies land in the request's kernel memory: `application/octet-stream` (safetensors),
 * whose tensors are then read in place, and `application/json`, whose numbers the workers read.
 */
async function kernelBody(app: FastifyInstance, opts: KernelBodyOptions): Promise<void> {
  // Not BODY_LIMIT_MB (which bounds JSON): a safetensors body may carry whatever tensors a request
  // within MAX_ELEMENTS can (see src/limits.ts).
  const bodyLimit = safetensorsBodyLimit(opts.maxElements)
  const tooLarge = () => new XentErrors.BODY_TOO_LARGE(String(bodyLimit), 'MAX_ELEMENTS of tensors and their header')

  app.decorateRequest('kernelMemory', function (this: WithMemory) {
    this[kMemory] ??= app.engine.openRequest()
    return this[kMemory]
  })
  app.addHook('onRequest', async (request: WithMemory, reply) => {
    const release = () => request[kMemory]?.release()
    reply.raw.once('finish', release)
    reply.raw.once('close', release)
  })

  app.addContentTypeParser('application/octet-stream', (request, payload, done) => {
    const declared = Number(request.headers['content-length'])
    let memory: RequestMemory
    try {
      if (Number.isSafeInteger(declared) && declared > bodyLimit) throw tooLarge()
      // A body larger than the whole kernel memory can never be taken: refused before a byte is read.
      if (Number.isSafeInteger(declared)) app.engine.arena.requireCapacity(declared)
      memory = request.kernelMemory()
    } catch (error) {
      payload.resume()
      done(error as Error, undefined)
      return
    }
    receiveBody(request, payload, memory, {
      limit: bodyLimit,
      tooLarge,
      lengthMismatch: (received, length) =>
        new XentErrors.BAD_REQUEST(
          received > length
            ? 'the body is longer than its Content-Length'
            : `the body ended after ${received} of its ${length} bytes`
        ),
      inJsWhenFull: false,
      done: (error, received) =>
        done(error, error === null ? ({ bytes: received?.bytes } as SafetensorsBody) : undefined)
    })
  })

  // A JSON body lands in kernel memory too, as bytes, where the workers read its numbers
  // (src/codec/json-text.ts). When the kernel memory cannot take it, it waits in chunks instead,
  // and is read the general way. Its limit and errors are Fastify's own for JSON.
  const jsonLimit = app.initialConfig.bodyLimit ?? Number.POSITIVE_INFINITY
  app.addContentTypeParser('application/json', (request, payload, done) => {
    const declared = Number(request.headers['content-length'])
    if (Number.isSafeInteger(declared) && declared > jsonLimit) {
      payload.resume()
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), undefined)
      return
    }
    receiveBody(request, payload, request.kernelMemory(), {
      limit: jsonLimit,
      tooLarge: () => new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(),
      lengthMismatch: () => new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH(),
      inJsWhenFull: true,
      done: (error, received) =>
        done(
          error,
          error === null && received !== undefined ? new JsonBody(received.bytes, received.chunks) : undefined
        )
    })
  })
}

const EMPTY = Buffer.alloc(0)

interface Received {
  /** The body in kernel memory, or null when it stayed in chunks. */
  bytes: Uint8Array | null
  chunks: Buffer[]
}

interface ReceiveOptions {
  limit: number
  tooLarge: () => Error
  lengthMismatch: (received: number, declared: number) => Error
  /** Keep the body in chunks when the kernel memory cannot take it now (rather than failing). */
  inJsWhenFull: boolean
  done: (error: Error | null, received?: Received) => void
}

/**
 * Streams a body into the request's kernel memory. Kernel memory is reserved only once half the
 * declared body has arrived (or, without a Content-Length, once all of it has): an upload that
 * stalls early holds none, and one that stalls later has sent at least half of what it holds.
 * Until then the chunks wait as they came; from then on each chunk is written where it will be read.
 */
function receiveBody(
  request: FastifyRequest,
  payload: NodeJS.ReadableStream & { on(event: 'aborted', listener: () => void): unknown },
  memory: RequestMemory,
  options: ReceiveOptions
): void {
  const declared = Number(request.headers['content-length'])
  const lengthKnown = Number.isSafeInteger(declared)
  const reserveAt = lengthKnown ? Math.ceil(declared / 2) : Number.POSITIVE_INFINITY
  const limit = lengthKnown ? declared : options.limit
  let target: Uint8Array | null = null
  // Whether the body stays in chunks (the kernel memory could not take it).
  let inJs = false
  const chunks: Buffer[] = []
  let received = 0
  // Each chunk goes back to the allocator once copied, when it is the HTTP parser's own.
  const copied = chunkReleaser(payload)
  let failed = false
  const fail = (error: Error) => {
    if (failed) return
    failed = true
    payload.removeAllListeners('data')
    payload.resume()
    options.done(error)
  }
  // Chunks that arrived before the reservation, and how far they have been moved in: a few at each
  // later chunk, so that no single turn of the event loop copies half a large body.
  let waitingMoved = 0
  let waitingOffset = 0
  const moveWaiting = (count: number) => {
    if (target === null) return
    for (let moved = 0; moved < count && waitingMoved < chunks.length; moved++) {
      const chunk = chunks[waitingMoved]
      copyInto(target, waitingOffset, chunk)
      waitingOffset += chunk.length
      copied(chunk)
      chunks[waitingMoved++] = EMPTY
    }
  }
  /** Reserves `length` bytes (the waiting chunks move in from then on); false (and failed) if it cannot. */
  const reserve = (length: number): boolean => {
    try {
      target = memory.bytes(length)
    } catch (error) {
      if (options.inJsWhenFull && !(error instanceof RequestClosedError)) {
        inJs = true
        return true
      }
      fail(error as Error)
      return false
    }
    return true
  }
  payload.on('data', (chunk: Buffer) => {
    // The request may have let its memory go (its client left): write nothing more into it.
    if (memory.released) {
      fail(new XentErrors.CLIENT_CLOSED())
      return
    }
    if (received + chunk.length > limit) {
      fail(lengthKnown ? options.lengthMismatch(received + chunk.length, declared) : options.tooLarge())
      return
    }
    const length = chunk.length
    if (target !== null) {
      copyInto(target, received, chunk)
      copied(chunk)
      moveWaiting(2)
    } else {
      chunks.push(chunk)
    }
    received += length
    if (target === null && !inJs && received >= reserveAt) reserve(declared)
  })
  // A client that hangs up mid-upload: Node reports the body as aborted (and may not raise an
  // error), and the request's memory must go back at once either way.
  payload.on('error', () => fail(new XentErrors.CLIENT_CLOSED()))
  payload.on('aborted', () => fail(new XentErrors.CLIENT_CLOSED()))
  payload.on('end', () => {
    if (failed) return
    if (memory.released) {
      fail(new XentErrors.CLIENT_CLOSED())
      return
    }
    if (lengthKnown && received !== declared) {
      fail(options.lengthMismatch(received, declared))
      return
    }
    // An empty JSON body stays as it is, for the general reading to refuse.
    if (target === null && !inJs && (received > 0 || !options.inJsWhenFull) && !reserve(received)) return
    moveWaiting(Number.POSITIVE_INFINITY)
    options.done(null, { bytes: inJs ? null : target, chunks: inJs ? chunks : [] })
  })
}

/** A JSON body as the parser leaves it: bytes in kernel memory, or chunks when it could not go there. */
export class JsonBody {
  constructor(
    readonly bytes: Uint8Array | null,
    private readonly chunks: Buffer[]
  ) {}

  /** The body as text, for the general reading (JSON.parse). */
  text(): string {
    if (this.bytes !== null)
      return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length).toString('utf8')
    return Buffer.concat(this.chunks).toString('utf8')
  }
}

export default fp(kernelBody, { name: 'kernel-body', dependencies: ['engine'] })
