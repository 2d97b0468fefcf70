import { TASK_CANCELLED } from './abi.js'

/** Set in a control word once a worker has claimed the task whose id the word holds. */
export const TASK_RUNNING_FLAG = 1 << 30
const MAX_TASK_ID = TASK_RUNNING_FLAG - 1
const FREE = 0

/**
 * Control words for tasks in flight: int32s in the kernel's shared memory, owned by the pool for
 * its whole life (never by a request, whose memory is reused as soon as it is released).
 *
 * A word holds its task's id while the task waits, id | TASK_RUNNING_FLAG once a worker has
 * claimed it, and TASK_CANCELLED once cancelled; the kernel reads it once a row and stops at
 * TASK_CANCELLED. A task cancelled after its hand-off to a worker fails its claim and returns at
 * once. Every change is a compareExchange on the exact id, so a worker that receives a task late
 * (cancelled, and its word handed to a newer task since) can never claim or cancel someone
 * else's work.
 */
export class ControlWords {
  readonly #words: Int32Array
  readonly #free: number[]
  #nextId = 0

  constructor(words: Int32Array) {
    this.#words = words
    words.fill(FREE)
    this.#free = Array.from({ length: words.length }, (_, i) => words.length - 1 - i)
  }

  /** A word for a new task, holding its fresh id; undefined when every word is in use. */
  acquire(): TaskControl | undefined {
    const index = this.#free.pop()
    if (index === undefined) return undefined
    this.#nextId = (this.#nextId % MAX_TASK_ID) + 1
    const id = this.#nextId
    Atomics.store(this.#words, index, id)
    return {
      id,
      address: this.#words.byteOffset + index * 4,
      cancel: () => this.#cancel(index, id),
      release: () => {
        Atomics.store(this.#words, index, FREE)
        this.#free.push(index)
      }
    }
  }

  /** Cancels the task if it is still this word's: 'queued', 'running', or null if it had ended. */
  #cancel(index: number, id: number): 'queued' | 'running' | null {
    if (Atomics.compareExchange(this.#words, index, id, TASK_CANCELLED) === id) return 'queued'
    const running = id | TASK_RUNNING_FLAG
    if (Atomics.compareExchange(this.#words, index, running, TASK_CANCELLED) === running) return 'running'
    return null
  }
}

export interface TaskControl {
  id: number
  /** Byte address of the word, passed to the kernel. */
  address: number
  cancel: () => 'queued' | 'running' | null
  release: () => void
}

/** A worker's claim on a task: true if it is still queued under this id (and now running). */
export function claimTask(words: Int32Array, address: number, id: number): boolean {
  return Atomics.compareExchange(words, address >> 2, id, id | TASK_RUNNING_FLAG) === id
}
