import type { Engine } from '../engine/engine.js'
import { type Allocated, type PlanSpec, planBytes } from '../engine/plan.js'
import type { RequestMemory } from '../engine/request.js'

/**
 * Admits a request by its plan (413 for what can never fit, before anything is allocated) and
 * makes every allocation of it; `bodyBytes` is a body already held in kernel memory (safetensors,
 * or JSON the workers read).
 */
export function admitPlan<S extends PlanSpec>(
  engine: Pick<Engine, 'admit'>,
  memory: RequestMemory,
  shape: { rows: number; vocab: number; logitsShape: readonly number[] },
  spec: S,
  bodyBytes: number
): Allocated<S> {
  engine.admit({ elements: shape.rows * shape.vocab, shape: shape.logitsShape, bytes: planBytes(bodyBytes, spec) })
  return memory.allocate(spec)
}
