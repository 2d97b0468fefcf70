import { execFile } from 'node:child_process'
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { fixtures } from './helper.js'
import { startServer } from './server-process.js'

// No Docker engine runs here, so the image's runtime stage is replayed by hand: the same
// production-only install from the lock file, the built dist/, the same CMD and HEALTHCHECK.
const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

async function readDockerfile() {
  const text = await readFile(join(root, 'Dockerfile'), 'utf8')
  const stages = text.split(/^FROM /m).slice(1)
  return { text, stages, runtime: stages.at(-1) ?? '' }
}

/** The exec-form JSON array after an instruction, e.g. CMD ["node", "dist/src/server.js"]. */
function execForm(stage: string, instruction: string): string[] {
  const match = new RegExp(`^${instruction}[^\\n]*?(\\[.*\\])\\s*$`, 'm').exec(stage.replaceAll('\\\n', ''))
  if (match === null) throw new Error(`no exec-form ${instruction} in the runtime stage`)
  return JSON.parse(match[1])
}

describe('Dockerfile', () => {
  it('is multi-stage on a maintained Node LTS image, runs as non-root, exposes 8080 and checks /healthz', async () => {
    const { stages, runtime } = await readDockerfile()
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage).toMatch(/^node:(22|24)-[a-z-]+ AS \w+/)
    expect(runtime).toContain('npm ci --omit=dev')
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).toMatch(/^EXPOSE 8080$/m)
    expect(execForm(runtime, 'HEALTHCHECK')).toEqual(expect.arrayContaining(['node']))
    expect(execForm(runtime, 'HEALTHCHECK').join(' ')).toContain('/healthz')
    // Signals reach Node through an init process.
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends tini/)
    expect(execForm(runtime, 'ENTRYPOINT')).toEqual(['/usr/bin/tini', '--'])
  })

  it('runtime stage: production dependencies alone serve the API, and the HEALTHCHECK passes', {
    timeout: 180_000
  }, async () => {
    const { runtime } = await readDockerfile()
    const app = await mkdtemp(join(tmpdir(), 'xent-image-'))
    onTestFinished(() => rm(app, { recursive: true, force: true }))
    await cp(join(root, 'package.json'), join(app, 'package.json'))
    await cp(join(root, 'package-lock.json'), join(app, 'package-lock.json'))
    await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app })
    await cp(join(root, 'dist'), join(app, 'dist'), { recursive: true })

    const [command, script] = execForm(runtime, 'CMD')
    expect(command).toBe('node')
    const server = await startServer({ cwd: app, script, env: { POOL_THREADS: '1' } })
    onTestFinished(() => {
      server.child.kill('SIGKILL')
    })
    const env = { PATH: process.env.PATH ?? '', PORT: String(server.port) }

    const [checkCommand, ...checkArgs] = execForm(runtime, 'HEALTHCHECK')
    await expect(run(checkCommand, checkArgs, { cwd: app, env })).resolves.toBeDefined()

    const { request, expected } = fixtures[0]
    const res = await fetch(`${server.base}/v1/cross-entropy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request)
    })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { count: number }).count).toBe(expected.count)
  })
})
