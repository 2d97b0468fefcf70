#!/usr/bin/env node
// The WebAssembly kernel is built from src/kernels/assembly by AssemblyScript's asc, and the result
// is committed as wasm/kernels.wasm, beside wasm/kernels.json: the SHA-256 of everything the build
// reads (the kernel sources, asc's and Binaryen's versions, the flags) and of the wasm it gave.
// So a fresh clone starts without a compiler run, and nothing is rebuilt when its inputs have not
// changed.
//
//   node scripts/build-wasm.mjs           rebuild only if the inputs changed; copy into dist/wasm/
//   node scripts/build-wasm.mjs --force   rebuild whatever the record says
//   node scripts/build-wasm.mjs --check   rebuild into a temporary folder and fail unless the bytes
//                                         and the record equal the committed ones (the tests run it)
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const SOURCES = 'src/kernels/assembly'
const ENTRY = `${SOURCES}/index.ts`
const WASM = 'wasm/kernels.wasm'
const RECORD = 'wasm/kernels.json'
const DIST_COPY = 'dist/wasm/kernels.wasm'
const FLAGS = [
  '-O3',
  '--runtime',
  'stub',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory',
  '1',
  '--maximumMemory',
  '65536',
  '--enable',
  'simd',
  '--enable',
  'threads',
  '--noAssert'
]

const require = createRequire(import.meta.url)
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

function files(dir) {
  return readdirSync(join(root, dir), { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)]))
    .sort()
}

/** What the build reads, and its hash: a change to any of it means a rebuild. */
function inputs() {
  const versions = {
    assemblyscript: require('assemblyscript/package.json').version,
    binaryen: require('binaryen/package.json').version
  }
  const hash = createHash('sha256')
  hash.update(JSON.stringify({ versions, flags: FLAGS, entry: ENTRY }))
  for (const file of files(SOURCES)) hash.update(`\n${file}\n`).update(readFileSync(join(root, file)))
  return { ...versions, flags: FLAGS, sources: files(SOURCES), inputs: hash.digest('hex') }
}

function compile(outFile) {
  const asc = join(root, 'node_modules/.bin/asc')
  execFileSync(asc, [ENTRY, '-o', outFile, ...FLAGS], { cwd: root, stdio: 'inherit' })
  return readFileSync(outFile)
}

function readRecord() {
  try {
    return JSON.parse(readFileSync(join(root, RECORD), 'utf8'))
  } catch {
    return null
  }
}

function readWasm() {
  try {
    return readFileSync(join(root, WASM))
  } catch {
    return null
  }
}

function copyIntoDist() {
  mkdirSync(join(root, 'dist/wasm'), { recursive: true })
  copyFileSync(join(root, WASM), join(root, DIST_COPY))
}

function check(wanted) {
  const committed = readWasm()
  const record = readRecord()
  const problems = []
  if (committed === null) problems.push(`${WASM} is missing`)
  if (record?.inputs !== wanted.inputs) {
    problems.push(`${RECORD} was made from other inputs than today's (${SOURCES}, the compiler or the flags)`)
  }
  const dir = mkdtempSync(join(tmpdir(), 'xent-wasm-'))
  try {
    const rebuilt = compile(join(dir, 'kernels.wasm'))
    if (committed !== null && !rebuilt.equals(committed)) {
      problems.push(`rebuilding ${SOURCES} gives other bytes than the committed ${WASM}`)
    }
    if (record?.wasm !== sha256(rebuilt)) problems.push(`${RECORD} records another wasm than the rebuild gives`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (problems.length > 0) {
    console.error(`${problems.join('\n')}\nrun \`npm run build:wasm\` and commit ${WASM} and ${RECORD}`)
    process.exit(1)
  }
  console.log(`${WASM} is what ${relative(root, join(root, SOURCES))} builds to`)
}

function build(force) {
  const wanted = inputs()
  const record = readRecord()
  const committed = readWasm()
  const fresh = record?.inputs === wanted.inputs && committed !== null && record.wasm === sha256(committed)
  if (fresh && !force) {
    copyIntoDist()
    return
  }
  mkdirSync(join(root, 'wasm'), { recursive: true })
  const started = process.hrtime.bigint()
  const bytes = compile(join(root, WASM))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  writeFileSync(join(root, RECORD), `${JSON.stringify({ ...wanted, wasm: sha256(bytes) }, null, 2)}\n`)
  copyIntoDist()
  console.log(`built ${WASM} in ${seconds.toFixed(1)} s; commit it with ${RECORD}`)
}

const args = process.argv.slice(2)
if (args.includes('--check')) check(inputs())
else build(args.includes('--force'))
