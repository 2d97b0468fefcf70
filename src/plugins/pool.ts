import { fileURLToPath } from 'node:url'
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Piscina } from 'piscina'
import type { Admission, CrossEntropyBatch, LogprobsBatch } from '../batch.js'
import { ConfigError } from '../config.js'
import { XentErrors } from '../errors.js'
import { type KernelRows, kernelModule } from '../kernel/wasm.js'
import { limitsConflict } from '../limits.js'
import { KernelArena } from '../pool/arena.js'
import { type CrossEntropyResult, computeCrossEntropy } from '../pool/compute.js'
import { ControlWords } from '../pool/control.js'
import type { Fault, FaultSource } from '../pool/faults.js'
import { computeLogprobs, type LogprobsResult, type LogprobsTask } from '../pool/logprobs.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The kernel's shared memory: codecs decode requests into it. */
    kernelArena: KernelArena
    /** Refuses, before anything large is allocated, a batch over MAX_ELEMENTS or the kernel memory. */
    admitBatch: Admission
    /** Runs a batch on the worker pool, split across every worker when it is large. */
    crossEntropy: (batch: CrossEntropyBatch, options?: RunOptions) => Promise<CrossEntropyResult>
    /** True once the pool has run a task, false again from the start of shutdown. */
    isReady: () => boolean
    /** Turns /readyz 503 ahead of close(), while requests are still served (SHUTDOWN_DELAY_MS). */
    stopReadiness: () => void
    /** Runs a logprobs batch on the worker pool. */
    logprobs: (batch: LogprobsBatch, options?: RunOptions) => Promise<LogprobsResult>
    /** The pool as /metrics shows it. */
    poolStats: () => PoolStats
    /**
     * A route's onRequest hook: refuses (503 XENT_QUEUE_FULL) a request while as many are already
     * admitted as the workers and MAX_QUEUE can hold, before its body is read or parsed.
     */
    admitRequest: onRequestAsyncHookHandler
  }
}

export interface PoolOptions {
  threads: number
  memoryMegabytes: number
  /** Tasks that may wait for a worker; past it, 503 (MAX_QUEUE). */
  maxQueue: number
  /** B·T·V a request may have (MAX_ELEMENTS). */
  maxElements: number
  /** Each worker's V8 heap limit; a worker past it dies alone (WORKER_MAX_OLD_GENERATION_MB). */
  workerMaxOldGenerationMb: number
  /** Worker faults for the tasks of chosen requests (tests only; see src/pool/faults.ts). */
  faults?: FaultSource
}

export interface RunOptions {
  /** Aborting it cancels the work; the computation rejects with the signal's reason. */
  signal?: AbortSignal
  /** For the message of a worker failure (and, in tests, to choose a fault). */
  requestId?: string
}

export interface PoolStats {
  queued: number
  running: number
  workers: number
  utilization: number
}

/** Piscina's own words for a full queue (its errors carry no code). */
const QUEUE_FULL_MESSAGES = new Set(['Task queue is at limit', 'No task queue available and all Workers are busy'])

// Under the TypeScript sources (tests, `tsx`), workers load the .ts worker through tsx;
// the built service runs the compiled .js worker with no loader.
const fromSources = import.meta.url.endsWith('.ts')
const workerFile = fileURLToPath(new URL(`../pool/worker.${fromSources ? 'ts' : 'js'}`, import.meta.url))

async function pool(app: FastifyInstance, opts: PoolOptions): Promise<void> {
  const arena = new KernelArena(opts.memoryMegabytes)
  // Enough words for every task piscina can hold, and for the request being split beside them.
  const controls = new ControlWords(arena.permanentInt32(opts.maxQueue + 4 * opts.threads + 64))
  // Checked before any worker starts: a configuration that can never serve its own limit is a boot error.
  const conflict = limitsConflict(opts.maxElements, arena.capacity, opts.memoryMegabytes)
  if (conflict !== null) throw new ConfigError(`invalid configuration: ${conflict}`)
  const piscina = new Piscina<(KernelRows | LogprobsTask) & { fault?: Fault }, number>({
    filename: workerFile,
    minThreads: opts.threads,
    maxThreads: opts.threads,
    maxQueue: opts.maxQueue,
    resourceLimits: { maxOldGenerationSizeMb: opts.workerMaxOldGenerationMb },
    execArgv: fromSources ? ['--import', 'tsx'] : [],
    // Every worker instantiates the kernel over the same shared memory.
    workerData: { memory: arena.memory, module: kernelModule() }
  })
  const inFlight = new Set<Promise<unknown>>()
  let pendingTasks = 0
  let ready = false
  let closed = false

  app.decorate('kernelArena', arena)
  app.decorate('admitBatch', ({ elements, logitsShape, bytes }) => {
    if (elements > opts.maxElements) {
      throw new XentErrors.TOO_MANY_ELEMENTS(
        `logits ${JSON.stringify(logitsShape)} hold ${elements} elements; MAX_ELEMENTS allows ${opts.maxElements}`
      )
    }
    arena.requireCapacity(bytes)
  })
  /** Posts one task to piscina (to `name`, the worker's named export), with the pool's rules. */
  async function post<Task extends object>(
    task: Task,
    name: 'default' | 'logprobs' | 'crossEntropyPlain',
    signal: AbortSignal | undefined,
    requestId: string | undefined
  ): Promise<number> {
    // piscina's own maxQueue check counts only tasks without an AbortSignal (tasks with one
    // wait in a queue of their own), so the bound is kept here: every worker busy and
    // MAX_QUEUE tasks waiting means full.
    if (pendingTasks >= opts.threads + opts.maxQueue) throw new XentErrors.QUEUE_FULL()
    pendingTasks++
    try {
      return await piscina.run(task as KernelRows, { signal, name })
    } catch (error) {
      if (signal?.aborted === true) throw error
      if (error instanceof Error && QUEUE_FULL_MESSAGES.has(error.message)) throw new XentErrors.QUEUE_FULL()
      // The task threw, or its worker died (out of memory, or exited); piscina replaces a dead
      // worker by itself. The cause goes to the log, never to the client.
      app.log.error({ err: error, reqId: requestId }, 'a worker failed')
      throw new XentErrors.WORKER_FAILED(requestId ?? 'unknown')
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

  const computeOptions = (options: RunOptions) => ({
    controls,
    signal: options.signal,
    onCancelled: (stage: 'queued' | 'running') => app.metrics.cancelledTasks.inc({ stage })
  })

  app.decorate('crossEntropy', (batch: CrossEntropyBatch, options: RunOptions = {}) => {
    if (closed) return Promise.reject(new XentErrors.SHUTTING_DOWN())
    const fault = opts.faults?.(options.requestId)
    // The SIMD kernel has no softcap and no class probabilities; the plain one does them, row by
    // row in float64.
    const kernel = batch.softcap > 0 || batch.softTargets !== null ? 'crossEntropyPlain' : 'default'
    const run = (task: KernelRows, signal?: AbortSignal) =>
      post(fault === undefined ? task : { ...task, fault }, kernel, signal, options.requestId)
    return track(computeCrossEntropy(batch, run, opts.threads, computeOptions(options)))
  })
  app.decorate('logprobs', (batch: LogprobsBatch, options: RunOptions = {}) => {
    if (closed) return Promise.reject(new XentErrors.SHUTTING_DOWN())
    const fault = opts.faults?.(options.requestId)
    const run = (task: LogprobsTask, signal?: AbortSignal) =>
      post(fault === undefined ? task : { ...task, fault }, 'logprobs', signal, options.requestId)
    return track(computeLogprobs(batch, run, opts.threads, computeOptions(options)))
  })
  // Shedding a request before its body is parsed keeps the main thread free for the requests it
  // has taken, and for the probes, under a flood.
  let admitted = 0
  app.decorate('admitRequest', async (_request, reply) => {
    if (admitted >= opts.threads + opts.maxQueue) throw new XentErrors.QUEUE_FULL()
    admitted++
    let done = false
    const release = () => {
      if (!done) admitted--
      done = true
    }
    reply.raw.once('finish', release)
    reply.raw.once('close', release)
  })
  app.decorate('poolStats', () => {
    const queued = piscina.queueSize
    return {
      queued,
      running: Math.max(0, Math.min(piscina.threads.length, pendingTasks - queued)),
      workers: piscina.threads.length,
      utilization: piscina.utilization
    }
  })
  app.decorate('isReady', () => ready)
  app.decorate('stopReadiness', () => {
    ready = false
  })

  app.addHook('onReady', async () => {
    // One tiny batch through a worker proves the worker and its kernel load before we call
    // ourselves ready.
    const batch = warmUpBatch(arena)
    try {
      await app.crossEntropy(batch)
    } finally {
      batch.memory.release()
    }
    ready = true
  })
  app.addHook('preClose', async () => {
    ready = false
  })
  app.addHook('onClose', async () => {
    // The server has stopped taking requests, but one whose client hung up (or an injected one,
    // which holds no socket) may still be parsing or computing, and piscina's close() would cut
    // its tasks off with terminated workers. Drain every computation, including any that starts
    // while we wait; only then close the pool, after which a late one is told to retry elsewhere.
    while (inFlight.size > 0) await Promise.allSettled(inFlight)
    closed = true
    await piscina.close()
  })
}

function warmUpBatch(arena: KernelArena): CrossEntropyBatch {
  const memory = arena.group()
  return {
    memory,
    logits: memory.float32(2),
    logitsDtype: 'F32',
    targets: memory.int32(1),
    rows: 1,
    vocab: 2,
    logitsShape: [1, 2],
    targetsShape: [1],
    weight: null,
    reduction: 'mean',
    ignoreIndex: -100,
    labelSmoothing: 0,
    zLoss: 0,
    softcap: 0,
    softTargets: null,
    outputs: new Set(['gradients'])
  }
}

export default fp(pool, { name: 'pool', dependencies: ['metrics'] })
