import { XentClient, XentError } from '../client/index.js'

/** Where the API key of this tab is kept when the server asks for one (API_KEYS). */
const KEY_STORAGE = 'xent.apiKey'

/**
 * The playground's way to the service: the package's own XentClient on this page's origin, with
 * the tab's API key. A 401 opens the key form; a new key re-runs whatever asked.
 */
export class PlaygroundApi {
  #client: XentClient
  readonly #retries = new Set<() => void>()
  readonly #onUnauthorized: () => void

  constructor(onUnauthorized: () => void) {
    this.#onUnauthorized = onUnauthorized
    this.#client = clientWith(sessionStorage.getItem(KEY_STORAGE) ?? undefined)
  }

  get client(): XentClient {
    return this.#client
  }

  /** Remembers the key for this tab and re-runs every call that was refused for want of it. */
  useKey(key: string): void {
    sessionStorage.setItem(KEY_STORAGE, key)
    this.#client = clientWith(key)
    for (const retry of this.#retries) retry()
  }

  /** A call that re-runs on a new key; see LatestCall. */
  latest<I, O>(handlers: LatestHandlers<I, O>): LatestCall<I, O> {
    const call = new LatestCall(handlers, (error) => {
      if (error instanceof XentError && error.status === 401) this.#onUnauthorized()
    })
    this.#retries.add(() => call.retry())
    return call
  }
}

function clientWith(apiKey: string | undefined): XentClient {
  return new XentClient({ baseUrl: window.location.origin, apiKey })
}

export interface LatestHandlers<I, O> {
  run: (input: I) => Promise<O>
  show: (output: O, input: I) => void
  fail: (message: string) => void
  /** True while an answer is awaited; false once the newest input is shown. */
  busy: (busy: boolean) => void
}

/**
 * A drag sends a stream of inputs; only the newest matters. One call is in flight at a time, the
 * newest input waits behind it, and the ones it replaced are never sent, so the server sees at
 * most one request per round trip and the page always ends on the last input.
 */
export class LatestCall<I, O> {
  readonly #handlers: LatestHandlers<I, O>
  readonly #onError: (error: unknown) => void
  #waiting: { input: I } | null = null
  #last: { input: I } | null = null
  #inFlight = false

  constructor(handlers: LatestHandlers<I, O>, onError: (error: unknown) => void) {
    this.#handlers = handlers
    this.#onError = onError
  }

  request(input: I): void {
    this.#waiting = { input }
    this.#handlers.busy(true)
    if (!this.#inFlight) void this.#drain()
  }

  retry(): void {
    if (this.#last !== null && this.#waiting === null) this.request(this.#last.input)
  }

  async #drain(): Promise<void> {
    this.#inFlight = true
    while (this.#waiting !== null) {
      const { input } = this.#waiting
      this.#waiting = null
      this.#last = { input }
      try {
        const output = await this.#handlers.run(input)
        if (this.#waiting === null) this.#handlers.show(output, input)
      } catch (error) {
        if (this.#waiting === null) this.#handlers.fail(messageOf(error))
        this.#onError(error)
      }
    }
    this.#inFlight = false
    this.#handlers.busy(false)
  }
}

/** What a person should read: the service's coded message, or why the call did not reach it. */
export function messageOf(error: unknown): string {
  if (error instanceof XentError) return `${error.code} (${error.status}): ${error.message}`
  if (error instanceof TypeError) return `xent did not answer: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}
