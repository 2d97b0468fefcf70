import type { TSchema } from 'typebox'
import type { Engine, RunOptions } from '../engine/engine.js'
import type { RequestMemory } from '../engine/request.js'

/** What the OpenAPI document says of an operation's route. */
export interface OperationDocs {
  summary: string
  description: string
  /** The options of a safetensors request. */
  querystring: TSchema
  /** The JSON body and the JSON answer. */
  request: TSchema
  response: TSchema
  /** What a 200 holds, and the tensors of a safetensors answer. */
  answer: string
  safetensorsAnswer: string
}

/**
 * An operation, as the generic tensor route serves it (src/http/tensor-route.ts): its two request
 * formats decoded into a job in the request's memory, the job computed on the engine, and its
 * two answer formats.
 */
export interface Operation<Job extends { memory: RequestMemory }, Result, Query> {
  url: string
  docs: OperationDocs
  /** Query parameters a JSON request may still carry: options of the answer's format. */
  jsonQuery: readonly string[]
  fromJson(body: unknown, memory: RequestMemory, engine: Engine): Job
  fromSafetensors(bytes: Uint8Array, query: Query, memory: RequestMemory, engine: Engine): Job
  compute(engine: Engine, job: Job, run: RunOptions): Promise<Result>
  toJson(job: Job, result: Result): unknown
  toSafetensors(job: Job, result: Result, query: Query): Uint8Array[]
  /** B·T·V, for the elements-processed metric. */
  elements(job: Job): number
}
