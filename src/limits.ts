import { OUTPUT_NAMES } from '../schemas/cross-entropy.js'
import { MAX_TOP_K } from '../schemas/logprobs.js'
import { planBytes } from './engine/plan.js'
import { normalizeOptions } from './ops/cross-entropy/options.js'
import { crossEntropyPlan } from './ops/cross-entropy/plan.js'
import { logprobsPlan } from './ops/logprobs/plan.js'

/**
 * How the size limits follow from MAX_ELEMENTS, so that the defaults can never contradict each
 * other: a safetensors body may be as large as the largest tensors a request within MAX_ELEMENTS
 * can carry, and KERNEL_MEMORY_MB must hold the largest such request with every output. The
 * largest ones are at the two ends of the shape, (MAX_ELEMENTS, 1) and (1, MAX_ELEMENTS): every
 * size below is a·rows + b·vocab + c·rows·vocab, which over rows·vocab = E is largest at an end.
 */

/** Room for a safetensors request's length prefix and JSON header beside its tensors. */
export const SAFETENSORS_HEADER_ALLOWANCE = 1024 * 1024

/** The two ends of the shapes with `elements` elements: [rows, vocab]. */
function extremeShapes(elements: number): Array<[number, number]> {
  return [
    [elements, 1],
    [1, elements]
  ]
}

/** Tensor bytes of the largest safetensors bodies, with their plans' allocations. */
function largestRequests(elements: number): Array<{ body: number; allocations: Parameters<typeof planBytes>[1] }> {
  // Every output, and a z-loss: the most a request can allocate.
  const everything = normalizeOptions({ outputs: [...OUTPUT_NAMES], z_loss: 1 })
  return extremeShapes(elements).flatMap(([rows, vocab]) => {
    const logits = rows * vocab * 4
    const shape = { rows, vocab, logitsShape: [rows, vocab], targetsShape: [rows] }
    const lpShape = { rows, vocab, logitsShape: [rows, vocab], leadingShape: [rows] }
    const safetensors = { format: 'safetensors' as const, weight: true }
    return [
      // F32 logits, I64 targets, F32 weight
      {
        body: logits + rows * 8 + vocab * 4,
        allocations: crossEntropyPlan(shape, everything, { ...safetensors, softTargets: false })
      },
      // F32 logits, F32 soft targets, F32 weight
      {
        body: 2 * logits + vocab * 4,
        allocations: crossEntropyPlan(shape, everything, { ...safetensors, softTargets: true })
      },
      // logprobs: F32 logits, I64 targets, every output
      {
        body: logits + rows * 8,
        allocations: logprobsPlan(
          lpShape,
          { ignoreIndex: -100, topK: Math.min(MAX_TOP_K, vocab), softcap: 0, temperature: 1, entropy: true },
          { format: 'safetensors', targets: true }
        )
      }
    ]
  })
}

/** The largest safetensors body (header allowance included) a request within `maxElements` can need. */
export function safetensorsBodyLimit(maxElements: number): number {
  const tensors = Math.max(...largestRequests(maxElements).map((request) => request.body))
  return tensors + SAFETENSORS_HEADER_ALLOWANCE
}

/** The kernel memory the largest request within `maxElements` takes, body and every output. */
export function largestRequestBytes(maxElements: number): number {
  return Math.max(
    ...largestRequests(maxElements).map((request) =>
      planBytes(request.body + SAFETENSORS_HEADER_ALLOWANCE, request.allocations)
    )
  )
}

/**
 * Why a configuration can never serve its own MAX_ELEMENTS, or null when it can: the kernel
 * memory (`capacity` bytes, what KERNEL_MEMORY_MB leaves for requests) must hold the largest request.
 */
export function limitsConflict(maxElements: number, capacity: number, kernelMemoryMb: number): string | null {
  const needed = largestRequestBytes(maxElements)
  if (needed <= capacity) return null
  const neededMb = Math.ceil(needed / 2 ** 20) + 1
  return (
    `KERNEL_MEMORY_MB=${kernelMemoryMb} cannot hold the largest request MAX_ELEMENTS=${maxElements} allows ` +
    `(${needed} bytes of kernel memory with every output); raise KERNEL_MEMORY_MB to at least ${neededMb} ` +
    'or lower MAX_ELEMENTS'
  )
}
