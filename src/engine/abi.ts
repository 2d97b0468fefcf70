/**
 * The host↔kernel ABI, the host's side, in one place: every constant the kernel family
 * (src/kernels/assembly/) and the host share, and the layout of its call structs. It imports
 * nothing. The kernel exports the same names as wasm globals, and test/engine/abi.test.ts holds
 * the two to each other, so they cannot drift.
 */

/** Logit dtypes, as the kernel numbers them. */
export const LOGITS_DTYPE = { F32: 0, F16: 1, BF16: 2 } as const
export type LogitsDtype = keyof typeof LOGITS_DTYPE

/** A rows call returns this when every row was valid; else the first invalid row, or ROWS_CANCELLED. */
export const ALL_ROWS_VALID = -1
/** What a rows call returns when its task was cancelled part-way (its control word said TASK_CANCELLED). */
export const ROWS_CANCELLED = -2
/** A task's control word says this once the task is cancelled; the kernel reads it once a row. */
export const TASK_CANCELLED = -1

/** Per-row stats of a cross-entropy call (float64s): entropy and log-sum-exp (0 where ignored), the argmax. */
export const ROW_STATS = 3
export const STAT_ENTROPY = 0
export const STAT_LOG_SUM_EXP = 1
export const STAT_ARGMAX = 2

/** The largest top_k a logprobs call takes. */
export const MAX_TOP_K = 64

/** Bytes below this address belong to the module (its math tables); the arena starts above. */
export const KERNEL_RESERVED_BYTES = 65_536

/** A field of a call struct: its byte offset, and whether it is an address or i32 (u32) or an f64. */
interface Field {
  offset: number
  type: 'u32' | 'i32' | 'f64'
}

/** A call struct: its fields and its size, and the name prefix of the kernel's globals for it. */
export interface CallLayout<Name extends string> {
  prefix: string
  bytes: number
  fields: Record<Name, Field>
}

const u32 = (offset: number): Field => ({ offset, type: 'u32' })
const i32 = (offset: number): Field => ({ offset, type: 'i32' })
const f64 = (offset: number): Field => ({ offset, type: 'f64' })

/** hardTargetRows and softTargetRows: addresses are 0 where absent. */
export const CROSS_ENTROPY_CALL = {
  prefix: 'CE_',
  bytes: 88,
  fields: {
    logits: u32(0),
    dtype: i32(4),
    targets: u32(8),
    vocab: i32(12),
    ignoreIndex: i32(16),
    weight: u32(20),
    tokenLoss: u32(24),
    nll: u32(28),
    gradients: u32(32),
    stats: u32(36),
    softTargets: u32(40),
    labelSmoothing: f64(48),
    classWeightSum: f64(56),
    gradScale: f64(64),
    /** d(z·lse²)/d lse per counted row, times the reduction's scale: 2·z (÷ count under mean). */
    zGrad: f64(72),
    /** c > 0: logits become c·tanh(x/c) first; 0 for none. */
    softcap: f64(80)
  }
} satisfies CallLayout<string>

/** logprobRows. */
export const LOGPROBS_CALL = {
  prefix: 'LP_',
  bytes: 56,
  fields: {
    logits: u32(0),
    dtype: i32(4),
    targets: u32(8),
    vocab: i32(12),
    ignoreIndex: i32(16),
    topK: i32(20),
    targetLogprobs: u32(24),
    topIds: u32(28),
    topLogprobs: u32(32),
    entropy: u32(36),
    softcap: f64(40),
    temperature: f64(48)
  }
} satisfies CallLayout<string>

/** jsonIndex: one task lists a JSON body's fields and where each innermost array begins. */
export const JSON_INDEX_CALL = {
  prefix: 'IX_',
  bytes: 32,
  fields: {
    text: u32(0),
    length: u32(4),
    /** ENTRY_WORDS int32s a field (see ENTRY). */
    entries: u32(8),
    maxEntries: i32(12),
    /** A u32 text offset an innermost array. */
    rowStarts: u32(16),
    maxRows: i32(20),
    /** Written by the kernel: fields found, and innermost arrays (even past maxRows). */
    entryCount: i32(24),
    rowCount: i32(28)
  }
} satisfies CallLayout<string>

/** One field of an indexed JSON body: word offsets in its ENTRY_WORDS int32s. */
export const ENTRY = {
  words: 10,
  keyStart: 0,
  keyEnd: 1,
  valueStart: 2,
  valueEnd: 3,
  flags: 4,
  depth: 5,
  children: 6,
  firstRow: 7,
  rows: 8,
  rowLength: 9
} as const
/** Entry flags: the key holds an escape; the value is not a regular nest of number arrays. */
export const FLAG_ESCAPED_KEY = 1
export const FLAG_IRREGULAR = 2
/** jsonIndex's verdicts besides ALL_ROWS_VALID. */
export const INDEX_UNSUPPORTED = 0
export const INDEX_TOO_MANY_ROWS = 1

/** numberRows: rows of a nested JSON array of numbers parsed into float32 or int32. */
export const NUMBER_ROWS_CALL = {
  prefix: 'NR_',
  bytes: 44,
  fields: {
    text: u32(0),
    rowStarts: u32(4),
    out: u32(8),
    /** A byte a row, set where a number needs an exact reading (the worker reads it again). */
    undecided: u32(12),
    count: i32(16),
    kind: i32(20),
    rows: i32(24),
    /** Rows in each second-level array of a depth-3 value; 0 otherwise. */
    group: i32(28),
    depth: i32(32),
    valueStart: u32(36),
    valueEnd: u32(40)
  }
} satisfies CallLayout<string>
export const NUMBER_KIND = { F32: 0, I32: 1 } as const

/** printRows: rows of numbers printed as JSON text, each task's rows one after another. */
export const PRINT_ROWS_CALL = {
  prefix: 'PR_',
  bytes: 32,
  fields: {
    values: u32(0),
    count: i32(4),
    rows: i32(8),
    group: i32(12),
    out: u32(16),
    /** Bytes of output a row may take; a task starts at out + rowStart·stride. */
    stride: u32(20),
    /** [start, end) of each row's text, u32 offsets from out. */
    spans: u32(24),
    kind: i32(28)
  }
} satisfies CallLayout<string>
export const PRINT_KIND = { F32: 0, F64: 1, I32: 2 } as const

/** copyBlocks: `length` bytes from `src` to `dst`, COPY_BLOCK_BYTES a row (the last row shorter). */
export const COPY_BLOCKS_CALL = {
  prefix: 'CB_',
  bytes: 12,
  fields: {
    dst: u32(0),
    src: u32(4),
    length: u32(8)
  }
} satisfies CallLayout<string>
export const COPY_BLOCK_BYTES = 1 << 20

export type CrossEntropyCall = { [K in keyof typeof CROSS_ENTROPY_CALL.fields]: number }
export type LogprobsCall = { [K in keyof typeof LOGPROBS_CALL.fields]: number }

/** Writes `values` into the call struct at `address` of `buffer` (the kernel's memory). */
export function writeCall<Name extends string>(
  buffer: ArrayBufferLike,
  address: number,
  layout: CallLayout<Name>,
  values: Record<Name, number>
): void {
  const view = new DataView(buffer, address, layout.bytes)
  for (const name of Object.keys(layout.fields) as Name[]) {
    const { offset, type } = layout.fields[name]
    const value = values[name]
    if (type === 'f64') view.setFloat64(offset, value, true)
    else if (type === 'u32') view.setUint32(offset, value, true)
    else view.setInt32(offset, value, true)
  }
}

/** Reads the call struct at `address` back (tests, and the plain oracles that stand in for the kernel). */
export function readCall<Name extends string>(
  buffer: ArrayBufferLike,
  address: number,
  layout: CallLayout<Name>
): Record<Name, number> {
  const view = new DataView(buffer, address, layout.bytes)
  const values = {} as Record<Name, number>
  for (const name of Object.keys(layout.fields) as Name[]) {
    const { offset, type } = layout.fields[name]
    values[name] =
      type === 'f64'
        ? view.getFloat64(offset, true)
        : type === 'u32'
          ? view.getUint32(offset, true)
          : view.getInt32(offset, true)
  }
  return values
}

/** The kernel's exported entry points: (call, rowStart, rowEnd, control) → verdict. */
export const KERNEL_ENTRIES = [
  'hardTargetRows',
  'softTargetRows',
  'logprobRows',
  'jsonIndex',
  'numberRows',
  'printRows',
  'copyBlocks'
] as const
export type KernelEntry = (typeof KERNEL_ENTRIES)[number]

/** The scalar constants the kernel exports under the same names. */
export const KERNEL_CONSTANTS = {
  DTYPE_F32: LOGITS_DTYPE.F32,
  DTYPE_F16: LOGITS_DTYPE.F16,
  DTYPE_BF16: LOGITS_DTYPE.BF16,
  ALL_ROWS_VALID,
  ROWS_CANCELLED,
  TASK_CANCELLED,
  ROW_STATS,
  STAT_ENTROPY,
  STAT_LOG_SUM_EXP,
  STAT_ARGMAX,
  MAX_TOP_K,
  ENTRY_WORDS: ENTRY.words,
  ENTRY_KEY_START: ENTRY.keyStart,
  ENTRY_KEY_END: ENTRY.keyEnd,
  ENTRY_VALUE_START: ENTRY.valueStart,
  ENTRY_VALUE_END: ENTRY.valueEnd,
  ENTRY_FLAGS: ENTRY.flags,
  ENTRY_DEPTH: ENTRY.depth,
  ENTRY_CHILDREN: ENTRY.children,
  ENTRY_FIRST_ROW: ENTRY.firstRow,
  ENTRY_ROWS: ENTRY.rows,
  ENTRY_ROW_LENGTH: ENTRY.rowLength,
  FLAG_ESCAPED_KEY,
  FLAG_IRREGULAR,
  INDEX_UNSUPPORTED,
  INDEX_TOO_MANY_ROWS,
  NUMBER_F32: NUMBER_KIND.F32,
  NUMBER_I32: NUMBER_KIND.I32,
  PRINT_F32: PRINT_KIND.F32,
  PRINT_F64: PRINT_KIND.F64,
  PRINT_I32: PRINT_KIND.I32,
  COPY_BLOCK_BYTES
} as const
