import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The work load/torch_floor.py can time, by the name it reads on stdin. */
export type TorchKind = 'forward' | 'forward_backward' | 'softcap' | 'soft_targets' | 'logprobs'

/** PyTorch in a Python process of its own, on one thread, one timed run per call. */
export interface TorchFloor {
  version: string
  timeMs: (kind: TorchKind) => Promise<number>
  close: () => void
}

/**
 * Starts load/torch_floor.py over (rows × vocab) float32 logits with the first Python that has
 * torch (XENT_TORCH_PYTHON, python3 or /usr/bin/python3); undefined when none has it.
 */
export async function startTorchFloor(rows: number, vocab: number): Promise<TorchFloor | undefined> {
  const candidates = [process.env.XENT_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (python): python is string => python !== undefined && python !== ''
  )
  const python = candidates.find((candidate) => spawnSync(candidate, ['-c', 'import torch']).status === 0)
  if (python === undefined) return undefined
  const script = fileURLToPath(new URL('torch_floor.py', import.meta.url))
  const child: ChildProcessWithoutNullStreams = spawn(python, [script, String(rows), String(vocab)])
  child.stderr.pipe(process.stderr)
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const nextLine = async () => {
    const { value, done } = await lines.next()
    if (done === true) throw new Error('the PyTorch floor process ended early')
    return value
  }
  const ready = await nextLine()
  return {
    version: ready.replace(/^ready torch /, ''),
    timeMs: async (kind) => {
      child.stdin.write(`${kind}\n`)
      return Number(await nextLine())
    },
    close: () => {
      child.stdin.end()
      void once(child, 'exit')
    }
  }
}
