import type { TSchema } from 'typebox'
import type { PreparedPrint } from '../codec/json-text.js'
import type { Engine, RunOptions } from '../engine/engine.js'
import type { RequestMemory } from '../engine/request.js'
import type { FastJson } from './json-body.js'

/** What computeJson gives: the job, its result, and the arrays of its answer already printed. */
export interface JsonComputed<Job, Result> {
  job: Job
  result: Result
  printed: readonly PreparedPrint[]
}

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
  /** The JSON body's tensor fields: the workers read them (./json-body.ts). */
  jsonTensors: readonly string[]
  /** The fast reading of a JSON body: its job, or null for the general reading (fromJson). */
  readJson(fast: FastJson, memory: RequestMemory, engine: Engine, run: RunOptions): Promise<Job | null>
  fromSafetensors(bytes: Uint8Array, query: Query, memory: RequestMemory, engine: Engine): Job
  compute(engine: Engine, job: Job, run: RunOptions): Promise<Result>
  toJson(job: Job, result: Result): unknown
  /**
   * readJson, compute and the printing of the answer's large arrays in one run of tasks, each task
   * reading, computing and printing its own rows (one hand-off where there would be three); null
   * for the general reading, as readJson.
   */
  computeJson?(
    fast: FastJson,
    memory: RequestMemory,
    engine: Engine,
    run: RunOptions
  ): Promise<JsonComputed<Job, Result> | null>
  /**
   * The JSON answer as text chunks, its large arrays printed by the workers (as toJson's values),
   * or already printed (`printed`, from computeJson).
   */
  printJson(
    engine: Engine,
    job: Job,
    result: Result,
    run: RunOptions,
    printed?: readonly PreparedPrint[]
  ): Promise<Uint8Array[]>
  toSafetensors(job: Job, result: Result, query: Query): Uint8Array[]
  /** B·T·V, for the elements-processed metric. */
  elements(job: Job): number
}
