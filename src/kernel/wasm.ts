import { readFileSync } from 'node:fs'
import { KERNEL_WASM_FILE } from '../dist-path.js'

/**
 * The WebAssembly build of src/kernel/assembly/cross-entropy.ts (committed as wasm/kernels.wasm;
 * see scripts/build-wasm.mjs), and a typed handle on it. The module imports its memory, so one shared WebAssembly.Memory serves the route
 * (which writes tensors into it) and every worker's instance (which computes on them in place).
 */

export const WASM_FILE = KERNEL_WASM_FILE

/** Logit dtypes, as the kernel numbers them. */
export const LOGITS_DTYPE = { F32: 0, F16: 1, BF16: 2 } as const
export type LogitsDtype = keyof typeof LOGITS_DTYPE

/** What the kernel returns when every row was valid. */
export const ALL_ROWS_VALID = -1
/** Why a row was invalid, as the kernel writes it into that row's token-loss slot. */
export const INVALID_NOT_FINITE = 1
export const INVALID_ALL_MASKED = 2
export const INVALID_TARGET_MASKED = 3
export const INVALID_ROW_REASON: Record<number, string> = {
  [INVALID_NOT_FINITE]: 'contains NaN or +Inf',
  [INVALID_ALL_MASKED]: 'is −Inf everywhere (every class masked)',
  [INVALID_TARGET_MASKED]: "has −Inf at the target's own class"
}

/** What the kernel returns when its task was cancelled part-way (see TASK_CANCELLED). */
export const ROWS_CANCELLED = -2

/** A task's control word says this once the task is cancelled (see src/pool/control.ts). */
export const TASK_CANCELLED = -1

/** Bytes below this address belong to the module (its math tables); the arena starts above. */
export const KERNEL_RESERVED_BYTES = 65_536

/**
 * One kernel call, all addresses (byte offsets into the shared memory). `weight` and `gradients`
 * are 0 when absent.
 */
export interface KernelRows {
  logits: number
  logitsDtype: number
  targets: number
  rowStart: number
  rowEnd: number
  vocab: number
  ignoreIndex: number
  labelSmoothing: number
  weight: number
  classWeightSum: number
  gradScale: number
  tokenLoss: number
  nll: number
  gradients: number
  /** The task's control word (see src/pool/control.ts), or 0 for a call that cannot be cancelled. */
  control: number
  /** Where each row's ROW_STATS float64s (./stats.ts) go (entropy, log-sum-exp, argmax), or 0 for none. */
  stats: number
  /** d(z·lse²)/d lse per counted row, times the reduction's scale: 2·z (÷ count under mean); 0 without z-loss. */
  zGrad: number
  /** c > 0: logits are soft-capped first; only the plain kernel does it (not passed to the SIMD one). */
  softcap?: number
  /** Address of (rows × vocab) float32 class probabilities, or 0; only the plain kernel reads them. */
  softTargets?: number
  /** The id its control word holds while it waits (not passed to the kernel). */
  taskId?: number
}

interface KernelExports {
  rows: (...args: number[]) => number
}

let compiled: WebAssembly.Module | undefined

/** The compiled module, read and compiled once per thread. */
export function kernelModule(): WebAssembly.Module {
  if (compiled === undefined) {
    let bytes: Buffer
    try {
      bytes = readFileSync(WASM_FILE)
    } catch (error) {
      throw new Error(`${WASM_FILE} is missing: run \`npm run build\` first`, { cause: error })
    }
    compiled = new WebAssembly.Module(new Uint8Array(bytes))
  }
  return compiled
}

/** An instance over `memory`; returns a function that runs rows and says which row was invalid. */
export function instantiateKernel(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module = kernelModule()
): (call: KernelRows) => number {
  const { rows } = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports
  return (call) =>
    rows(
      call.logits,
      call.logitsDtype,
      call.targets,
      call.rowStart,
      call.rowEnd,
      call.vocab,
      call.ignoreIndex,
      call.labelSmoothing,
      call.weight,
      call.classWeightSum,
      call.gradScale,
      call.tokenLoss,
      call.nll,
      call.gradients,
      call.control,
      call.stats,
      call.zGrad
    )
}
