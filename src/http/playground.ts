import { existsSync } from 'node:fs'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { distPath } from '../dist-path.js'

export const PLAYGROUND_DIR = distPath('public/')

export interface PlaygroundOptions {
  /** Where the built page is (`npm run build:playground`); PLAYGROUND_DIR unless a test says otherwise. */
  root?: string
}

/**
 * The playground at GET /: its page, script and styles, built from src/playground/ into
 * dist/public/ and served from there, with no other origin involved. Only the files present at
 * boot get routes, so any other path keeps the API's JSON 404. Browsers revalidate by ETag, so a
 * new build shows at once. The page is open under API_KEYS (it holds no data); its calls to
 * /v1/* carry the key a person types into it.
 */
async function playground(app: FastifyInstance, opts: PlaygroundOptions): Promise<void> {
  const root = opts.root ?? PLAYGROUND_DIR
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, 'the playground is not built (npm run build:playground); GET / answers 404')
    return
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    decorateReply: false,
    cacheControl: true,
    maxAge: 0
  })
}

export default fp(playground, { name: 'playground' })
