import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { canReleaseChunks, chunkReleaser, releaseChunk } from '../../src/http/chunk-release.js'

/** A chunk as Node's HTTP parser makes one: a Buffer that is the whole of its own ArrayBuffer. */
function parserChunk(length: number): Buffer {
  const chunk = Buffer.alloc(length)
  chunk.fill(7)
  expect(chunk.byteOffset).toBe(0)
  expect(chunk.buffer.byteLength).toBe(length)
  return chunk
}

describe('releasing a body chunk once it is copied', () => {
  it('can detach on this Node (natively from Node 21, through a context of its own on Node 20)', () => {
    expect(canReleaseChunks).toBe(true)
  })

  it('detaches a chunk that is the whole of its ArrayBuffer: its memory is gone at once', () => {
    const chunk = parserChunk(65536)
    const buffer = chunk.buffer
    releaseChunk(chunk)
    expect(buffer.byteLength).toBe(0)
    expect(chunk.length).toBe(0)
  })

  it('leaves alone a slice of a shared buffer, and a chunk over a SharedArrayBuffer', () => {
    const pooled = Buffer.from('[1,2,3]')
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length)
    releaseChunk(pooled)
    expect(pooled.toString()).toBe('[1,2,3]')

    const whole = Buffer.alloc(64, 1)
    const slice = whole.subarray(0, 32)
    releaseChunk(slice)
    expect(whole.length).toBe(64)
    expect(slice[31]).toBe(1)

    const shared = Buffer.from(new SharedArrayBuffer(16))
    shared.fill(3)
    releaseChunk(shared)
    expect([...shared]).toEqual(new Array(16).fill(3))
  })

  it('leaves a chunk whose buffer cannot be detached as it is, without throwing', () => {
    // A WebAssembly memory's buffer is one such: it belongs to its memory.
    const memory = new WebAssembly.Memory({ initial: 1 })
    const chunk = Buffer.from(memory.buffer)
    chunk.fill(5)
    expect(() => releaseChunk(chunk)).not.toThrow()
    expect(chunk.length).toBe(65536)
    expect(chunk[65535]).toBe(5)
  })

  it("releases only an HTTP request's own chunks: another stream's may be its caller's Buffer", () => {
    const socket = new Socket()
    const fromParser = parserChunk(1024)
    chunkReleaser(new IncomingMessage(socket))(fromParser)
    expect(fromParser.length).toBe(0)

    const callers = parserChunk(1024)
    chunkReleaser(new PassThrough())(callers)
    expect(callers.length).toBe(1024)
    expect(callers[1023]).toBe(7)
    socket.destroy()
  })
})
