import { CROSS_ENTROPY_CALL, type KernelEntry, LOGPROBS_CALL, readCall } from '../../src/engine/abi.js'
import type { Engine } from '../../src/engine/engine.js'
import { StageDeclinedError } from '../../src/engine/errors.js'
import { instantiateKernels } from '../../src/engine/kernels.js'
import { KernelArena } from '../../src/engine/memory.js'
import { partitionRows } from '../../src/engine/ranges.js'
import { RequestMemory } from '../../src/engine/request.js'
import { runStages, STAGE_DECLINED } from '../../src/engine/task.js'
import { workerEntries } from '../../src/kernels/entries.js'
import { crossEntropyRows } from '../oracles/cross-entropy.js'
import { logprobRows } from '../oracles/logprobs.js'

/**
 * The kernels on this thread, standing in for the engine's workers: the WebAssembly family, or the
 * plain TypeScript oracles reading the very same call structs. Tests hold the two to each other
 * and to PyTorch without a worker pool in the way.
 */

/** Kernel memory for a test file. */
export const arena = new KernelArena(256)
const instance = instantiateKernels(arena.memory)
const kernels = workerEntries(instance.kernels, arena.buffer)
const exports = instance.exports

/** The kernel module's exports (its entries and the ABI's globals). */
export const kernelExports = exports

export type KernelKind = 'wasm' | 'oracle'

const JSON_ENTRIES: readonly KernelEntry[] = ['jsonIndex', 'numberRows', 'printRows']

/** Runs one range of a call on this thread, with `kind`'s kernel (`control`: a control word's address, wasm only). */
export function runRange(
  kind: KernelKind,
  entry: KernelEntry,
  call: number,
  rowStart: number,
  rowEnd: number,
  control = 0
): number {
  // The oracles compute; reading and printing JSON are the kernel's alone.
  if (kind === 'wasm' || JSON_ENTRIES.includes(entry)) return kernels[entry](call, rowStart, rowEnd, control)
  return entry === 'logprobRows' ? oracleLogprobs(call, rowStart, rowEnd) : oracleCrossEntropy(call, rowStart, rowEnd)
}

export type LocalEngine = Pick<Engine, 'arena' | 'admit' | 'copy' | 'run' | 'runHere'>

/**
 * An engine stand-in whose run() goes through `kind`'s kernel on this thread: in the ranges the
 * engine would make for `tasks` workers, or in the ones `split` makes.
 */
export function localEngine(
  kind: KernelKind,
  tasks = 1,
  split: (rows: number, vocab: number) => Array<[number, number]> = (rows, vocab) => partitionRows(rows, vocab, tasks)
): LocalEngine {
  return {
    arena,
    admit: (size) => arena.requireCapacity(size.bytes),
    // The engine's copy is the kernel's memory.copy (test/engine/copy.test.ts); here, the plain one.
    copy: (target, source) => target.set(source),
    runHere: (entry, call, rows) => runRange('wasm', entry, call, 0, rows),
    run: (memory, entry, call, rows, vocab, options = {}) =>
      memory.track(
        Promise.resolve().then(() => {
          const verdicts = split(rows, vocab).map(([rowStart, rowEnd]) =>
            runStages(
              { entry, call, rowStart, rowEnd, control: 0, taskId: 0, before: options.before, after: options.after },
              (stage) => runRange(kind, stage.entry, stage.call, rowStart, rowEnd)
            )
          )
          if (verdicts.includes(STAGE_DECLINED)) throw new StageDeclinedError()
          return verdicts
        })
      )
  }
}

/** `parts` ranges of near-equal size, whatever the batch's size. */
export function splitInto(parts: number): (rows: number) => Array<[number, number]> {
  return (rows) => {
    const cuts = Array.from({ length: parts + 1 }, (_, i) => Math.floor((i * rows) / parts))
    return cuts.slice(0, -1).map((start, i) => [start, cuts[i + 1]] as [number, number])
  }
}

/** A request's memory in the test arena. */
export function openMemory(): RequestMemory {
  return new RequestMemory(arena)
}

const view = <T>(make: (address: number) => T, address: number): T | null => (address === 0 ? null : make(address))

function oracleCrossEntropy(call: number, rowStart: number, rowEnd: number): number {
  const c = readCall(arena.buffer, call, CROSS_ENTROPY_CALL)
  const rows = rowEnd
  const length = rows * c.vocab
  const buffer = arena.buffer
  const logits = c.dtype === 0 ? new Float32Array(buffer, c.logits, length) : new Uint16Array(buffer, c.logits, length)
  return crossEntropyRows(
    logits,
    new Int32Array(buffer, c.targets, rows),
    {
      vocab: c.vocab,
      ignoreIndex: c.ignoreIndex,
      labelSmoothing: c.labelSmoothing,
      weight: view((a) => new Float32Array(buffer, a, c.vocab), c.weight),
      classWeightSum: c.classWeightSum,
      gradScale: c.gradScale,
      zGrad: c.zGrad,
      softcap: c.softcap,
      logitsDtype: c.dtype,
      softTargets: view((a) => new Float32Array(buffer, a, length), c.softTargets)
    },
    rowStart,
    rowEnd,
    {
      tokenLoss: new Float64Array(buffer, c.tokenLoss, rows),
      nll: new Float64Array(buffer, c.nll, rows),
      gradients: view((a) => new Float32Array(buffer, a, length), c.gradients),
      stats: view((a) => new Float64Array(buffer, a, rows * 3), c.stats)
    }
  )
}

function oracleLogprobs(call: number, rowStart: number, rowEnd: number): number {
  const c = readCall(arena.buffer, call, LOGPROBS_CALL)
  const rows = rowEnd
  const length = rows * c.vocab
  const buffer = arena.buffer
  const logits = c.dtype === 0 ? new Float32Array(buffer, c.logits, length) : new Uint16Array(buffer, c.logits, length)
  return logprobRows(
    logits,
    view((a) => new Int32Array(buffer, a, rows), c.targets),
    {
      vocab: c.vocab,
      logitsDtype: c.dtype,
      softcap: c.softcap,
      temperature: c.temperature,
      ignoreIndex: c.ignoreIndex,
      topK: c.topK
    },
    rowStart,
    rowEnd,
    {
      targetLogprobs: view((a) => new Float64Array(buffer, a, rows), c.targetLogprobs),
      topIds: view((a) => new Int32Array(buffer, a, rows * c.topK), c.topIds),
      topLogprobs: view((a) => new Float64Array(buffer, a, rows * c.topK), c.topLogprobs),
      entropy: view((a) => new Float64Array(buffer, a, rows), c.entropy)
    }
  )
}
