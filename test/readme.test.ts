import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { startServer } from './server-process.js'

// The README's examples, run as a new user would: against the built server, with the output
// the README shows. `npm test` builds dist/ first.
const run = promisify(execFile)
let readme = ''
let base = ''

function block(language: string, containing: string): string {
  const blocks = [...readme.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1])
  const found = blocks.find((text) => text.includes(containing))
  if (found === undefined) throw new Error(`README has no ${language} block containing ${containing}`)
  return found
}

describe('README examples', () => {
  beforeAll(async () => {
    readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    const server = await startServer({ env: { POOL_THREADS: '1' } })
    base = server.base
    return () => {
      server.child.kill('SIGTERM')
    }
  })

  it('has the two-command quick start', () => {
    expect(block('sh', 'npm ci && npm start')).toMatch(/^npm ci && npm start\b.*\nnpm test\b/m)
  })

  it('the curl example prints what the README shows', async () => {
    const command = block('sh', 'curl').replaceAll('http://localhost:8080', base)
    const { stdout } = await run('bash', ['-c', command])
    const shown = block('json', '"loss"').trim()
    expect(JSON.parse(stdout)).toEqual(JSON.parse(shown))
  })

  it('the safetensors Python example runs (with a small numpy stand-in for the safetensors package)', async () => {
    const script = block('python', 'safetensors.numpy').replaceAll('http://localhost:8080', base)
    // Debian ships no python3-safetensors: test/fixtures/python holds a numpy reader/writer of the format.
    const env = { ...process.env, PYTHONPATH: fileURLToPath(new URL('./fixtures/python', import.meta.url)) }
    const { stdout } = await run(process.env.PYTHON ?? 'python3', ['-c', script], { env })
    expect(stdout).toMatch(/^loss \d+\.\d{4}, perplexity \d+\.\d over 400 tokens$/m)
    expect(stdout).toMatch(/^gradients float16 \(4, 128, 8192\)$/m)
  })

  it('the Python example runs and prints the loss, the baseline and the gradient shape', async () => {
    const script = block('python', 'requests.post').replaceAll('http://localhost:8080', base)
    const { stdout } = await run(process.env.PYTHON ?? 'python3', ['-c', script])
    expect(stdout).toMatch(/^loss \d+\.\d{4}, untrained baseline log V = 4\.6052$/m)
    expect(stdout).toMatch(/^perplexity \d+\.\d over 14 tokens; gradient shape \(2, 8, 100\)$/m)
  })
})
