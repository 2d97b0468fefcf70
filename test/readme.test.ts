import { execFile, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'

// The README's examples, run as a new user would: against the built server, with the output
// the README shows. `npm test` builds dist/ first.
const root = fileURLToPath(new URL('..', import.meta.url))
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
    const server = spawn(process.execPath, ['dist/src/server.js'], {
      cwd: root,
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', POOL_THREADS: '1', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    let output = ''
    base = await new Promise((resolve) => {
      server.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
        if (match !== null) resolve(match[1])
      })
    })
    return () => {
      server.kill('SIGTERM')
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

  it('the Python example runs and prints the loss, the baseline and the gradient shape', async () => {
    const script = block('python', 'requests.post').replaceAll('http://localhost:8080', base)
    const { stdout } = await run(process.env.PYTHON ?? 'python3', ['-c', script])
    expect(stdout).toMatch(/^loss \d+\.\d{4}, untrained baseline log V = 4\.6052$/m)
    expect(stdout).toMatch(/^perplexity \d+\.\d over 14 tokens; gradient shape \(2, 8, 100\)$/m)
  })
})
