import pino, { type Logger } from 'pino'

/** Lines are written once this many bytes are waiting... */
const LOG_BATCH_BYTES = 4096
/** ...or at the latest this often, however few are waiting. */
const LOG_FLUSH_MS = 100

/**
 * Pino JSON logs on stdout. Request bodies are never logged (they are megabytes of floats);
 * credentials are redacted. Lines are written asynchronously (sonic-boom off the main thread's
 * path), so a slow reader of stdout never stalls requests, and in batches: two lines a request,
 * each written on its own, cost a busy server about a tenth of its small requests. Pino flushes
 * what is pending when the process exits. A process about to exit at once logs with `sync`.
 */
export function createLogger(level: string, { sync = false } = {}): Logger {
  return pino(
    { level, redact: ['req.headers.authorization'] },
    pino.destination(
      sync ? { dest: 1, sync } : { dest: 1, sync, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS }
    )
  )
}
