import { reshape } from '../codec/json-tensors.js'
import { type PreparedPrint, preparePrint, printNumbers } from '../codec/json-text.js'
import type { Engine, RunOptions } from '../engine/engine.js'
import { StageDeclinedError } from '../engine/errors.js'
import { ArenaFullError, copyInto } from '../engine/memory.js'
import { f32, f64, i32 } from '../engine/plan.js'
import type { RequestMemory } from '../engine/request.js'
import type { Stage } from '../engine/task.js'
import type { JsonComputed } from './operation.js'

/**
 * A JSON answer written as text: the scalars and small arrays here, with JSON.stringify; the
 * large arrays by the workers, straight from kernel memory into it (src/codec/json-text.ts),
 * all at once. The result is the answer's bytes as chunks, some of them views of the request's
 * memory, which the route writes as they are.
 */

/** float64 and int32 arrays shorter than this are printed here: a task would cost more. */
const PRINT_HERE_BELOW = 4096

/**
 * What an operation's answer is made of, in order: each operation describes its answer once,
 * through this, and it is written either as text (JsonAnswer) or as plain objects (ObjectAnswer)
 * for Fastify's serializer.
 */
export interface AnswerWriter {
  /** Starts the next field. */
  field(name: string): this
  /** A nested object as the value of the field just started; end() closes it. */
  begin(): this
  end(): this
  /** A value as JSON.stringify writes it. */
  value(value: unknown): this
  /** A flat array as nested arrays of `shape`. */
  array(values: Float32Array | Float64Array | Int32Array, shape: readonly number[]): this
}

/** An answer as plain objects and arrays. */
export class ObjectAnswer implements AnswerWriter {
  readonly #open: Array<Record<string, unknown>> = [{}]
  #name = ''

  field(name: string): this {
    this.#name = name
    return this
  }

  begin(): this {
    const nested = {}
    this.value(nested)
    this.#open.push(nested)
    return this
  }

  end(): this {
    this.#open.pop()
    return this
  }

  value(value: unknown): this {
    this.#open[this.#open.length - 1][this.#name] = value
    return this
  }

  array(values: Float32Array | Float64Array | Int32Array, shape: readonly number[]): this {
    return this.value(reshape(values, [...shape]))
  }

  /** The answer. */
  finish(): Record<string, unknown> {
    return this.#open[0]
  }
}

export class JsonAnswer implements AnswerWriter {
  readonly #engine: Pick<Engine, 'arena' | 'run'>
  readonly #memory: RequestMemory
  readonly #run: RunOptions
  readonly #parts: Array<Promise<Uint8Array[]>> = []
  #last: Promise<unknown> = Promise.resolve()
  #text = '{'
  /** Fields written so far in each open object, the innermost last. */
  readonly #fields = [0]

  readonly #printed: readonly PreparedPrint[]

  /** `printed`: arrays already printed (their stages have run), whose text is used as it is. */
  constructor(
    engine: Pick<Engine, 'arena' | 'run'>,
    memory: RequestMemory,
    run: RunOptions,
    printed: readonly PreparedPrint[] = []
  ) {
    this.#engine = engine
    this.#memory = memory
    this.#run = run
    this.#printed = printed
  }

  /** Starts the next field. */
  field(name: string): this {
    const open = this.#fields.length - 1
    this.#text += `${this.#fields[open]++ === 0 ? '' : ','}${JSON.stringify(name)}:`
    return this
  }

  /** A nested object as the value of the field just started; end() closes it. */
  begin(): this {
    this.#text += '{'
    this.#fields.push(0)
    return this
  }

  end(): this {
    this.#text += '}'
    this.#fields.pop()
    return this
  }

  /** A value as JSON.stringify writes it. */
  value(value: unknown): this {
    this.#text += JSON.stringify(value)
    return this
  }

  /**
   * A flat array as nested arrays of `shape`: float32 values as their shortest round-trip
   * decimals, float64 and int32 ones as JSON.stringify writes them.
   */
  array(values: Float32Array | Float64Array | Int32Array, shape: readonly number[]): this {
    const done = this.#printed.find((print) => print.values === values)
    if (done !== undefined) {
      this.#flush()
      this.#parts.push(Promise.resolve(done.chunks()))
      return this
    }
    if (!(values instanceof Float32Array) && values.length < PRINT_HERE_BELOW) {
      return this.value(reshape(values, [...shape]))
    }
    this.#flush()
    // One array after another: a request keeps one run of tasks in flight (as its admission
    // slot assumes), and when one cannot be printed none after it starts.
    const printed = this.#last.then(() => {
      const inKernel = values.buffer === this.#engine.arena.buffer ? values : this.#copy(values)
      return printNumbers(this.#engine, this.#memory, inKernel, shape, this.#run)
    })
    this.#last = printed
    this.#parts.push(printed)
    return this
  }

  /** The answer's bytes, once every array is printed. */
  async finish(): Promise<Uint8Array[]> {
    this.#text += '}'
    this.#flush()
    await this.#last
    return (await Promise.all(this.#parts)).flat()
  }

  #flush(): void {
    if (this.#text.length > 0) this.#parts.push(Promise.resolve([Buffer.from(this.#text)]))
    this.#text = ''
  }

  #copy(values: Float32Array | Float64Array | Int32Array): Float32Array | Float64Array | Int32Array {
    const n = values.length
    const into =
      values instanceof Float32Array
        ? this.#memory.allocate({ v: f32(n) }).v
        : values instanceof Float64Array
          ? this.#memory.allocate({ v: f64(n) }).v
          : this.#memory.allocate({ v: i32(n) }).v
    // Bytes, not elements: V8 copies elements into shared memory a byte at a time when the two are skewed.
    copyInto(
      new Uint8Array(into.buffer, into.byteOffset, into.byteLength),
      0,
      new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
    )
    return into
  }
}

/**
 * The printing of each of an answer's arrays that is not null, prepared to run after the
 * computation that writes it, in its tasks (see preparePrint); none when the request's memory has
 * no room for the text (the answer is then printed, or written, the usual way).
 */
export function preparePrints(
  engine: Pick<Engine, 'arena'>,
  memory: RequestMemory,
  ...arrays: Array<[Float32Array | Float64Array | Int32Array | null, readonly number[]]>
): PreparedPrint[] {
  try {
    return arrays.flatMap(([values, shape]) => (values === null ? [] : [preparePrint(engine, memory, values, shape)]))
  } catch (error) {
    if (error instanceof ArenaFullError) return []
    throw error
  }
}

/**
 * A job of the fast reading computed with its answer's arrays printed in the same tasks (`compute`
 * runs the prints' stages after its entry): the job, its result and those prints; null when the
 * job's reading refused a row (StageDeclinedError), for the general reading to serve the body.
 */
export async function computePrinting<Job, Result>(
  job: Job,
  printed: PreparedPrint[],
  compute: (after: readonly Stage[]) => Promise<Result>
): Promise<JsonComputed<Job, Result> | null> {
  try {
    return { job, result: await compute(printed.map((print) => print.stage)), printed }
  } catch (error) {
    if (error instanceof StageDeclinedError) return null
    throw error
  }
}
