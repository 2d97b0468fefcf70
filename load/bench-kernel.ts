/**
 * The kernel family on one thread, against the memory floor, in one run:
 *
 *   npm run bench:kernel -- --rows 2048 --vocab 32000 [--dtype F32|F16|BF16] [--repeats 7]
 *
 * It times, over the same (rows × vocab) logits: the cross-entropy forward pass and forward +
 * gradient; the forward pass with a softcap of 30 (Gemma 2's), with soft targets (a dense
 * distribution per row) instead of class indices, and /v1/logprobs' kernel (target log-probs,
 * top-8 and entropy together); and Float32Array.prototype.set over the logits' bytes (a memcpy:
 * the memory floor). When a Python with PyTorch is found (XENT_TORCH_PYTHON, python3 or
 * /usr/bin/python3), PyTorch on one thread (load/torch_floor.py) does the same work, timed in turn
 * with the kernel. Each figure is the median of --repeats runs after warm-up, the runs of each
 * interleaved with the others'. The last line is one JSON object.
 */
import { parseArgs } from 'node:util'
import {
  ALL_ROWS_VALID,
  CROSS_ENTROPY_CALL,
  type CrossEntropyCall,
  LOGITS_DTYPE,
  LOGPROBS_CALL,
  type LogitsDtype,
  writeCall
} from '../src/engine/abi.js'
import { instantiateKernels } from '../src/engine/kernels.js'
import { KernelArena } from '../src/engine/memory.js'
import { floatToBf16, floatToF16 } from '../src/kernels/half.js'
import { startTorchFloor, type TorchKind } from './torch-floor.js'

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
const SOFTCAP = 30
const TOP_K = 8

const arena = new KernelArena(Math.ceil((elements * (bytesPerLogit + 8) + rows * (64 + TOP_K * 12)) / 2 ** 20) + 16)
const memory = arena.group()
const logitsAddress = memory.bytes(elements * bytesPerLogit).byteOffset
const targets = memory.int32(rows)
const tokenLoss = memory.float64(rows)
const nll = memory.float64(rows)
const gradients = memory.float32(elements)
const softTargets = memory.float32(elements)
const targetLogprobs = memory.float64(rows)
const topIds = memory.int32(rows * TOP_K)
const topLogprobs = memory.float64(rows * TOP_K)
const entropy = memory.float64(rows)

// Deterministic logits in [−8, 8): the spread of a trained language model's scores.
let seed = 12345
const next = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
if (dtype === 'F32') {
  const logits = new Float32Array(arena.buffer, logitsAddress, elements)
  for (let i = 0; i < elements; i++) logits[i] = next() * 16 - 8
} else {
  const halves = new Uint16Array(arena.buffer, logitsAddress, elements)
  const encode = dtype === 'F16' ? floatToF16 : floatToBf16
  for (let i = 0; i < elements; i++) halves[i] = encode(next() * 16 - 8)
}
for (let r = 0; r < rows; r++) targets[r] = (r * 7919) % vocab
// Soft targets: a dense distribution per row, as a teacher's in distillation.
for (let r = 0; r < rows; r++) {
  let sum = 0
  for (let c = 0; c < vocab; c++) {
    softTargets[r * vocab + c] = next()
    sum += softTargets[r * vocab + c]
  }
  for (let c = 0; c < vocab; c++) softTargets[r * vocab + c] /= sum
}

const { kernels } = instantiateKernels(arena.memory)
/** A cross-entropy call struct over the whole batch, mean reduction. */
function crossEntropyCall(options: Partial<CrossEntropyCall>): number {
  const call = memory.bytes(CROSS_ENTROPY_CALL.bytes).byteOffset
  writeCall(arena.buffer, call, CROSS_ENTROPY_CALL, {
    logits: logitsAddress,
    dtype: LOGITS_DTYPE[dtype],
    targets: targets.byteOffset,
    vocab,
    ignoreIndex: -100,
    weight: 0,
    tokenLoss: tokenLoss.byteOffset,
    nll: nll.byteOffset,
    gradients: 0,
    stats: 0,
    softTargets: 0,
    labelSmoothing: 0,
    classWeightSum: vocab,
    gradScale: 1 / rows,
    zGrad: 0,
    softcap: 0,
    ...options
  })
  return call
}
const logprobsCall = memory.bytes(LOGPROBS_CALL.bytes).byteOffset
writeCall(arena.buffer, logprobsCall, LOGPROBS_CALL, {
  logits: logitsAddress,
  dtype: LOGITS_DTYPE[dtype],
  targets: targets.byteOffset,
  vocab,
  ignoreIndex: -100,
  topK: TOP_K,
  targetLogprobs: targetLogprobs.byteOffset,
  topIds: topIds.byteOffset,
  topLogprobs: topLogprobs.byteOffset,
  entropy: entropy.byteOffset,
  softcap: 0,
  temperature: 1
})
const calls = {
  forward: crossEntropyCall({}),
  forwardBackward: crossEntropyCall({ gradients: gradients.byteOffset }),
  softcap: crossEntropyCall({ softcap: SOFTCAP }),
  softTargets: crossEntropyCall({ softTargets: softTargets.byteOffset })
}
const run = (entry: keyof typeof kernels, call: number) => {
  const verdict = kernels[entry](call, 0, rows, 0)
  if (verdict !== ALL_ROWS_VALID) throw new Error(`${entry}: row ${verdict} was invalid`)
}

const torch = dtype === 'F32' ? await startTorchFloor(rows, vocab) : undefined

/** Each measurement, run in turn with the others so that a slow spell of the machine hits all alike. */
type Measure = () => number | Promise<number>
const timed =
  (work: () => void): Measure =>
  () => {
    const start = process.hrtime.bigint()
    work()
    return Number(process.hrtime.bigint() - start) / 1e6
  }
async function medians(measures: Record<string, Measure>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(measures).map((name) => [name, []]))
  for (let round = 0; round < repeats + 3; round++) {
    for (const [name, measure] of Object.entries(measures)) {
      const ms = await measure()
      if (round >= 3) times[name].push(ms)
    }
  }
  const median = (list: number[]) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]
  return Object.fromEntries(Object.entries(times).map(([name, list]) => [name, median(list)]))
}

// The floor: copying the logits' bytes once (as float32 words when they are F32).
const source = new Float32Array(arena.buffer, logitsAddress, (elements * bytesPerLogit) / 4)
const destination = new Float32Array(source.length)
const torchKinds: Record<string, TorchKind> = {
  forward: 'forward',
  forwardBackward: 'forward_backward',
  softcap: 'softcap',
  softTargets: 'soft_targets',
  logprobs: 'logprobs'
}
const measured = await medians({
  memcpy: timed(() => destination.set(source)),
  forward: timed(() => run('hardTargetRows', calls.forward)),
  forwardBackward: timed(() => run('hardTargetRows', calls.forwardBackward)),
  softcap: timed(() => run('hardTargetRows', calls.softcap)),
  softTargets: timed(() => run('softTargetRows', calls.softTargets)),
  logprobs: timed(() => run('logprobRows', logprobsCall)),
  ...(torch &&
    Object.fromEntries(Object.entries(torchKinds).map(([name, kind]) => [`torch:${name}`, () => torch.timeMs(kind)])))
})
torch?.close()

const rate = (ms: number) => Math.round(elements / ms / 1e3)
const result = {
  rows,
  vocab,
  forward_melem_s: rate(measured.forward),
  forward_backward_melem_s: rate(measured.forwardBackward),
  memcpy_melem_s: rate(measured.memcpy),
  softcap_melem_s: rate(measured.softcap),
  soft_targets_melem_s: rate(measured.softTargets),
  logprobs_melem_s: rate(measured.logprobs)
}
const lines: Array<[string, number]> = [
  ['forward', measured.forward],
  ['forward+gradient', measured.forwardBackward],
  [`softcap ${SOFTCAP}`, measured.softcap],
  ['soft targets', measured.softTargets],
  [`logprobs (top-${TOP_K}, entropy, targets)`, measured.logprobs]
]
console.log(`${dtype} logits, ${rows} × ${vocab}, one thread, median of ${repeats}`)
for (const [name, ms] of lines) {
  console.log(
    `${name.padEnd(36)} ${ms.toFixed(1).padStart(7)} ms  ${String(rate(ms)).padStart(5)} M elements/s  ` +
      `${(measured.forward / ms).toFixed(2)}× forward  ${(measured.memcpy / ms).toFixed(2)} of memcpy`
  )
}
console.log(
  `${'memcpy (floor)'.padEnd(36)} ${measured.memcpy.toFixed(1).padStart(7)} ms  ${result.memcpy_melem_s} M elements/s`
)
if (torch === undefined) {
  console.log(
    dtype === 'F32'
      ? 'PyTorch            skipped: no python3 with torch found (set XENT_TORCH_PYTHON)'
      : 'PyTorch            F32 only'
  )
} else {
  console.log(`PyTorch ${torch.version} on one thread, the same work, and the kernel's ratio to it:`)
  for (const [name] of Object.entries(torchKinds)) {
    const torchMs = measured[`torch:${name}`]
    console.log(
      `  ${name.padEnd(16)} ${torchMs.toFixed(1).padStart(7)} ms  kernel ${(torchMs / measured[name]).toFixed(2)}×`
    )
  }
}
// The last line: exactly these fields, for scripts that read it.
console.log(JSON.stringify(result))
