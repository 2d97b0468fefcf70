// The host↔kernel ABI, the kernel's side: every constant and call-struct offset the host uses.
// The host's side is src/engine/abi.ts; these are exported from the module as globals, and a test
// (test/engine/abi.test.ts) holds the two to each other.

// Logit dtypes.
export const DTYPE_F32: i32 = 0
export const DTYPE_F16: i32 = 1
export const DTYPE_BF16: i32 = 2

// What a rows call returns: every row valid, cancelled part-way, or else the first invalid row.
export const ALL_ROWS_VALID: i32 = -1
export const ROWS_CANCELLED: i32 = -2
// A task's control word says this once it is cancelled; the kernel reads it once a row.
export const TASK_CANCELLED: i32 = -1

// Per-row stats (float64s): entropy, log-sum-exp (0 where ignored) and the first index of the max.
export const ROW_STATS: i32 = 3
export const STAT_ENTROPY: i32 = 0
export const STAT_LOG_SUM_EXP: i32 = 1
export const STAT_ARGMAX: i32 = 2

// A cross-entropy call: a struct in shared memory, byte offsets. Addresses are u32 (0: absent).
export const CE_LOGITS: i32 = 0
export const CE_DTYPE: i32 = 4
export const CE_TARGETS: i32 = 8
export const CE_VOCAB: i32 = 12
export const CE_IGNORE_INDEX: i32 = 16
export const CE_WEIGHT: i32 = 20
export const CE_TOKEN_LOSS: i32 = 24
export const CE_NLL: i32 = 28
export const CE_GRADIENTS: i32 = 32
export const CE_STATS: i32 = 36
export const CE_SOFT_TARGETS: i32 = 40
export const CE_LABEL_SMOOTHING: i32 = 48 // f64
export const CE_CLASS_WEIGHT_SUM: i32 = 56 // f64
export const CE_GRAD_SCALE: i32 = 64 // f64
export const CE_Z_GRAD: i32 = 72 // f64
export const CE_SOFTCAP: i32 = 80 // f64, 0 for none
export const CE_BYTES: i32 = 88

// A logprobs call.
export const LP_LOGITS: i32 = 0
export const LP_DTYPE: i32 = 4
export const LP_TARGETS: i32 = 8
export const LP_VOCAB: i32 = 12
export const LP_IGNORE_INDEX: i32 = 16
export const LP_TOP_K: i32 = 20
export const LP_TARGET_LOGPROBS: i32 = 24 // f64 per row
export const LP_TOP_IDS: i32 = 28 // i32, top_k per row
export const LP_TOP_LOGPROBS: i32 = 32 // f64, top_k per row
export const LP_ENTROPY: i32 = 36 // f64 per row
export const LP_SOFTCAP: i32 = 40 // f64, 0 for none
export const LP_TEMPERATURE: i32 = 48 // f64
export const LP_BYTES: i32 = 56

// The largest top_k a logprobs call may ask for.
export const MAX_TOP_K: i32 = 64

// A JSON index call (jsonIndex): one task reads a whole JSON body's top-level object and lists
// its fields, and where every innermost array (a row of numbers) begins.
export const IX_TEXT: i32 = 0
export const IX_LENGTH: i32 = 4
export const IX_ENTRIES: i32 = 8 // ENTRY_WORDS i32s a field
export const IX_MAX_ENTRIES: i32 = 12
export const IX_ROW_STARTS: i32 = 16 // u32 text offsets
export const IX_MAX_ROWS: i32 = 20
export const IX_ENTRY_COUNT: i32 = 24 // written by the kernel
export const IX_ROW_COUNT: i32 = 28 // written by the kernel, even past IX_MAX_ROWS
export const IX_BYTES: i32 = 32

// One field of the body, as i32 words: its key's and value's text spans (offsets into the text,
// the key without its quotes), flags, and for an array value its depth, direct child arrays,
// innermost rows (an index into the row starts, and a count) and the length of its first row.
export const ENTRY_WORDS: i32 = 10
export const ENTRY_KEY_START: i32 = 0
export const ENTRY_KEY_END: i32 = 1
export const ENTRY_VALUE_START: i32 = 2
export const ENTRY_VALUE_END: i32 = 3
export const ENTRY_FLAGS: i32 = 4
export const ENTRY_DEPTH: i32 = 5
export const ENTRY_CHILDREN: i32 = 6
export const ENTRY_FIRST_ROW: i32 = 7
export const ENTRY_ROWS: i32 = 8
export const ENTRY_ROW_LENGTH: i32 = 9
// The key holds an escape; the array is not a regular nest of arrays (mixed depths, objects, strings).
export const FLAG_ESCAPED_KEY: i32 = 1
export const FLAG_IRREGULAR: i32 = 2
// What jsonIndex returns besides ALL_ROWS_VALID: a body it does not take (malformed, or not an
// object of fields), or more rows than IX_MAX_ROWS (IX_ROW_COUNT then says how many).
export const INDEX_UNSUPPORTED: i32 = 0
export const INDEX_TOO_MANY_ROWS: i32 = 1

// A number-rows call (numberRows): rows of a nested JSON array of numbers, each `count` long,
// parsed into float32 or int32. Every byte of the value is checked, brackets and commas included.
export const NR_TEXT: i32 = 0
export const NR_ROW_STARTS: i32 = 4
export const NR_OUT: i32 = 8
export const NR_UNDECIDED: i32 = 12 // u8 a row: 1 where a number needs an exact reading
export const NR_COUNT: i32 = 16
export const NR_KIND: i32 = 20
export const NR_ROWS: i32 = 24
export const NR_GROUP: i32 = 28 // rows in each second-level array (depth 3); 0 otherwise
export const NR_DEPTH: i32 = 32 // 1: [..]; 2: [[..],..]; 3: [[[..],..],..]
export const NR_VALUE_START: i32 = 36
export const NR_VALUE_END: i32 = 40
export const NR_BYTES: i32 = 44
export const NUMBER_F32: i32 = 0
export const NUMBER_I32: i32 = 1

// A print-rows call (printRows): rows of numbers printed as JSON text. Each task writes its
// rows one after another from OUT + rowStart·STRIDE, and each row's [start, end) (offsets from
// OUT, u32 pairs) into SPANS. A row's text is [x,…] and the separator after it: "," or "],[".
export const PR_VALUES: i32 = 0
export const PR_COUNT: i32 = 4
export const PR_ROWS: i32 = 8
export const PR_GROUP: i32 = 12
export const PR_OUT: i32 = 16
export const PR_STRIDE: i32 = 20
export const PR_SPANS: i32 = 24
export const PR_KIND: i32 = 28 // the kernel prints PRINT_F32; the worker prints the others
export const PR_BYTES: i32 = 32
export const PRINT_F32: i32 = 0
export const PRINT_F64: i32 = 1
export const PRINT_I32: i32 = 2

// A copy call (copyBlocks): LENGTH bytes from SRC to DST, COPY_BLOCK_BYTES a row (the last row
// shorter). memory.copy moves them at memcpy's speed whatever the two addresses are.
export const CB_DST: i32 = 0
export const CB_SRC: i32 = 4
export const CB_LENGTH: i32 = 8
export const CB_BYTES: i32 = 12
export const COPY_BLOCK_BYTES: i32 = 1 << 20
