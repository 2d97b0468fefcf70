import { describe, expect, it } from 'vitest'
import type { CrossEntropyRequest } from '../../schemas/cross-entropy.js'
import type { LogprobsRequest } from '../../schemas/logprobs.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import {
  decodeCrossEntropyJson,
  encodeCrossEntropyJson,
  printCrossEntropyJson
} from '../../src/ops/cross-entropy/json.js'
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
