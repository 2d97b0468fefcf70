import { execFile, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { startServer } from './server-process.js'

// examples/, run against the built server as a user would.
const run = promisify(execFile)
const python = process.env.PYTHON ?? 'python3'
const hasNumpy = spawnSync(python, ['-c', 'import numpy, requests']).status === 0
if (!hasNumpy)
  console.warn(
    `skipping the Python example: ${python} lacks numpy or requests (apt-get install python3-numpy python3-requests)`
  )
const example = (path: string) => fileURLToPath(new URL(`../examples/${path}`, import.meta.url))
let base = ''

describe('examples', () => {
  beforeAll(async () => {
    const server = await startServer({ env: { POOL_THREADS: '1' } })
    base = server.base
    return () => {
      server.child.kill('SIGTERM')
    }
  })

  it('curl.sh prints the answer', async () => {
    const { stdout } = await run('bash', [example('curl.sh')], { env: { ...process.env, XENT_URL: base } })
    const answer = JSON.parse(stdout)
    expect(answer.count).toBe(1)
    expect(answer.gradients).toHaveLength(1)
    expect(answer.loss).toBeCloseTo(Math.log(Math.exp(2) + Math.exp(0.5) + Math.exp(-1)) - 2, 6)
  })

  it.skipIf(!hasNumpy)('python/xent_example.py makes a JSON call and a safetensors call', async () => {
    const { stdout } = await run(python, [example('python/xent_example.py')], {
      env: { ...process.env, XENT_URL: base }
    })
    expect(stdout).toMatch(
      /^JSON: loss \d+\.\d{4} \(log V = 6\.9078\), perplexity \d+\.\d, accuracy \d\.\d{3} over 28 tokens$/m
    )
    expect(stdout).toMatch(/^safetensors: loss \d+\.\d{4}, gradients float16 \(2, 16, 1000\)$/m)
  })
})
