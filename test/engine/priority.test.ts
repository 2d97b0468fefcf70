import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { CrossEntropyRequest } from '../../schemas/cross-entropy.js'
import { WORKER_NICE } from '../../src/engine/engine.js'
import { computeCrossEntropy } from '../../src/ops/cross-entropy/compute.js'
import { decodeCrossEntropyJson } from '../../src/ops/cross-entropy/json.js'
import { Barrier } from '../faults.js'
import { testEngine } from '../helper.js'

// The workers run below the main thread, so that it answers probes and moves bytes first when
// both want a core. Linux keeps a nice value a thread; elsewhere there is nothing to read.

/** The nice value of each thread of this process. */
const niceValues = () =>
  readdirSync('/proc/self/task').map((task) => {
    // The 19th field of stat; the 2nd (the name, in parentheses) may hold spaces.
    const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
  })

const request: CrossEntropyRequest = { logits: [[1, 2, 3]], targets: [2] }

describe.runIf(process.platform === 'linux')('the workers’ priority', () => {
  it('lowers each worker thread’s priority, and no other thread’s', async () => {
    const before = niceValues()
    expect(before.filter((nice) => nice === WORKER_NICE)).toEqual([])
    const barrier = new Barrier()
    const engine = testEngine({
      threads: 2,
      maxElements: 2 ** 16,
      faults: (requestId) => (requestId === 'held' ? barrier.hold() : undefined)
    })
    await engine.start()
    // One worker holds a task at the barrier, so the next task runs on the other: both have started.
    const held = computeCrossEntropy(engine, decodeCrossEntropyJson(request, engine.openRequest(), engine), {
      requestId: 'held'
    })
    await barrier.arrived()
    await computeCrossEntropy(engine, decodeCrossEntropyJson(request, engine.openRequest(), engine))
    const after = niceValues()
    barrier.release()
    await held
    expect(after.filter((nice) => nice === WORKER_NICE)).toHaveLength(2)
    expect(after.filter((nice) => nice !== WORKER_NICE).every((nice) => nice === before[0])).toBe(true)
  })
})
