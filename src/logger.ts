import pino, { type Logger } from 'pino'

/** Pino JSON logs. Request bodies are never logged (they are megabytes of floats); credentials are redacted. */
export function createLogger(level: string): Logger {
  return pino({ level, redact: ['req.headers.authorization'] })
}
