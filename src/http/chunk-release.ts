import { IncomingMessage } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * Gives a request body's chunk back to the allocator as soon as its bytes are in kernel memory.
 *
 * Node's HTTP parser hands over each piece of a body (up to 64 KB) as a Buffer of its own: memory
 * outside V8's heap, which only a garbage collection frees. V8 starts a full (mark-compact)
 * collection of the main thread's heap each time 64 MB more of such memory has been allocated. While
 * four 58 MB JSON uploads were in flight, that was 150 collections in 12 s, 2–14 ms of the main
 * thread each, and /healthz waited behind them. Detaching a chunk's ArrayBuffer once it has been
 * copied frees its memory at once and tells V8 so: 31 collections in the same 12 s.
 *
 * ArrayBuffer.prototype.transfer detaches. Node 21 and later have it; Node 20's V8 has it behind a
 * flag, which decides what a new context's ArrayBuffer.prototype holds. So on Node 20 the flag is
 * set just long enough to make one context, and its transfer (which takes any ArrayBuffer) is used.
 */
type Transfer = (this: ArrayBuffer, length: number) => ArrayBuffer

function findTransfer(): Transfer | null {
  const own = (ArrayBuffer.prototype as { transfer?: Transfer }).transfer
  if (typeof own === 'function') return own
  try {
    setFlagsFromString('--harmony-rab-gsab-transfer')
    const borrowed: unknown = runInNewContext('ArrayBuffer.prototype.transfer')
    return typeof borrowed === 'function' ? (borrowed as Transfer) : null
  } catch {
    return null
  } finally {
    setFlagsFromString('--no-harmony-rab-gsab-transfer')
  }
}

const transfer = findTransfer()

/** Whether this Node can detach a chunk (if not, releaseChunk does nothing and GC frees chunks). */
export const canReleaseChunks = transfer !== null

/**
 * Detaches `chunk`'s memory if the chunk is the whole of its ArrayBuffer, as the HTTP parser's
 * chunks are; the caller promises that nothing else holds the chunk. A slice of a shared buffer
 * (Buffer's pool, say) is left alone. The chunk reads as empty afterwards.
 */
export function releaseChunk(chunk: Buffer): void {
  if (transfer === null || chunk.byteOffset !== 0 || chunk.buffer.byteLength !== chunk.length) return
  if (!(chunk.buffer instanceof ArrayBuffer)) return
  try {
    transfer.call(chunk.buffer, 0)
  } catch {
    // An ArrayBuffer its maker keeps from being detached: garbage collection frees it, as before.
  }
}

/**
 * What a body reader calls on each chunk it has copied: releaseChunk for an HTTP request's own
 * chunks, which the parser made for this reader alone; nothing for any other stream's (an
 * injected request's chunks may be its caller's own Buffer).
 */
export function chunkReleaser(payload: unknown): (chunk: Buffer) => void {
  return payload instanceof IncomingMessage ? releaseChunk : keep
}

function keep(): void {}
