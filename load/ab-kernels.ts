/**
 * Two kernel builds, forward + gradient, timed in turn on the same logits, one thread: for
 * checking that a kernel change costs nothing where it should not. Both builds must speak the
 * ABI of src/engine/abi.ts.
 *
 *   npx tsx load/ab-kernels.ts before.wasm after.wasm [--rows 2048 --vocab 32000 --rounds 15]
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ALL_ROWS_VALID, CROSS_ENTROPY_CALL, writeCall } from '../src/engine/abi.js'
import { instantiateKernels } from '../src/engine/kernels.js'
import { KernelArena } from '../src/engine/memory.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rows: { type: 'string', default: '2048' },
    vocab: { type: 'string', default: '32000' },
    rounds: { type: 'string', default: '15' }
  }
})
const rows = Number(values.rows)
const vocab = Number(values.vocab)
const elements = rows * vocab
const arena = new KernelArena(Math.ceil((elements * 8 + rows * 48) / 2 ** 20) + 16)
const memory = arena.group()
const logits = memory.float32(elements)
const targets = memory.int32(rows)
const tokenLoss = memory.float64(rows)
const nll = memory.float64(rows)
const gradients = memory.float32(elements)
let seed = 12345
for (let i = 0; i < elements; i++) {
  seed = (seed * 1103515245 + 12345) % 2147483648
  logits[i] = (seed / 2147483648) * 16 - 8
}
for (let r = 0; r < rows; r++) targets[r] = (r * 7919) % vocab

/** A whole-batch call struct, mean reduction, with or without the gradient. */
function call(withGradients: boolean): number {
  const address = memory.bytes(CROSS_ENTROPY_CALL.bytes).byteOffset
  writeCall(arena.buffer, address, CROSS_ENTROPY_CALL, {
    logits: logits.byteOffset,
    dtype: 0,
    targets: targets.byteOffset,
    vocab,
    ignoreIndex: -100,
    weight: 0,
    tokenLoss: tokenLoss.byteOffset,
    nll: nll.byteOffset,
    gradients: withGradients ? gradients.byteOffset : 0,
    stats: 0,
    softTargets: 0,
    labelSmoothing: 0,
    classWeightSum: vocab,
    gradScale: 1 / rows,
    zGrad: 0,
    softcap: 0
  })
  return address
}
const calls = { forward: call(false), forwardBackward: call(true) }

const kernels = positionals.map(
  (file) => instantiateKernels(arena.memory, new WebAssembly.Module(readFileSync(file))).kernels.hardTargetRows
)
function rate(kernel: (typeof kernels)[number], address: number): number {
  const start = process.hrtime.bigint()
  const verdict = kernel(address, 0, rows, 0)
  if (verdict !== ALL_ROWS_VALID) throw new Error(`row ${verdict} was invalid`)
  return elements / (Number(process.hrtime.bigint() - start) / 1e3)
}
const runs = kernels.map(() => ({ forward: [] as number[], forwardBackward: [] as number[] }))
for (let round = 0; round < Number(values.rounds) + 2; round++) {
  for (const [i, kernel] of kernels.entries()) {
    const forward = rate(kernel, calls.forward)
    const forwardBackward = rate(kernel, calls.forwardBackward)
    if (round >= 2) {
      runs[i].forward.push(forward)
      runs[i].forwardBackward.push(forwardBackward)
    }
  }
}
const median = (list: number[]) => list.sort((a, b) => a - b)[list.length >> 1].toFixed(0)
for (const [i, file] of positionals.entries()) {
  console.log(
    `${file}: forward ${median(runs[i].forward)}, forward+gradient ${median(runs[i].forwardBackward)} M elements/s`
  )
}
