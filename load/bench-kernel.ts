/**
 * The fused kernel on one thread, against the memory floor, in one run:
 *
 *   npm run bench:kernel -- --rows 2048 --vocab 32000 [--dtype F32|F16|BF16] [--repeats 7]
 *
 * It times the WebAssembly kernel forward only and forward+gradient over (rows × vocab) logits,
 * and Float32Array.prototype.set over the same bytes (a memcpy: the memory floor). When a Python
 * with PyTorch is found (XENT_TORCH_PYTHON, python3 or /usr/bin/python3), PyTorch's own CPU
 * cross-entropy on one thread (load/torch_floor.py) is the second floor, timed in turn with the
 * kernel in the same run. Each figure is the median of --repeats runs after warm-up, the runs of
 * each being interleaved with the others'. The last line is one JSON object.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { floatToBf16, floatToF16 } from '../src/codec/half.js'
import { ALL_ROWS_VALID, instantiateKernel, LOGITS_DTYPE, type LogitsDtype } from '../src/kernel/wasm.js'
import { KernelArena } from '../src/pool/arena.js'
import { wholeBatchCall } from './kernel-call.js'

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
  const verdict = kernel(
    wholeBatchCall({
      logits: logitsAddress,
      logitsDtype: LOGITS_DTYPE[dtype],
      targets: targets.byteOffset,
      rows,
      vocab,
      tokenLoss: tokenLoss.byteOffset,
      nll: nll.byteOffset,
      gradients: withGradients ? gradients.byteOffset : 0
    })
  )
  if (verdict !== ALL_ROWS_VALID) throw new Error(`row ${verdict} was invalid`)
}

/** PyTorch's cross-entropy in a Python process of its own, one timed run per request. */
interface TorchFloor {
  version: string
  timeMs: (kind: 'forward' | 'forward_backward') => Promise<number>
  close: () => void
}

async function startTorchFloor(): Promise<TorchFloor | undefined> {
  const candidates = [process.env.XENT_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (python): python is string => python !== undefined && python !== ''
  )
  const python = candidates.find((candidate) => spawnSync(candidate, ['-c', 'import torch']).status === 0)
  if (python === undefined) return undefined
  const script = fileURLToPath(new URL('torch_floor.py', import.meta.url))
  const child: ChildProcessWithoutNullStreams = spawn(python, [script, String(rows), String(vocab)])
  child.stderr.pipe(process.stderr)
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const nextLine = async () => {
    const { value, done } = await lines.next()
    if (done === true) throw new Error('the PyTorch floor process ended early')
    return value
  }
  const ready = await nextLine()
  return {
    version: ready.replace(/^ready torch /, ''),
    timeMs: async (kind) => {
      child.stdin.write(`${kind}\n`)
      return Number(await nextLine())
    },
    close: () => {
      child.stdin.end()
      void once(child, 'exit')
    }
  }
}

const torch = dtype === 'F32' ? await startTorchFloor() : undefined

/** Each measurement, run in turn with the others so that a slow spell of the machine hits all alike. */
type Measure = () => number | Promise<number>
const timed =
  (run: () => void): Measure =>
  () => {
    const start = process.hrtime.bigint()
    run()
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
const measured = await medians({
  memcpy: timed(() => destination.set(source)),
  forward: timed(() => call(false)),
  forwardBackward: timed(() => call(true)),
  ...(torch && {
    torchForward: () => torch.timeMs('forward'),
    torchForwardBackward: () => torch.timeMs('forward_backward')
  })
})
torch?.close()
const { memcpy: memcpyMs, forward: forwardMs, forwardBackward: forwardBackwardMs } = measured

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
if (torch === undefined) {
  console.log(
    dtype === 'F32'
      ? 'PyTorch floor      skipped: no python3 with torch found (set XENT_TORCH_PYTHON)'
      : 'PyTorch floor      F32 only'
  )
} else {
  const { torchForward, torchForwardBackward } = measured
  console.log(
    `PyTorch ${torch.version} F.cross_entropy, one thread: forward ${torchForward.toFixed(1)} ms ` +
      `(${rate(torchForward)} M elements/s), forward+backward ${torchForwardBackward.toFixed(1)} ms ` +
      `(${rate(torchForwardBackward)} M elements/s)`
  )
  console.log(
    `kernel / PyTorch   forward ${(torchForward / forwardMs).toFixed(2)}x, ` +
      `forward+gradient ${(torchForwardBackward / forwardBackwardMs).toFixed(2)}x`
  )
}
// The last line: exactly these fields, for scripts that read it.
console.log(JSON.stringify(result))
