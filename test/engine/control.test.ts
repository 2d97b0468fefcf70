import { describe, expect, it } from 'vitest'
import { CROSS_ENTROPY_CALL, ROWS_CANCELLED, TASK_CANCELLED, writeCall } from '../../src/engine/abi.js'
import { ControlWords, claimTask } from '../../src/engine/control.js'
import { arena, runRange } from '../kernels/local.js'

describe('task control words', () => {
  it('let a worker claim a queued task once, and never one cancelled first', () => {
    const memory = arena.group()
    try {
      const words = new Int32Array(arena.buffer)
      const controls = new ControlWords(memory.int32(2))
      const first = controls.acquire()
      const second = controls.acquire()
      if (first === undefined || second === undefined) throw new Error('no words')
      expect(controls.acquire()).toBeUndefined()

      expect(claimTask(words, first.address, first.id)).toBe(true)
      expect(claimTask(words, first.address, first.id)).toBe(false)
      expect(first.cancel()).toBe('running')

      expect(second.cancel()).toBe('queued')
      expect(claimTask(words, second.address, second.id)).toBe(false)
      expect(second.cancel()).toBeNull()

      // A word handed to a newer task cannot be claimed or cancelled under the old id.
      second.release()
      const third = controls.acquire()
      if (third === undefined) throw new Error('no word')
      expect(third.address).toBe(second.address)
      expect(claimTask(words, second.address, second.id)).toBe(false)
      expect(second.cancel()).toBeNull()
      expect(claimTask(words, third.address, third.id)).toBe(true)
    } finally {
      memory.release()
    }
  })

  it('stop the kernel before its next row', async () => {
    const memory = arena.group()
    try {
      const vocab = 4
      const logits = memory.float32(3 * vocab)
      logits.set([1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 0, 0])
      const targets = memory.int32(3)
      const tokenLoss = memory.float64(3)
      tokenLoss.fill(-7)
      const control = memory.int32(1)
      const call = memory.bytes(CROSS_ENTROPY_CALL.bytes)
      writeCall(arena.buffer, call.byteOffset, CROSS_ENTROPY_CALL, {
        logits: logits.byteOffset,
        dtype: 0,
        targets: targets.byteOffset,
        vocab,
        ignoreIndex: -100,
        weight: 0,
        tokenLoss: tokenLoss.byteOffset,
        nll: memory.float64(3).byteOffset,
        gradients: 0,
        stats: 0,
        softTargets: 0,
        labelSmoothing: 0,
        classWeightSum: vocab,
        gradScale: 1,
        zGrad: 0,
        softcap: 0
      })
      const run = () => runRange('wasm', 'hardTargetRows', call.byteOffset, 0, 3, control.byteOffset)
      control[0] = TASK_CANCELLED
      expect(run()).toBe(ROWS_CANCELLED)
      expect(Array.from(tokenLoss)).toEqual([-7, -7, -7])
      control[0] = 5
      expect(run()).toBe(-1)
      expect(tokenLoss[0]).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4)) - 1, 6)
    } finally {
      memory.release()
    }
  })
})
