import { RequestClosedError } from './errors.js'
import type { ArenaGroup, KernelArena } from './memory.js'
import { type Allocated, allocate, type PlanSpec } from './plan.js'

/**
 * The one owner of a request's kernel memory: its body, its tensors and its outputs, in one
 * allocation group. The request lets go of it (release()) once its answer is sent or its client
 * has gone; the memory is freed only when, besides, every computation tracked on it has settled,
 * every task of it included, cancelled ones too. So a worker still inside a row of a request whose
 * client left never computes into memory another request has been given.
 */
export class RequestMemory {
  readonly #group: ArenaGroup
  readonly #onFreed: (() => void) | undefined
  #pending = 0
  #released = false
  #freed = false

  constructor(arena: KernelArena, onFreed?: () => void) {
    this.#group = arena.group()
    this.#onFreed = onFreed
  }

  /** Whether the memory has been given back (no view of it may be used any more). */
  get freed(): boolean {
    return this.#freed
  }

  /** Whether the request has let go of it (its computations may still be running). */
  get released(): boolean {
    return this.#released
  }

  /** Every allocation of a plan. */
  allocate<S extends PlanSpec>(spec: S): Allocated<S> {
    return allocate(this.#live(), spec)
  }

  /** A mark of what the request holds now, to give back to with freeAfter. */
  mark(): number {
    return this.#live().mark()
  }

  /**
   * Gives back every allocation made since `mark` (the rest stays held): only once no task of the
   * request uses them, as when a reading that made them has declined and its runs have settled.
   */
  freeAfter(mark: number): void {
    this.#live().freeAfter(mark)
  }

  /** Raw bytes (a body streaming in). */
  bytes(length: number): Uint8Array {
    return this.#live().bytes(length)
  }

  /** Holds the memory until `work` settles, however the request ends meanwhile. */
  track<T>(work: Promise<T>): Promise<T> {
    this.#live()
    this.#pending++
    const settle = () => {
      this.#pending--
      this.#freeIfDone()
    }
    work.then(settle, settle)
    return work
  }

  /** The request is done with its memory: freed now, or once its last computation settles. */
  release(): void {
    this.#released = true
    this.#freeIfDone()
  }

  #live(): ArenaGroup {
    if (this.#released) throw new RequestClosedError()
    return this.#group
  }

  #freeIfDone(): void {
    if (!this.#released || this.#pending > 0 || this.#freed) return
    this.#freed = true
    this.#group.release()
    this.#onFreed?.()
  }
}
