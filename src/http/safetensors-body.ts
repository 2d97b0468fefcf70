import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { RequestMemory } from '../engine/request.js'
import { XentErrors } from '../errors.js'
import { safetensorsBodyLimit } from '../limits.js'

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

export interface SafetensorsBodyOptions {
  /** MAX_ELEMENTS, from which the largest safetensors body follows. */
  maxElements: number
}

const kMemory = Symbol('xent.kernelMemory')
type WithMemory = FastifyRequest & { [kMemory]?: RequestMemory }

/**
 * `application/octet-stream` bodies (safetensors) land in the request's kernel memory, where the
 * tensors are then read in place.
 */
async function safetensorsBody(app: FastifyInstance, opts: SafetensorsBodyOptions): Promise<void> {
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
    const lengthKnown = Number.isSafeInteger(declared)
    let memory: RequestMemory
    try {
      if (lengthKnown && declared > bodyLimit) throw tooLarge()
      // A body larger than the whole kernel memory can never be taken: refused before a byte is read.
      if (lengthKnown) app.engine.arena.requireCapacity(declared)
      memory = request.kernelMemory()
    } catch (error) {
      payload.resume()
      done(error as Error, undefined)
      return
    }
    // Kernel memory is reserved only once half the declared body has arrived (or, without a
    // Content-Length, once all of it has): an upload that stalls early holds none, and one that
    // stalls later has sent at least half of what it holds. Until then the chunks wait as they
    // came; from then on each chunk is written where the tensors will be read.
    const reserveAt = lengthKnown ? Math.ceil(declared / 2) : Number.POSITIVE_INFINITY
    const limit = lengthKnown ? declared : bodyLimit
    let target: Uint8Array | null = null
    const chunks: Buffer[] = []
    let received = 0
    let failed = false
    const fail = (error: Error) => {
      if (failed) return
      failed = true
      payload.removeAllListeners('data')
      payload.resume()
      done(error, undefined)
    }
    /** Reserves `length` bytes and moves the waiting chunks in; false (and failed) if it cannot. */
    const reserve = (length: number): boolean => {
      try {
        target = memory.bytes(length)
      } catch (error) {
        fail(error as Error)
        return false
      }
      let offset = 0
      for (const chunk of chunks) {
        target.set(chunk, offset)
        offset += chunk.length
      }
      chunks.length = 0
      return true
    }
    payload.on('data', (chunk: Buffer) => {
      // The request may have let its memory go (its client left): write nothing more into it.
      if (memory.released) {
        fail(new XentErrors.CLIENT_CLOSED())
        return
      }
      if (received + chunk.length > limit) {
        fail(lengthKnown ? new XentErrors.BAD_REQUEST('the body is longer than its Content-Length') : tooLarge())
        return
      }
      if (target !== null) target.set(chunk, received)
      else chunks.push(chunk)
      received += chunk.length
      if (target === null && received >= reserveAt) reserve(declared)
    })
    // A client that hangs up mid-upload: Node reports the body as aborted (and may not raise an
    // error), and the request's memory must go back at once either way.
    payload.on('error', () => fail(new XentErrors.CLIENT_CLOSED()))
    payload.on('aborted', () => fail(new XentErrors.CLIENT_CLOSED()))
    payload.on('end', () => {
      if (failed) return
      if (lengthKnown && received !== declared) {
        fail(new XentErrors.BAD_REQUEST(`the body ended after ${received} of its ${declared} bytes`))
        return
      }
      if (target === null && !reserve(received)) return
      done(null, { bytes: target } as SafetensorsBody)
    })
  })
}

export default fp(safetensorsBody, { name: 'safetensors-body', dependencies: ['engine'] })
