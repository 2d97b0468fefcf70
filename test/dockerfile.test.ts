import { execFile } from 'node:child_process'
import { access, cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
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
/** `npm run docker:check` replays the build stage's `npm run build` whole, wasm included. */
const FULL_BUILD = process.env.XENT_DOCKER_CHECK === '1'
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

  it('build stage: the files it copies are all `npm run build` needs, the playground included', {
    timeout: 180_000
  }, async () => {
    const { stages } = await readDockerfile()
    const build = stages[0]
    const dir = await mkdtemp(join(tmpdir(), 'xent-build-stage-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    // Every `COPY <sources…> <destination>` of the build stage, relative to WORKDIR /app.
    const copies = [...build.matchAll(/^COPY (?!--)(.+)$/gm)].map((match) => match[1].trim().split(/\s+/))
    expect(copies.length).toBeGreaterThan(0)
    for (const parts of copies) {
      const destination = join(dir, parts.at(-1) ?? '.')
      for (const source of parts.slice(0, -1)) {
        const into = destination.endsWith('/') || parts.length > 2 ? join(destination, source) : destination
        await cp(join(root, source), into, { recursive: true })
      }
    }
    // The stage's `npm ci` is the lock file's tree; this one is the same tree, already installed.
    expect(build).toMatch(/^RUN npm ci$/m)
    await symlink(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
    expect(build).toMatch(/^RUN npm run build$/m)
    const path = `${join(dir, 'node_modules/.bin')}:${process.env.PATH}`
    await run('npm', ['run', 'build'], { cwd: dir, env: { ...process.env, PATH: path } })
    // The committed wasm is taken as it is when its record matches the copied sources; the full
    // check (`npm run docker:check`) also compiles them in the copy, as a stale record would.
    if (FULL_BUILD) await run('npm', ['run', 'check:wasm'], { cwd: dir, env: { ...process.env, PATH: path } })
    for (const built of [
      'dist/src/server.js',
      'dist/wasm/kernels.wasm',
      'dist/public/index.html',
      'dist/public/playground.js'
    ]) {
      await expect(access(join(dir, built))).resolves.toBeUndefined()
    }
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
    // The playground ships in dist/ and needs nothing else at run time.
    for (const path of ['/', '/playground.js', '/playground.css']) {
      expect((await fetch(`${server.base}${path}`)).status).toBe(200)
    }
  })
})
