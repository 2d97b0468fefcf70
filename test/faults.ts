import { onTestFinished } from 'vitest'
import { BARRIER_ARRIVED, BARRIER_RELEASED, type Fault, type FaultSource } from '../src/engine/faults.js'
import type { DeadlineTimer } from '../src/http/deadline.js'

// What tests wire into an app to drive it to the state under test, instead of timing windows:
// faults for chosen requests, barriers that hold a worker's task until the test releases it, and
// a clock for REQUEST_TIMEOUT_MS that only the test advances.

/** How long a test waits for something that must happen; only a real bug waits this long. */
export const EVENT_DEADLINE_MS = 20_000

/**
 * A point where worker tasks stop and wait: `arrived(n)` resolves once n tasks have reached it,
 * `release()` lets every one of them (and any later one) go on. Released when the test ends, so
 * that a failing test never leaves a worker blocked.
 */
export class Barrier {
  readonly words = new Int32Array(new SharedArrayBuffer(8))

  constructor() {
    onTestFinished(() => this.release())
  }

  /** A hold fault at this barrier, after the task's first `afterRows` rows. */
  hold(afterRows = 0): Fault {
    return { kind: 'hold', barrier: this.words, afterRows }
  }

  get count(): number {
    return Atomics.load(this.words, BARRIER_ARRIVED)
  }

  /** Resolves once `tasks` tasks have arrived (Atomics.waitAsync: no polling, no timing). */
  async arrived(tasks = 1): Promise<void> {
    const deadline = performance.now() + EVENT_DEADLINE_MS
    for (;;) {
      const seen = Atomics.load(this.words, BARRIER_ARRIVED)
      if (seen >= tasks) return
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(`only ${seen} of ${tasks} tasks reached the barrier`)
      const wait = Atomics.waitAsync(this.words, BARRIER_ARRIVED, seen, left)
      if (wait.async) await wait.value
    }
  }

  release(): void {
    Atomics.store(this.words, BARRIER_RELEASED, 1)
    Atomics.notify(this.words, BARRIER_RELEASED)
  }
}

/** Faults by request id: send the request with `x-request-id: <id>` (the app keeps a plain id). */
export function faultsByRequestId(): { source: FaultSource; set: (requestId: string, fault: Fault) => void } {
  const faults = new Map<string, Fault>()
  return {
    source: (requestId) => (requestId === undefined ? undefined : faults.get(requestId)),
    set: (requestId, fault) => faults.set(requestId, fault)
  }
}

/** A clock for REQUEST_TIMEOUT_MS that only moves when the test says so. */
export class ManualDeadlines {
  readonly #pending = new Set<() => void>()

  readonly timer: DeadlineTimer = (fire) => {
    this.#pending.add(fire)
    return () => this.#pending.delete(fire)
  }

  /** Requests whose clock is running. */
  get running(): number {
    return this.#pending.size
  }

  /** Every running clock reaches its end now. */
  expireAll(): void {
    const due = [...this.#pending]
    this.#pending.clear()
    for (const fire of due) fire()
  }
}

/** Resolves once `condition` holds, looking every few ms, up to EVENT_DEADLINE_MS. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + EVENT_DEADLINE_MS
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
