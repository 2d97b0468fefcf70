import { bf16ToFloat, f16ToFloat } from '../../src/kernels/half.js'

/**
 * Selective log-softmax for RL fine-tuning (PPO, GRPO), in plain TypeScript over typed arrays:
 * per row, the logits are soft-capped (c·tanh(x/c), Gemma 2's, applied first because it belongs
 * to the model), then divided by the temperature; then log p[target], the top k log-probabilities
 * and the entropy. One row at a time goes through a float64 scratch row, never the whole tensor;
 * sums are in float64, so F16 and BF16 logits lose nothing beyond their own rounding.
 */
export interface LogprobsParams {
  vocab: number
  /** 0 for F32, 1 for F16, 2 for BF16, as the WebAssembly kernel numbers them. */
  logitsDtype: number
  /** 0 for none. */
  softcap: number
  temperature: number
  /** Targets equal to it get 0 (padding). */
  ignoreIndex: number
  /** 0 for no top-k output. */
  topK: number
}

export interface LogprobsOutputs {
  targetLogprobs: Float64Array | null
  topIds: Int32Array | null
  topLogprobs: Float64Array | null
  entropy: Float64Array | null
}

/** What logprobRows returns when every row was valid; otherwise the first invalid row. */
export const LOGPROB_ROWS_VALID = -1

/**
 * Rows [rowStart, rowEnd). Returns LOGPROB_ROWS_VALID, or the first row holding NaN or +Inf,
 * −Inf everywhere, or −Inf at its target.
 */
export function logprobRows(
  logits: Float32Array | Uint16Array,
  targets: Int32Array | null,
  params: LogprobsParams,
  rowStart: number,
  rowEnd: number,
  out: LogprobsOutputs
): number {
  const { vocab, softcap, temperature, topK } = params
  const decode = params.logitsDtype === 1 ? f16ToFloat : params.logitsDtype === 2 ? bf16ToFloat : null
  const scaled = new Float64Array(vocab)
  const heapValues = new Float64Array(topK)
  const heapIds = new Int32Array(topK)
  for (let row = rowStart; row < rowEnd; row++) {
    const base = row * vocab
    let max = Number.NEGATIVE_INFINITY
    for (let c = 0; c < vocab; c++) {
      const raw = decode === null ? logits[base + c] : decode(logits[base + c])
      if (Number.isNaN(raw) || raw === Number.POSITIVE_INFINITY) return row
      // tanh(−Inf) is −1: a masked logit would come back as −c. It stays masked.
      const capped = softcap > 0 && raw !== Number.NEGATIVE_INFINITY ? softcap * Math.tanh(raw / softcap) : raw
      const x = capped / temperature
      scaled[c] = x
      if (x > max) max = x
    }
    if (max === Number.NEGATIVE_INFINITY) return row
    let sumExp = 0
    let shiftedSum = 0
    for (let c = 0; c < vocab; c++) {
      const e = Math.exp(scaled[c] - max)
      sumExp += e
      if (e > 0) shiftedSum += e * (scaled[c] - max)
    }
    // log p = (x − max) − log Σ, never x − (max + log Σ), which loses log Σ beside a large max.
    const logSum = Math.log(sumExp)
    if (out.targetLogprobs !== null && targets !== null) {
      const target = targets[row]
      if (target === params.ignoreIndex) out.targetLogprobs[row] = 0
      else {
        if (scaled[target] === Number.NEGATIVE_INFINITY) return row
        out.targetLogprobs[row] = scaled[target] - max - logSum
      }
    }
    if (out.entropy !== null) out.entropy[row] = logSum - shiftedSum / sumExp
    if (out.topIds !== null && out.topLogprobs !== null) {
      selectTopK(scaled, topK, heapValues, heapIds)
      for (let k = 0; k < topK; k++) {
        out.topIds[row * topK + k] = heapIds[k]
        out.topLogprobs[row * topK + k] = heapValues[k] - max - logSum
      }
    }
  }
  return LOGPROB_ROWS_VALID
}

/** a ranks above b: larger value, or the lower id on a tie. */
function ranksAbove(valueA: number, idA: number, valueB: number, idB: number): boolean {
  return valueA > valueB || (valueA === valueB && idA < idB)
}

/**
 * The k largest values of `row` with their ids, sorted descending (lower id first on ties), into
 * values/ids: a size-k min-heap over one pass (O(V log k)), then sorted. k ≤ V.
 */
export function selectTopK(row: Float64Array, k: number, values: Float64Array, ids: Int32Array): void {
  let size = 0
  const siftDown = (from: number) => {
    let i = from
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let lowest = i
      if (left < size && ranksAbove(values[lowest], ids[lowest], values[left], ids[left])) lowest = left
      if (right < size && ranksAbove(values[lowest], ids[lowest], values[right], ids[right])) lowest = right
      if (lowest === i) return
      const value = values[i]
      const id = ids[i]
      values[i] = values[lowest]
      ids[i] = ids[lowest]
      values[lowest] = value
      ids[lowest] = id
      i = lowest
    }
  }
  for (let c = 0; c < row.length; c++) {
    const x = row[c]
    if (size < k) {
      // Sift up.
      let i = size++
      values[i] = x
      ids[i] = c
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (!ranksAbove(values[parent], ids[parent], values[i], ids[i])) break
        const value = values[i]
        const id = ids[i]
        values[i] = values[parent]
        ids[i] = ids[parent]
        values[parent] = value
        ids[parent] = id
        i = parent
      }
    } else if (ranksAbove(x, c, values[0], ids[0])) {
      values[0] = x
      ids[0] = c
      siftDown(0)
    }
  }
  // Heap → descending order: repeatedly move the lowest to the end.
  for (let end = size - 1; end > 0; end--) {
    const value = values[0]
    const id = ids[0]
    values[0] = values[end]
    ids[0] = ids[end]
    values[end] = value
    ids[end] = id
    size = end
    siftDown(0)
  }
}
