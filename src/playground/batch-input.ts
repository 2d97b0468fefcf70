import type { CrossEntropyRequest, OutputName } from '../client/index.js'
import { readSafetensors } from '../codec/safetensors.js'

/** What the batch picture needs besides the service's answer: the grid and which cells are padding. */
export interface BatchShape {
  /** B: sequences, one heatmap row each. An (N, V) input is one sequence of N positions. */
  sequences: number
  /** T: positions per sequence. */
  positions: number
  vocabulary: number
  /** Row-major (B·T); null where soft targets leave no class and nothing is ignored. */
  targets: number[] | null
  ignoreIndex: number
}

/** The outputs the batch picture draws, beside whatever the pasted request asks for. */
export const BATCH_OUTPUTS: OutputName[] = ['token_losses', 'sequence_perplexities']

export class BatchInputError extends Error {
  override name = 'BatchInputError'
}

const isArray = Array.isArray

/**
 * A pasted request: the API's own JSON, sent on with reduction mean and the batch outputs added.
 * Only the shape is read here; the service checks every value and names any bad one.
 */
export function parseBatchJson(
  text: string,
  defaultIgnoreIndex: number
): { request: CrossEntropyRequest; shape: BatchShape } {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new BatchInputError(`the pasted text is not JSON: ${(error as Error).message}`)
  }
  if (typeof body !== 'object' || body === null || isArray(body)) {
    throw new BatchInputError('the pasted JSON must be an object with logits and targets, as the API takes')
  }
  const request = body as Record<string, unknown>
  const logits = request.logits
  if (!isArray(logits) || logits.length === 0 || !isArray(logits[0])) {
    throw new BatchInputError('logits must be an array shaped (B, T, V) or (N, V)')
  }
  const threeDimensional = isArray(logits[0][0])
  const sequences = threeDimensional ? logits.length : 1
  const positions = threeDimensional ? (logits[0] as unknown[]).length : logits.length
  const vocabulary = threeDimensional ? (logits[0][0] as unknown[]).length : (logits[0] as unknown[]).length
  const ignoreIndex = typeof request.ignore_index === 'number' ? request.ignore_index : defaultIgnoreIndex
  let targets: number[] | null = null
  if (request.targets !== undefined) {
    const flat = isArray(request.targets) ? (request.targets as unknown[]).flat() : []
    if (flat.length !== sequences * positions) {
      throw new BatchInputError(
        `targets must be shaped (${threeDimensional ? `${sequences}, ${positions}` : positions}) like logits without V; it has ${flat.length} values`
      )
    }
    targets = flat as number[]
  } else if (request.soft_targets === undefined) {
    throw new BatchInputError('the request needs targets (or soft_targets)')
  }
  const outputs = isArray(request.outputs) ? (request.outputs as OutputName[]) : []
  // Soft targets have no per-sequence perplexity (no class to be surprised by): losses only.
  const drawn: OutputName[] = request.soft_targets === undefined ? BATCH_OUTPUTS : ['token_losses']
  return {
    request: {
      ...(request as CrossEntropyRequest),
      ...(request.soft_targets === undefined ? { ignore_index: ignoreIndex } : {}),
      reduction: 'mean',
      outputs: [...new Set([...outputs, ...drawn])]
    },
    shape: { sequences, positions, vocabulary, targets, ignoreIndex }
  }
}

/**
 * The shape and targets of a safetensors file, read here for the picture; the file itself goes to
 * the service as it is.
 */
export function readBatchFile(bytes: Uint8Array, ignoreIndex: number): BatchShape {
  let file: ReturnType<typeof readSafetensors>
  try {
    file = readSafetensors(bytes)
  } catch (error) {
    throw new BatchInputError(`the file is not safetensors: ${(error as Error).message}`)
  }
  const logits = file.tensors.get('logits')
  const targets = file.tensors.get('targets')
  if (logits === undefined || targets === undefined) {
    const names = [...file.tensors.keys()].join(', ') || 'none'
    throw new BatchInputError(`the file needs tensors named logits and targets; it has ${names}`)
  }
  if (logits.shape.length !== 3 && logits.shape.length !== 2) {
    throw new BatchInputError(`logits must be shaped (B, T, V) or (N, V); it is (${logits.shape.join(', ')})`)
  }
  const [sequences, positions] = logits.shape.length === 3 ? logits.shape : [1, logits.shape[0]]
  const count = targets.shape.reduce((product, size) => product * size, 1)
  if (count !== sequences * positions) {
    throw new BatchInputError(
      `targets must be shaped like logits without V, (${logits.shape.slice(0, -1).join(', ')}); it is (${targets.shape.join(', ')})`
    )
  }
  const raw = bytes.slice(targets.begin, targets.end).buffer
  let values: number[]
  if (targets.dtype === 'I64') values = Array.from(new BigInt64Array(raw), Number)
  else if (targets.dtype === 'I32') values = Array.from(new Int32Array(raw))
  else throw new BatchInputError(`targets must be I64 or I32; it is ${targets.dtype}`)
  return { sequences, positions, vocabulary: logits.shape.at(-1) ?? 0, targets: values, ignoreIndex }
}

/**
 * A batch to start from: four sequences a model has learned to different degrees, from sure and
 * right to an even spread, two of them ending in padding. Seeded, so every visit shows the same.
 */
export function exampleBatch(): string {
  const sequences = 4
  const positions = 12
  const vocabulary = 16
  const skill = [6, 3.5, 1.5, 0]
  const padding = [0, 3, 0, 5]
  const random = mulberry32(7)
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const logits: number[][][] = []
  const targets: number[][] = []
  for (let b = 0; b < sequences; b++) {
    logits.push([])
    targets.push([])
    for (let t = 0; t < positions; t++) {
      const target = Math.floor(random() * vocabulary)
      const row = Array.from({ length: vocabulary }, () => (b === sequences - 1 ? 0.15 : 1.2) * normal())
      row[target] += skill[b] * (0.6 + 0.8 * random())
      logits[b].push(row.map((value) => Math.round(value * 100) / 100))
      targets[b].push(t >= positions - padding[b] ? -100 : target)
    }
  }
  const sequenceText = (rows: number[][]) =>
    `    [\n${rows.map((row) => `      ${JSON.stringify(row)}`).join(',\n')}\n    ]`
  return [
    '{',
    '  "logits": [',
    logits.map(sequenceText).join(',\n'),
    '  ],',
    `  "targets": [\n${targets.map((row) => `    ${JSON.stringify(row)}`).join(',\n')}\n  ]`,
    '}'
  ].join('\n')
}

/** mulberry32, a small seeded generator: enough for an example. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
