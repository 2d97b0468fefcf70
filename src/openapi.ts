import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { buildApp } from './app.js'

/** The OpenAPI document, as YAML, generated from the route schemas. */
export async function renderOpenApi(): Promise<string> {
  const app = await buildApp({
    POOL_THREADS: 1,
    BODY_LIMIT_MB: 64,
    KERNEL_MEMORY_MB: 16,
    MAX_ELEMENTS: 200_000,
    LOG_LEVEL: 'silent'
  })
  try {
    await app.ready()
    return app.swagger({ yaml: true })
  } finally {
    await app.close()
  }
}

export const OPENAPI_FILE = fileURLToPath(new URL('../openapi.yaml', import.meta.url))

// `npm run openapi` writes the committed openapi.yaml; a test fails when it is stale.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(OPENAPI_FILE, await renderOpenApi())
}
