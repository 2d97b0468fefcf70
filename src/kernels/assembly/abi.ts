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
