import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Negotiator from 'negotiator'
import { SafetensorsBodySchema } from '../../schemas/binary.js'
import { ErrorSchema } from '../../schemas/common.js'
import { readJsonText } from '../codec/json-parse.js'
import type { PreparedPrint } from '../codec/json-text.js'
import type { RunOptions } from '../engine/engine.js'
import { ArenaFullError } from '../engine/memory.js'
import type { RequestMemory } from '../engine/request.js'
import { XentErrors } from '../errors.js'
import { type BodyValidator, type FastJson, readSmallFields } from '../ops/json-body.js'
import type { JsonComputed, Operation, OperationDocs } from '../ops/operation.js'
import { JsonBody, type SafetensorsBody } from './kernel-body.js'

// The one route every tensor operation (/v1/cross-entropy, /v1/logprobs) is served by: two body
// formats, two answer formats, one set of error answers.

export const SAFETENSORS = 'application/octet-stream'

/** Every coded error a tensor route may answer with. */
const ERROR_RESPONSES = {
  400: ErrorSchema,
  401: ErrorSchema,
  413: ErrorSchema,
  415: ErrorSchema,
  429: ErrorSchema,
  500: ErrorSchema,
  503: ErrorSchema
}

/** The schema of a tensor route: JSON or safetensors in, JSON or safetensors out, coded errors. */
function tensorRouteSchema(docs: OperationDocs) {
  return {
    tags: ['loss'],
    summary: docs.summary,
    description: docs.description,
    security: [{ bearerAuth: [] }],
    querystring: docs.querystring,
    body: {
      content: {
        'application/json': { schema: docs.request },
        [SAFETENSORS]: { schema: SafetensorsBodySchema }
      }
    },
    response: {
      200: {
        description: docs.answer,
        content: {
          'application/json': { schema: docs.response },
          [SAFETENSORS]: { schema: { type: 'string', format: 'binary', description: docs.safetensorsAnswer } }
        }
      },
      ...ERROR_RESPONSES
    }
  }
}

/**
 * An answer can hold millions of numbers: plain JSON.stringify is the fastest way to write them,
 * and a schema-driven serializer would have to test every union branch.
 */
const stringifyAnswer = () => (data: unknown) => JSON.stringify(data)

/** A safetensors body, as the kernel-body plugin leaves it (already in kernel memory). */
function isSafetensorsBody(body: unknown): body is SafetensorsBody {
  return typeof body === 'object' && body !== null && 'bytes' in body && body.bytes instanceof Uint8Array
}

/**
 * A JSON request carries its options in its body, where they cannot be given twice: any query
 * parameter but `allowed` (options of the answer's format) is refused.
 */
function refuseQueryForJson(query: object, allowed: readonly string[]): void {
  const misplaced = Object.keys(query).filter((name) => !allowed.includes(name))
  if (misplaced.length > 0) {
    throw new XentErrors.INVALID_REQUEST(
      `query parameter "${misplaced[0]}" is for safetensors requests; a JSON request carries its options in the body`
    )
  }
}

/**
 * A query parameter given twice (`?z_loss=0.1&z_loss=1`) is ambiguous, like a JSON field given
 * twice: refused, naming it, before the schema would call it an array.
 */
async function refuseRepeatedQuery(request: FastifyRequest): Promise<void> {
  for (const [name, value] of Object.entries(request.query as Record<string, unknown>)) {
    if (Array.isArray(value)) {
      throw new XentErrors.INVALID_REQUEST(`query parameter "${name}" is given ${value.length} times; send it once`)
    }
  }
}

const ANSWER_TYPES = ['application/json', SAFETENSORS]

/**
 * Whether the caller prefers a safetensors answer, by proper negotiation of its Accept header
 * (q-values, exact types, wildcards): JSON when it prefers JSON, when it accepts either alike in
 * the order it gave, or when it names neither.
 */
function wantsSafetensors(request: FastifyRequest): boolean {
  return new Negotiator(request).mediaType(ANSWER_TYPES) === SAFETENSORS
}

/** Sends safetensors chunks (which may view the request's kernel memory) without copying them. */
function sendSafetensors(reply: FastifyReply, chunks: Uint8Array[]): FastifyReply {
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  reply.type(SAFETENSORS).header('content-length', length)
  return reply.send(Readable.from(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))))
}

/**
 * A JSON answer's chunks (which may view the request's kernel memory), written as they are: not
 * copied into one buffer, as V8 copies out of a SharedArrayBuffer at a fraction of memcpy's speed.
 */
function sendJson(reply: FastifyReply, chunks: Uint8Array[]): FastifyReply {
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  reply.type('application/json; charset=utf-8').header('content-length', length)
  return reply.send(Readable.from(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))))
}

/** Serves `operation` at its url. */
export function registerTensorRoute<Job extends { memory: RequestMemory }, Result, Query extends object>(
  app: FastifyInstance,
  operation: Operation<Job, Result, Query>
): void {
  // Jobs the fast JSON reading made, by request; and those it computed too.
  const readJobs = new WeakMap<FastifyRequest, Job>()
  const computedJobs = new WeakMap<FastifyRequest, JsonComputed<Job, Result>>()

  /**
   * Whether a JSON request read the fast way is computed here too, its tensors read, computed and
   * printed in one run of tasks (operation.computeJson, where the operation has it): when nothing
   * between this hook and the handler could answer otherwise (no query parameters, which the
   * handler would check first; a JSON answer, which is what is printed).
   */
  function computesHere(request: FastifyRequest): boolean {
    return Object.keys(request.query as object).length === 0 && !wantsSafetensors(request)
  }

  /**
   * The fast reading's job (computed too, when computesHere), kept for the handler: false when
   * the general reading must serve the body.
   */
  async function readFast(request: FastifyRequest, fast: FastJson, memory: RequestMemory, run: RunOptions) {
    if (operation.computeJson !== undefined && computesHere(request)) {
      const computed = await operation.computeJson(fast, memory, app.engine, run)
      if (computed !== null) computedJobs.set(request, computed)
      return computed !== null
    }
    const job = await operation.readJson(fast, memory, app.engine, run)
    if (job !== null) readJobs.set(request, job)
    return job !== null
  }

  /**
   * A JSON body in kernel memory is read here, before the schema: by the workers when it is a
   * body the fast reading takes (the schema then checks its small fields, with stand-ins for the
   * tensors already read), else the general way, JSON.parse, whose result the schema checks as
   * it always has. Either way the body the schema sees is plain JSON.
   */
  async function readJsonBody(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const body = request.body
    if (!(body instanceof JsonBody)) return
    if (body.bytes !== null) {
      // The workers read it: the request holds its admission slot from here.
      await app.takeSlot(request, reply)
      const run = { signal: request.deadline, requestId: request.id }
      const memory = request.kernelMemory()
      // What the fast reading allocates goes back if it declines: the general reading may need the room.
      const mark = memory.mark()
      const validate = request.compileValidationSchema(operation.docs.request, 'body') as BodyValidator
      const fast = await readSmallFields(app.engine, memory, body.bytes, operation.jsonTensors, validate, run)
      if (fast !== null && (await readFast(request, fast, memory, run))) {
        request.body = fast.body
        app.metrics.jsonBodies.inc({ reading: 'workers' })
        return
      }
      // Every run of the fast reading has settled: no task uses what it allocated.
      memory.freeAfter(mark)
    }
    app.metrics.jsonBodies.inc({ reading: 'general' })
    request.body = readJsonText(body.text())
  }

  app.post(
    operation.url,
    {
      schema: tensorRouteSchema(operation.docs),
      onRequest: app.shedWhenFull,
      preValidation: [refuseRepeatedQuery, readJsonBody],
      preHandler: app.takeSlot,
      serializerCompiler: stringifyAnswer
    },
    async (request, reply) => {
      const query = request.query as Query
      const memory = request.kernelMemory()
      const run = { signal: request.deadline, requestId: request.id }
      const computed = computedJobs.get(request)
      if (computed !== undefined) {
        app.metrics.elements.inc(operation.elements(computed.job))
        return sendJsonAnswer(reply, computed.job, computed.result, run, computed.printed)
      }
      let job: Job
      if (isSafetensorsBody(request.body)) {
        job = operation.fromSafetensors(request.body.bytes, query, memory, app.engine)
      } else {
        refuseQueryForJson(query, operation.jsonQuery)
        job = readJobs.get(request) ?? operation.fromJson(request.body, memory, app.engine)
      }
      // The job's memory belongs to the request: it is released once the answer has been sent
      // (and its tasks have settled).
      const result = await operation.compute(app.engine, job, run)
      app.metrics.elements.inc(operation.elements(job))
      if (wantsSafetensors(request)) return sendSafetensors(reply, operation.toSafetensors(job, result, query))
      return sendJsonAnswer(reply, job, result, run)
    }
  )

  async function sendJsonAnswer(
    reply: FastifyReply,
    job: Job,
    result: Result,
    run: RunOptions,
    printed: readonly PreparedPrint[] = []
  ): Promise<unknown> {
    let chunks: Uint8Array[]
    try {
      chunks = await operation.printJson(app.engine, job, result, run, printed)
    } catch (error) {
      // No room left to print into: the answer is written here instead.
      if (error instanceof ArenaFullError) return operation.toJson(job, result)
      throw error
    }
    return sendJson(reply, chunks)
  }
}
