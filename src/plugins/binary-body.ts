import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { BinaryBody } from '../codec/binary.js'
import { XentErrors } from '../errors.js'
import { safetensorsBodyLimit } from '../limits.js'
import type { ArenaGroup } from '../pool/arena.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Kernel memory that lives exactly as long as this request's response. */
    kernelMemory: () => ArenaGroup
  }
}

export interface BinaryBodyOptions {
  /** MAX_ELEMENTS, from which the largest safetensors body follows. */
  maxElements: number
}

const kGroups = Symbol('xent.kernelMemoryGroups')
type WithGroups = FastifyRequest & { [kGroups]?: ArenaGroup[] }

/**
 * `application/octet-stream` bodies (safetensors) stream straight into the kernel's shared memory:
 * with a Content-Length, each chunk is written where the tensors will be read, with no
 * intermediate buffer. Memory taken for a request is released when its response has been sent
 * or its connection has closed, whichever comes first, even if no handler ever ran.
 */
async function binaryBody(app: FastifyInstance, opts: BinaryBodyOptions): Promise<void> {
  // Not BODY_LIMIT_MB (which bounds JSON): a safetensors body may carry whatever tensors a request
  // within MAX_ELEMENTS can (see src/limits.ts).
  const bodyLimit = safetensorsBodyLimit(opts.maxElements)
  const tooLarge = () => new XentErrors.BODY_TOO_LARGE(String(bodyLimit), 'MAX_ELEMENTS of tensors and their header')

  app.decorateRequest('kernelMemory', function (this: WithGroups) {
    const group = app.kernelArena.group()
    this[kGroups] ??= []
    this[kGroups].push(group)
    return group
  })
  app.addHook('onRequest', async (request: WithGroups, reply) => {
    const release = () => {
      for (const group of request[kGroups] ?? []) group.release()
    }
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
    let group: ArenaGroup
    let target: Uint8Array | null = null
    try {
      group = request.kernelMemory()
      if (Number.isSafeInteger(declared)) target = group.bytes(declared)
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
      if (received + chunk.length > (target?.byteLength ?? bodyLimit)) {
        fail(target === null ? tooLarge() : new XentErrors.BAD_REQUEST('the body is longer than its Content-Length'))
        return
      }
      if (target !== null) target.set(chunk, received)
      else chunks.push(chunk)
      received += chunk.length
    })
    payload.on('error', (error) => fail(error))
    payload.on('end', () => {
      if (failed) return
      if (target === null) {
        try {
          target = group.bytes(received)
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
      const body: BinaryBody = { memory: group, bytes: target }
      done(null, body)
    })
  })
}

export default fp(binaryBody, { name: 'binary-body', dependencies: ['pool'] })
