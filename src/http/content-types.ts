import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * JSON and safetensors are the only bodies xent reads; anything else is a 415. Both parsers are
 * the kernel-body plugin's (src/http/kernel-body.ts), which streams a body into kernel memory;
 * here every other parser is removed.
 */
async function contentTypes(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers()
}

export default fp(contentTypes, { name: 'content-types' })
