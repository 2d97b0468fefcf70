import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { workerEntries } from '../kernels/entries.js'
import { COPY_BLOCK_BYTES, COPY_BLOCKS_CALL, CROSS_ENTROPY_CALL, type KernelEntry, writeCall } from './abi.js'
import { ControlWords } from './control.js'
import {
  QueueFullError,
  ShuttingDownError,
  StageDeclinedError,
  TooManyElementsError,
  WorkerFailedError
} from './errors.js'
import { type Fault, type FaultSource, faultHits } from './faults.js'
import { instantiateKernels, type Kernels, kernelModule } from './kernels.js'
import { KernelArena } from './memory.js'
import { f32, f64, i32, u8 } from './plan.js'
import { type CancelledStage, partitionRows, runRanges } from './ranges.js'
import { RequestMemory } from './request.js'
import { STAGE_DECLINED, type Stage, type Task } from './task.js'

/**
 * The engine: the kernel's shared memory, admission, the worker pool, row ranges and their
 * cancellation. It knows no operation, no wire format and no HTTP: an operation plans its
 * request's memory, writes a call struct, and asks the engine to run an entry point over its rows.
 */

export interface EngineOptions {
  threads: number
  memoryMegabytes: number
  /** Tasks that may wait for a worker (MAX_QUEUE); past it, QueueFullError. */
  maxQueue: number
  /** B·T·V a request may have (MAX_ELEMENTS). */
  maxElements: number
  /** Each worker's V8 heap limit; a worker past it dies alone (WORKER_MAX_OLD_GENERATION_MB). */
  workerMaxOldGenerationMb: number
  /** Worker faults for the tasks of chosen requests (tests only; see ./faults.ts). */
  faults?: FaultSource
  /** Told of each cancelled task. */
  onCancelled?: (stage: CancelledStage) => void
  /** Told of each worker failure, with its cause (for the log: the client only gets a code). */
  onWorkerFailed?: (error: unknown, requestId: string | undefined) => void
  /** Called with the bytes requests can use, before any worker starts; throwing there stops the engine. */
  beforeStart?: (capacity: number) => void
}

export interface RunOptions {
  /** Aborting it cancels the run; it then rejects with the signal's reason. */
  signal?: AbortSignal
  /** For a worker failure's message (and, in tests, to choose a fault). */
  requestId?: string
}

/** Stages a run carries out in the same tasks as its entry, over the same rows (see Task). */
export interface RunStages {
  /** Before the entry: reading its inputs. If one refuses a row, the run rejects with StageDeclinedError. */
  before?: readonly Stage[]
  /** After the entry, in each range where it took every row: printing its outputs. */
  after?: readonly Stage[]
}

/** What admission weighs: the logits' size and the plan's kernel memory. */
export interface AdmissionSize {
  elements: number
  shape: readonly number[]
  bytes: number
}

export interface EngineStats {
  queued: number
  running: number
  workers: number
  /** Workers the pool has started since it began: its threads, and each one that replaced a dead one. */
  workersStarted: number
  utilization: number
  /** Admission slots held by requests in hand, of POOL_THREADS + MAX_QUEUE. */
  slotsTaken: number
  slots: number
}

export interface Engine {
  readonly arena: KernelArena
  readonly maxElements: number
  /**
   * Refuses a request that can never run (TooManyElementsError past MAX_ELEMENTS,
   * ArenaFullError for more memory than there is) before anything of it is allocated.
   */
  admit(size: AdmissionSize): void
  /** A new request's memory, and its owner. */
  openRequest(): RequestMemory
  /**
   * Runs `entry` over rows [0, rows) of the call struct at `call`, split across the workers (with
   * the stages, if any, in the same tasks); resolves to each range's verdict.
   */
  run(
    memory: RequestMemory,
    entry: KernelEntry,
    call: number,
    rows: number,
    vocab: number,
    options?: RunOptions & RunStages
  ): Promise<number[]>
  /**
   * Runs `entry` over rows [0, rows) of the call struct at `call` on this thread, at once, with an
   * instance of the kernel of its own: for work smaller than a task's hand-off costs (a few tens of
   * microseconds), which a worker would only add the hand-off to. Its verdict.
   */
  runHere(entry: KernelEntry, call: number, rows: number): number
  /**
   * Copies `source` into `target`, two views of the kernel memory of the same length, at memcpy's
   * speed whatever their addresses (the kernel's memory.copy, on this thread). JavaScript's own
   * copy between SharedArrayBuffer views goes a byte at a time when they are skewed modulo 8.
   */
  copy(target: Uint8Array, source: Uint8Array): void
  /** A slot for a request in hand, or null when POOL_THREADS + MAX_QUEUE are already held; call the result to free it. */
  takeSlot(): (() => void) | null
  /** Whether takeSlot() would give a slot now. */
  hasFreeSlot(): boolean
  stats(): EngineStats
  /** Runs one task, to prove the workers and their kernel load; then ready. */
  start(): Promise<void>
  isReady(): boolean
  /** Not ready from now (shutdown has begun); requests are still served. */
  stopReadiness(): void
  /** Waits for every computation, then stops the workers; later runs get ShuttingDownError. */
  close(): Promise<void>
}

/**
 * The workers' nice value (the main thread's is the process's, 0 by default). A worker computes for
 * as long as a request's rows take; the main thread answers probes and moves bytes in and out in
 * short turns. With the workers below it, a core goes to the main thread when both want one:
 * /healthz p99 under four 60 MB JSON uploads fell from 28–35 ms to 20–22 ms in alternated runs on a
 * 2-core VM, with small JSON requests a second unchanged.
 */
export const WORKER_NICE = 10

/** Piscina's own words for a full queue (its errors carry no code). */
const QUEUE_FULL_MESSAGES = new Set(['Task queue is at limit', 'No task queue available and all Workers are busy'])

// Under the TypeScript sources (tests, `tsx`), workers load the .ts worker through tsx; the
// built service runs the compiled .js worker with no loader.
const fromSources = import.meta.url.endsWith('.ts')
const workerFile = fileURLToPath(new URL(`./worker.${fromSources ? 'ts' : 'js'}`, import.meta.url))

export function createEngine(options: EngineOptions): Engine {
  const { threads, maxQueue, maxElements } = options
  const arena = new KernelArena(options.memoryMegabytes)
  // Enough control words for every task piscina can hold, and for the request being split beside
  // them; and after them, in the same block, the call struct of copy(), which only this thread
  // writes, and runs at once.
  const controlCount = maxQueue + 4 * threads + 64
  const permanent = arena.permanentInt32(controlCount + Math.ceil(COPY_BLOCKS_CALL.bytes / 4))
  const controls = new ControlWords(permanent.subarray(0, controlCount))
  const copyCall = permanent.subarray(controlCount).byteOffset
  options.beforeStart?.(arena.capacity)
  const piscina = new Piscina<Task & { fault?: Fault }, number>({
    filename: workerFile,
    minThreads: threads,
    maxThreads: threads,
    maxQueue,
    resourceLimits: { maxOldGenerationSizeMb: options.workerMaxOldGenerationMb },
    execArgv: fromSources ? ['--import', 'tsx'] : [],
    // Every worker instantiates the kernel over the same shared memory, at a lower priority.
    workerData: { memory: arena.memory, module: kernelModule(), nice: WORKER_NICE }
  })
  let workersStarted = 0
  piscina.on('workerCreate', () => workersStarted++)
  // Tasks wait for a free worker here, not in piscina's queue, and go to piscina without an
  // AbortSignal: piscina aborts a task it has already handed to a worker by terminating that
  // worker, and a client that hangs up between the hand-off and the worker's claim would cost a
  // thread and its warm kernel. A waiting task is dropped from this queue; one handed over meets
  // its cancelled control word and returns at once, or stops at its next row.
  const waiting: Array<() => void> = []
  let handedOver = 0
  /** Resolves once a worker is free for the task (at once if one is), or rejects when `signal` aborts first. */
  function turn(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    if (handedOver < threads) {
      handedOver++
      return undefined
    }
    return new Promise((resolve, reject) => {
      const start = () => {
        signal?.removeEventListener('abort', drop)
        handedOver++
        resolve()
      }
      const drop = () => {
        const index = waiting.indexOf(start)
        if (index === -1) return
        waiting.splice(index, 1)
        reject(signal?.reason)
      }
      waiting.push(start)
      signal?.addEventListener('abort', drop, { once: true })
    })
  }
  /** A handed-over task has settled: its worker takes the next waiting one. */
  function free() {
    handedOver--
    waiting.shift()?.()
  }
  const inFlight = new Set<Promise<unknown>>()
  // The kernel on this thread, for runHere (instantiated at its first use).
  let here: Kernels | undefined
  let pendingTasks = 0
  let slots = 0
  let ready = false
  let closed = false

  /** Posts one task to piscina, with the engine's own bound on what may wait. */
  async function post(task: Task & { fault?: Fault }, signal: AbortSignal | undefined, requestId: string | undefined) {
    // Tasks wait in the engine's queue (see turn), so the bound is kept here: every worker busy
    // and MAX_QUEUE waiting is full.
    if (pendingTasks >= threads + maxQueue) throw new QueueFullError()
    pendingTasks++
    try {
      const wait = turn(signal)
      if (wait !== undefined) await wait
      try {
        return await piscina.run(task)
      } finally {
        free()
      }
    } catch (error) {
      if (signal?.aborted === true) throw error
      if (error instanceof Error && QUEUE_FULL_MESSAGES.has(error.message)) throw new QueueFullError()
      // The task threw, or its worker died (out of memory, or exited); piscina replaces a dead
      // worker by itself.
      options.onWorkerFailed?.(error, requestId)
      throw new WorkerFailedError(requestId, { cause: error })
    } finally {
      pendingTasks--
    }
  }

  /** Tracks a computation, so that close() waits for it. */
  function track<T>(computation: Promise<T>): Promise<T> {
    inFlight.add(computation)
    const forget = () => inFlight.delete(computation)
    computation.then(forget, forget)
    return computation
  }

  const engine: Engine = {
    arena,
    maxElements,
    admit({ elements, shape, bytes }) {
      if (elements > maxElements) throw new TooManyElementsError(elements, maxElements, shape)
      arena.requireCapacity(bytes)
    },
    openRequest: () => new RequestMemory(arena),
    run(memory, entry, call, rows, vocab, runOptions = {}) {
      if (closed) return Promise.reject(new ShuttingDownError())
      const { before, after } = runOptions
      const chosen = options.faults?.(runOptions.requestId)
      // A fault hits a task when it hits its entry or any stage of it.
      const hits = (stage: Stage) => chosen !== undefined && faultHits(chosen, stage.entry)
      const fault =
        chosen !== undefined && (faultHits(chosen, entry) || before?.some(hits) || after?.some(hits))
          ? chosen
          : undefined
      const work = runRanges(
        partitionRows(rows, vocab, threads),
        (rowStart, rowEnd, control, taskId): Task & { fault?: Fault } => ({
          entry,
          call,
          rowStart,
          rowEnd,
          control,
          taskId,
          ...(before === undefined || before.length === 0 ? {} : { before }),
          ...(after === undefined || after.length === 0 ? {} : { after }),
          ...(fault === undefined ? {} : { fault })
        }),
        (task, signal) => post(task, signal, runOptions.requestId),
        { controls, signal: runOptions.signal, onCancelled: options.onCancelled }
      ).then((verdicts) => {
        if (verdicts.includes(STAGE_DECLINED)) throw new StageDeclinedError()
        return verdicts
      })
      // The request's memory stays with the run until its last task has settled.
      return track(memory.track(work))
    },
    runHere(entry, call, rows) {
      here ??= workerEntries(instantiateKernels(arena.memory, kernelModule()).kernels, arena.buffer)
      return here[entry](call, 0, rows, 0)
    },
    copy(target, source) {
      if (target.buffer !== arena.buffer || source.buffer !== arena.buffer) {
        throw new RangeError('copy() takes two views of the kernel memory')
      }
      if (target.byteLength !== source.byteLength) {
        throw new RangeError(`copy() takes views of one length; got ${target.byteLength} and ${source.byteLength}`)
      }
      writeCall(arena.buffer, copyCall, COPY_BLOCKS_CALL, {
        dst: target.byteOffset,
        src: source.byteOffset,
        length: source.byteLength
      })
      engine.runHere('copyBlocks', copyCall, Math.ceil(source.byteLength / COPY_BLOCK_BYTES))
    },
    hasFreeSlot: () => slots < threads + maxQueue,
    takeSlot() {
      if (slots >= threads + maxQueue) return null
      slots++
      let held = true
      return () => {
        if (held) slots--
        held = false
      }
    },
    stats() {
      const queued = waiting.length + piscina.queueSize
      return {
        queued,
        running: Math.max(0, Math.min(piscina.threads.length, pendingTasks - queued)),
        workers: piscina.threads.length,
        workersStarted,
        utilization: piscina.utilization,
        slotsTaken: slots,
        slots: threads + maxQueue
      }
    },
    async start() {
      await warmUp(engine)
      ready = true
    },
    isReady: () => ready,
    stopReadiness() {
      ready = false
    },
    async close() {
      ready = false
      // A request whose client hung up may still be computing, and piscina's close() would cut
      // its tasks off with terminated workers. Drain every computation, including any that
      // starts while we wait; only then close the pool.
      while (inFlight.size > 0) await Promise.allSettled(inFlight)
      closed = true
      await piscina.close()
    }
  }
  return engine
}

/** One tiny cross-entropy row through a worker: the workers and their kernel load. */
async function warmUp(engine: Engine): Promise<void> {
  const memory = engine.openRequest()
  try {
    const views = memory.allocate({
      logits: f32(2),
      targets: i32(1),
      tokenLoss: f64(1),
      nll: f64(1),
      call: u8(CROSS_ENTROPY_CALL.bytes)
    })
    writeCall(engine.arena.buffer, views.call.byteOffset, CROSS_ENTROPY_CALL, {
      logits: views.logits.byteOffset,
      dtype: 0,
      targets: views.targets.byteOffset,
      vocab: 2,
      ignoreIndex: -100,
      weight: 0,
      tokenLoss: views.tokenLoss.byteOffset,
      nll: views.nll.byteOffset,
      gradients: 0,
      stats: 0,
      softTargets: 0,
      labelSmoothing: 0,
      classWeightSum: 2,
      gradScale: 1,
      zGrad: 0,
      softcap: 0
    })
    await engine.run(memory, 'hardTargetRows', views.call.byteOffset, 1, 2)
  } finally {
    memory.release()
  }
}
