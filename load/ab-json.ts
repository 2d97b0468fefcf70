/**
 * Two kernel builds' JSON kernels timed in turn on the same texts, one thread: numberRows on
 * logits as JavaScript writes them, the same as Python's json.dumps writes them (", " between
 * numbers), and softmax probabilities (soft targets: zeros after "0.", exponents); printRows on
 * gradients. Each round times both builds, in alternating order, and the ratio of the second to
 * the first is taken round by round, so that the machine's slower and faster phases cancel out.
 *
 *   npx tsx load/ab-json.ts before.wasm after.wasm [--rows 256 --count 1024 --rounds 31]
 *
 * Each build gets memory of its own (the module's constant tables live in it).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  ALL_ROWS_VALID,
  NUMBER_KIND,
  NUMBER_ROWS_CALL,
  PRINT_KIND,
  PRINT_ROWS_CALL,
  writeCall
} from '../src/engine/abi.js'
import { instantiateKernels, type RowsEntry } from '../src/engine/kernels.js'
import { KernelArena } from '../src/engine/memory.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rows: { type: 'string', default: '256' },
    count: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '31' }
  }
})
if (positionals.length !== 2) throw new Error('usage: npx tsx load/ab-json.ts before.wasm after.wasm')
const rows = Number(values.rows)
const count = Number(values.count)
const rounds = Number(values.rounds)

let seed = 12345
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const logitRows = Array.from({ length: rows }, () => Array.from({ length: count }, () => random() * 16 - 8))
const probabilityRows = logitRows.map((row) => {
  const max = Math.max(...row)
  const exps = row.map((x) => Math.exp(x - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map((e) => e / sum)
})
const texts = {
  'logits, JSON.stringify': JSON.stringify(logitRows),
  'logits, json.dumps (", ")': JSON.stringify(logitRows).replaceAll(',', ', '),
  'probabilities, JSON.stringify': JSON.stringify(probabilityRows)
}
// Gradients of a mean over 32 rows, as the answer prints them: both 0.000ddd and d.ddde-x.
const gradients = Float32Array.from(probabilityRows.flat(), (p, i) => p / 32 - (i % count === 7 ? 1 / 32 : 0))

interface Build {
  read: Array<() => void>
  print: () => void
}

function load(file: string): Build {
  const textBytes = Object.values(texts).reduce((most, text) => Math.max(most, text.length), 0)
  const megabytes = Math.ceil((3 * textBytes + rows * count * 40) / 2 ** 20) + 16
  const arena = new KernelArena(megabytes)
  const memory = arena.group()
  const kernels = instantiateKernels(arena.memory, new WebAssembly.Module(readFileSync(file))).kernels
  const timed = (entry: RowsEntry, call: number) => () => {
    const verdict = entry(call, 0, rows, 0)
    if (verdict !== ALL_ROWS_VALID) throw new Error(`${file}: row ${verdict} was refused`)
  }
  const read = Object.values(texts).map((text) => {
    const bytes = Buffer.from(text)
    const at = memory.bytes(bytes.length + 64)
    at.set(bytes)
    const starts = memory.int32(rows)
    let row = 0
    for (let i = 1; i < bytes.length; i++) if (bytes[i] === 0x5b) starts[row++] = i
    const call = memory.bytes(NUMBER_ROWS_CALL.bytes).byteOffset
    writeCall(arena.buffer, call, NUMBER_ROWS_CALL, {
      text: at.byteOffset,
      rowStarts: starts.byteOffset,
      out: memory.float32(rows * count).byteOffset,
      undecided: memory.bytes(rows).byteOffset,
      count,
      kind: NUMBER_KIND.F32,
      rows,
      group: 0,
      depth: 2,
      valueStart: 0,
      valueEnd: bytes.length
    })
    return timed(kernels.numberRows, call)
  })
  const values = memory.float32(gradients.length)
  values.set(gradients)
  const stride = count * 24 + 8
  const call = memory.bytes(PRINT_ROWS_CALL.bytes).byteOffset
  writeCall(arena.buffer, call, PRINT_ROWS_CALL, {
    values: values.byteOffset,
    count,
    rows,
    group: 0,
    out: memory.bytes(rows * stride).byteOffset,
    stride,
    spans: memory.int32(2 * rows).byteOffset,
    kind: PRINT_KIND.F32
  })
  return { read, print: timed(kernels.printRows, call) }
}

const builds = positionals.map(load)
/** Nanoseconds a number. */
const time = (run: () => void) => {
  const start = process.hrtime.bigint()
  run()
  return Number(process.hrtime.bigint() - start) / (rows * count)
}
const cases = [...Object.keys(texts).map((name) => `read ${name}`), 'print gradients']
const runOf = (build: Build, index: number) => (index < build.read.length ? build.read[index] : build.print)
const median = (list: number[]) => [...list].sort((a, b) => a - b)[list.length >> 1]
const quartiles = (list: number[]) => {
  const sorted = [...list].sort((a, b) => a - b)
  return [sorted[Math.floor(list.length / 4)], sorted[Math.floor((3 * list.length) / 4)]]
}
for (const [index, name] of cases.entries()) {
  const ns: number[][] = [[], []]
  const ratios: number[] = []
  for (let round = 0; round < rounds + 2; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    const took = [0, 0]
    for (const which of order) took[which] = time(runOf(builds[which], index))
    if (round < 2) continue
    ns[0].push(took[0])
    ns[1].push(took[1])
    ratios.push(took[1] / took[0])
  }
  const [low, high] = quartiles(ratios)
  console.log(
    `${name}: ${median(ns[0]).toFixed(1)} → ${median(ns[1]).toFixed(1)} ns a number; after ÷ before ${median(ratios).toFixed(3)} (quartiles ${low.toFixed(3)}–${high.toFixed(3)}, ${rounds} rounds)`
  )
}
