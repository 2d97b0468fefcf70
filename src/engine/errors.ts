/**
 * The engine's own failures, as plain errors: it knows no HTTP. The service's error handling
 * (src/http/errors.ts) turns each into its coded answer.
 */

/** Every worker is busy and the queue is full (MAX_QUEUE), or every task control word is taken. */
export class QueueFullError extends Error {
  override name = 'QueueFullError'
  constructor() {
    super('every worker is busy and the queue is full')
  }
}

/** A request has more logits than MAX_ELEMENTS allows. */
export class TooManyElementsError extends Error {
  override name = 'TooManyElementsError'
  constructor(
    readonly elements: number,
    readonly limit: number,
    readonly shape: readonly number[]
  ) {
    super(`logits ${JSON.stringify(shape)} hold ${elements} elements; MAX_ELEMENTS allows ${limit}`)
  }
}

/** The worker computing a task threw or died; piscina has replaced it. */
export class WorkerFailedError extends Error {
  override name = 'WorkerFailedError'
  constructor(
    readonly requestId: string | undefined,
    options?: ErrorOptions
  ) {
    super('the worker computing this request failed', options)
  }
}

/** The engine has closed: the work should go to another instance. */
export class ShuttingDownError extends Error {
  override name = 'ShuttingDownError'
  constructor() {
    super('the engine is shutting down')
  }
}

/** A request's memory was used after the request let it go (its client left). */
export class RequestClosedError extends Error {
  override name = 'RequestClosedError'
  constructor() {
    super("the request's kernel memory was released: its client has gone")
  }
}

/**
 * A stage run before a run's entry (reading its inputs) refused a row, so the entry did not run
 * there. Not a client error: the caller reads the request another way, which words the error.
 */
export class StageDeclinedError extends Error {
  override name = 'StageDeclinedError'
  constructor() {
    super('a stage before the entry refused a row')
  }
}
