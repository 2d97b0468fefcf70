import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Piscina } from 'piscina'
import type { CrossEntropyBatch } from '../batch.js'
import { XentErrors } from '../errors.js'
import { type KernelRows, kernelModule } from '../kernel/wasm.js'
import { KernelArena } from '../pool/arena.js'
import { type CrossEntropyResult, computeCrossEntropy } from '../pool/compute.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The kernel's shared memory: codecs decode requests into it. */
    kernelArena: KernelArena
    /** Runs a batch on the worker pool, split across every worker when it is large. */
    crossEntropy: (batch: CrossEntropyBatch) => Promise<CrossEntropyResult>
    /** True once the pool has run a task, false again from the start of shutdown. */
    isReady: () => boolean
  }
}

export interface PoolOptions {
  threads: number
  memoryMegabytes: number
}

// Under the TypeScript sources (tests, `tsx`), workers load the .ts worker through tsx;
// the built service runs the compiled .js worker with no loader.
const fromSources = import.meta.url.endsWith('.ts')
const workerFile = fileURLToPath(new URL(`../pool/worker.${fromSources ? 'ts' : 'js'}`, import.meta.url))

async function pool(app: FastifyInstance, opts: PoolOptions): Promise<void> {
  const arena = new KernelArena(opts.memoryMegabytes)
  const piscina = new Piscina<KernelRows, number>({
    filename: workerFile,
    minThreads: opts.threads,
    maxThreads: opts.threads,
    execArgv: fromSources ? ['--import', 'tsx'] : [],
    // Every worker instantiates the kernel over the same shared memory.
    workerData: { memory: arena.memory, module: kernelModule() }
  })
  const run = (task: KernelRows) => piscina.run(task)
  const inFlight = new Set<Promise<unknown>>()
  let ready = false
  let closed = false

  app.decorate('kernelArena', arena)
  app.decorate('crossEntropy', (batch: CrossEntropyBatch) => {
    if (closed) return Promise.reject(new XentErrors.SHUTTING_DOWN())
    const computation = computeCrossEntropy(batch, run, opts.threads)
    inFlight.add(computation)
    const forget = () => inFlight.delete(computation)
    computation.then(forget, forget)
    return computation
  })
  app.decorate('isReady', () => ready)

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
    outputs: new Set(['gradients'])
  }
}

export default fp(pool, { name: 'pool' })
