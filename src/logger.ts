import pino, { type Logger } from 'pino'

/**
 * Pino JSON logs on stdout. Request bodies are never logged (they are megabytes of floats);
 * credentials are redacted. Lines are written asynchronously (sonic-boom off the main thread's
 * path), so a slow reader of stdout never stalls requests; pino flushes what is pending when the
 * process exits. A process about to exit at once logs with `sync`.
 */
export function createLogger(level: string, { sync = false } = {}): Logger {
  return pino({ level, redact: ['req.headers.authorization'] }, pino.destination({ dest: 1, sync }))
}
