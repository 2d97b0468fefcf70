import { type ArenaGroup, blockBytes } from './memory.js'

/**
 * A request's plan: every allocation it will make in kernel memory, by name, listed before any of
 * them is made. Admission adds the plan up (planBytes) and compute uses what allocate() made from
 * the very same plan, so the two cannot disagree on a request's size.
 */

export type ElementType = 'f32' | 'f64' | 'i32' | 'u8'

export interface Allocation {
  type: ElementType
  length: number
}

/** Named allocations; null for one this request does not need. */
export type PlanSpec = Record<string, Allocation | null>

const BYTES: Record<ElementType, number> = { f32: 4, f64: 8, i32: 4, u8: 1 }

type ArrayOf<A> = A extends { type: 'f32' }
  ? Float32Array
  : A extends { type: 'f64' }
    ? Float64Array
    : A extends { type: 'i32' }
      ? Int32Array
      : Uint8Array

/** The views allocate() makes for a spec: each named one, or null where the spec has null. */
export type Allocated<S extends PlanSpec> = {
  [K in keyof S]: S[K] extends null ? null : null extends S[K] ? ArrayOf<NonNullable<S[K]>> | null : ArrayOf<S[K]>
}

export const f32 = (length: number) => ({ type: 'f32' as const, length })
export const f64 = (length: number) => ({ type: 'f64' as const, length })
export const i32 = (length: number) => ({ type: 'i32' as const, length })
export const u8 = (length: number) => ({ type: 'u8' as const, length })

/** Kernel memory for a body already held (0 for none) and every allocation of the spec, as the arena counts it. */
export function planBytes(bodyBytes: number, spec: PlanSpec): number {
  let total = bodyBytes > 0 ? blockBytes(bodyBytes) : 0
  for (const allocation of Object.values(spec)) {
    if (allocation !== null) total += blockBytes(allocation.length * BYTES[allocation.type])
  }
  return total
}

/** Makes every allocation of the spec in `group`, in its order. */
export function allocate<S extends PlanSpec>(group: ArenaGroup, spec: S): Allocated<S> {
  const views: Record<string, ArrayBufferView | null> = {}
  for (const [name, allocation] of Object.entries(spec)) {
    if (allocation === null) {
      views[name] = null
      continue
    }
    const { type, length } = allocation
    views[name] =
      type === 'f32'
        ? group.float32(length)
        : type === 'f64'
          ? group.float64(length)
          : type === 'i32'
            ? group.int32(length)
            : group.bytes(length)
  }
  return views as Allocated<S>
}
