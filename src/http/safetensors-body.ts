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
 * `application/octet-stream` bodies (safetensors) stream straight into the request's kernel
 * memory: with a Content-Length, each chunk is written where the tensors will be read, with no
 * intermediate buffer.
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
    if (Number.isSafeInteger(declared) && declared > bodyLimit) {
      done(tooLarge(), undefined)
      payload.resume()
      return
    }
    let memory: RequestMemory
    let target: Uint8Array | null = null
    try {
      memory = request.kernelMemory()
      if (Number.isSafeInteger(declared)) target = memory.bytes(declared)
    } catch (error) {
      payload.resume()
      done(error as Error, undefined)
      return
    }
    // Without a Content-Length the size is unknown: chunks are kept, then copied in once.
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
    payload.on('data', (chunk: Buffer) => {
      // The request may have let its memory go (its client left): write nothing more into it.
      if (memory.released) {
        fail(new XentErrors.CLIENT_CLOSED())
        return
      }
      if (received + chunk.length > (target?.byteLength ?? bodyLimit)) {
        fail(target === null ? tooLarge() : new XentErrors.BAD_REQUEST('the body is longer than its Content-Length'))
        return
      }
      if (target !== null) target.set(chunk, received)
      else chunks.push(chunk)
      received += chunk.length
    })
    // A client that hangs up mid-upload: Node reports the body as aborted (and may not raise an
    // error), and the request's memory must go back at once either way.
    payload.on('error', () => fail(new XentErrors.CLIENT_CLOSED()))
    payload.on('aborted', () => fail(new XentErrors.CLIENT_CLOSED()))
    payload.on('end', () => {
      if (failed) return
      if (target === null) {
        try {
          target = memory.bytes(received)
        } catch (error) {
          fail(error as Error)
          return
        }
        let offset = 0
        for (const chunk of chunks) {
          target.set(chunk, offset)
          offset += chunk.length
        }
      }
      if (received !== target.byteLength) {
        fail(new XentErrors.BAD_REQUEST(`the body ended after ${received} of its ${target.byteLength} bytes`))
        return
      }
      const body: SafetensorsBody = { bytes: target }
      done(null, body)
    })
  })
}

export default fp(safetensorsBody, { name: 'safetensors-body', dependencies: ['engine'] })
