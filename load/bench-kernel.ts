/**
 * The fused kernel on one thread, against the memory floor, in one run:
 *
 *   npm run bench:kernel -- --rows 2048 --vocab 32000 [--dtype F32|F16|BF16] [--repeats 7]
 *
 * It times the WebAssembly kernel forward only and forward+gradient over (rows × vocab) logits,
 * and Float32Array.prototype.set over the same bytes (a memcpy: the memory floor). Each figure
 * is the median of --repeats runs after warm-up. The last line is one JSON object.
 */
import { parseArgs } from 'node:util'
import { floatToBf16, floatToF16 } from '../src/codec/half.js'
import { ALL_ROWS_VALID, instantiateKernel, LOGITS_DTYPE, type LogitsDtype } from '../src/kernel/wasm.js'
import { KernelArena } from '../src/pool/arena.js'

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '2048' },
    vocab: { type: 'string', default: '32000' },
    dtype: { type: 'string', default: 'F32' },
    repeats: { type: 'string', default: '7' }
  }
})
const rows = Number(values.rows)
const vocab = Number(values.vocab)
const dtype = values.dtype as LogitsDtype
const repeats = Number(values.repeats)
const elements = rows * vocab
const bytesPerLogit = dtype === 'F32' ? 4 : 2

const arena = new KernelArena(Math.ceil((elements * (bytesPerLogit + 4) + rows * 24) / 2 ** 20) + 16)
const memory = arena.group()
const logitsAddress = memory.bytes(elements * bytesPerLogit).byteOffset
const targets = memory.int32(rows)
const tokenLoss = memory.float64(rows)
const nll = memory.float64(rows)
const gradients = memory.float32(elements)

// Deterministic logits in [−8, 8): the spread of a trained language model's scores.
let seed = 12345
const next = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return (seed / 2147483648) * 16 - 8
}
if (dtype === 'F32') {
  const logits = new Float32Array(arena.buffer, logitsAddress, elements)
  for (let i = 0; i < elements; i++) logits[i] = next()
} else {
  const halves = new Uint16Array(arena.buffer, logitsAddress, elements)
  const encode = dtype === 'F16' ? floatToF16 : floatToBf16
  for (let i = 0; i < elements; i++) halves[i] = encode(next())
}
for (let r = 0; r < rows; r++) targets[r] = (r * 7919) % vocab

const kernel = instantiateKernel(arena.memory)
const call = (withGradients: boolean) => {
  const verdict = kernel({
    logits: logitsAddress,
    logitsDtype: LOGITS_DTYPE[dtype],
    targets: targets.byteOffset,
    rowStart: 0,
    rowEnd: rows,
    vocab,
    ignoreIndex: -100,
    labelSmoothing: 0,
    weight: 0,
    classWeightSum: vocab,
    gradScale: 1 / rows,
    tokenLoss: tokenLoss.byteOffset,
    nll: nll.byteOffset,
    gradients: withGradients ? gradients.byteOffset : 0
  })
  if (verdict !== ALL_ROWS_VALID) throw new Error(`row ${verdict} was invalid`)
}

function medianMs(run: () => void): number {
  for (let i = 0; i < 3; i++) run()
  const times: number[] = []
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint()
    run()
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

// The floor: copying the logits' bytes once (as float32 words when they are F32).
const source = new Float32Array(arena.buffer, logitsAddress, (elements * bytesPerLogit) / 4)
const destination = new Float32Array(source.length)
const memcpyMs = medianMs(() => destination.set(source))
const forwardMs = medianMs(() => call(false))
const forwardBackwardMs = medianMs(() => call(true))

const rate = (ms: number) => Math.round(elements / ms / 1e3)
const result = {
  rows,
  vocab,
  forward_melem_s: rate(forwardMs),
  forward_backward_melem_s: rate(forwardBackwardMs),
  memcpy_melem_s: rate(memcpyMs)
}
const ofFloor = (ms: number) => (memcpyMs / ms).toFixed(3)
console.log(`${dtype} logits, one thread, median of ${repeats}`)
console.log(
  `forward            ${forwardMs.toFixed(1)} ms  ${result.forward_melem_s} M elements/s  (${ofFloor(forwardMs)} of memcpy)`
)
console.log(
  `forward+gradient   ${forwardBackwardMs.toFixed(1)} ms  ${result.forward_backward_melem_s} M elements/s  (${ofFloor(forwardBackwardMs)} of memcpy)`
)
console.log(`memcpy (floor)     ${memcpyMs.toFixed(1)} ms  ${result.memcpy_melem_s} M elements/s`)
// The last line: exactly these fields, for scripts that read it.
console.log(JSON.stringify(result))
