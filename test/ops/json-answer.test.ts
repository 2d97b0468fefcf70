import { describe, expect, it } from 'vitest'
import type { CrossEntropyRequest } from '../../schemas/cross-entropy.js'
import type { LogprobsRequest } from '../../schemas/logprobs.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import {
  decodeCrossEntropyJson,
  encodeCrossEntropyJson,
  printCrossEntropyJson
} from '../../src/ops/cross-entropy/json.js'
import { JsonAnswer } from '../../src/ops/json-answer.js'
import { computeLogprobs } from '../../src/ops/logprobs/compute.js'
import { decodeLogprobsJson, encodeLogprobsJson, printLogprobsJson } from '../../src/ops/logprobs/json.js'
import { localEngine, openMemory } from '../kernels/local.js'

// Each operation describes its answer once; the two writers (text printed by the workers, and
// objects for Fastify's serializer when there is no room to print) must give the same answer,
// the float32 gradients aside, which only the printed text writes as their shortest decimals.

const engine = localEngine('wasm', 2)
const text = (chunks: Uint8Array[]) => Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))).toString()
/** The answer with every gradient rounded to float32 (the objects carry them widened to doubles). */
const rounded = (answer: Record<string, unknown>) =>
  JSON.parse(JSON.stringify(answer), (key, value) =>
    key === 'gradients'
      ? JSON.parse(JSON.stringify(value), (_, x) => (typeof x === 'number' ? Math.fround(x) : x))
      : value
  )

const logits = [0, 1].map((b) =>
  [0, 1, 2].map((t) => Array.from({ length: 5 }, (_, c) => Math.sin(b * 15 + t * 5 + c) * 4))
)

describe('the two writers of a JSON answer', () => {
  it('agree for cross-entropy, every output', async () => {
    const body = {
      logits,
      targets: [
        [0, 4, -100],
        [2, 1, 3]
      ],
      reduction: 'none',
      outputs: [
        'token_losses',
        'gradients',
        'entropy',
        'target_logprobs',
        'predictions',
        'accuracy',
        'sequence_losses',
        'sequence_perplexities',
        'bits_per_token',
        'z_loss'
      ]
    } as unknown as CrossEntropyRequest
    const memory = openMemory()
    try {
      const job = decodeCrossEntropyJson(body, memory, engine)
      const result = await computeCrossEntropy(engine, job)
      const printed = JSON.parse(text(await printCrossEntropyJson(engine, job, result, {})))
      const objects = encodeCrossEntropyJson(job, result) as unknown as Record<string, unknown>
      expect(Object.keys(printed)).toEqual(Object.keys(objects))
      expect(rounded(printed)).toEqual(rounded(objects))
    } finally {
      memory.release()
    }
  })

  it('agree for logprobs, top-k nested', async () => {
    const body = {
      logits,
      targets: [
        [0, 4, 1],
        [2, 1, 3]
      ],
      top_k: 3,
      outputs: ['target_logprobs', 'top_k', 'entropy']
    }
    const memory = openMemory()
    try {
      const job = decodeLogprobsJson(body as unknown as LogprobsRequest, memory, engine)
      const result = await computeLogprobs(engine, job)
      const printed = text(await printLogprobsJson(engine, job, result, {}))
      expect(printed).toBe(JSON.stringify(encodeLogprobsJson(job, result)))
    } finally {
      memory.release()
    }
  })
})

describe('a printed JSON answer', () => {
  it('prints arrays that lie outside kernel memory, at any offset, as it prints those inside', async () => {
    const count = 5000
    // Views at odd offsets of their buffers: copied into kernel memory skewed modulo 8.
    const f32 = new Float32Array(count + 1).map((_, i) => Math.sin(i) * 100).subarray(1)
    const f64 = new Float64Array(count + 1).map((_, i) => Math.cos(i) / 3).subarray(1)
    const i32 = new Int32Array(count + 1).map((_, i) => i * 7919 - 20_000_000).subarray(1)
    const memory = openMemory()
    try {
      const answer = new JsonAnswer(engine, memory, {})
      answer.field('f32').array(f32, [50, 100])
      answer.field('f64').array(f64, [count])
      answer.field('i32').array(i32, [count])
      const printed = JSON.parse(text(await answer.finish())) as { f32: number[][]; f64: number[]; i32: number[] }
      expect(printed.f32.flat().map(Math.fround)).toEqual(Array.from(f32))
      expect(printed.f64).toEqual(Array.from(f64))
      expect(printed.i32).toEqual(Array.from(i32))
    } finally {
      memory.release()
    }
  })
})
