import { MemPool } from '@thi.ng/malloc'
import { KERNEL_RESERVED_BYTES } from './abi.js'

const PAGE = 65_536
const MIB = 1024 * 1024
/** SIMD loads want 16-byte alignment; 64 keeps every tensor on its own cache line. */
const ALIGN = 64
/** @thi.ng/malloc's header before each block. */
const BLOCK_HEADER = 8

/** What an allocation of `bytes` takes from the arena, header and alignment included (as MemPool pads it). */
export function blockBytes(bytes: number): number {
  return Math.ceil((Math.max(bytes, ALIGN) + BLOCK_HEADER) / ALIGN) * ALIGN
}

/**
 * The kernel's shared memory and the main thread's allocator over it. One WebAssembly.Memory,
 * `shared: true`, whose buffer is a SharedArrayBuffer: the route decodes tensors straight into
 * it, the workers' kernel instances compute on it in place, and only addresses cross threads.
 *
 * The memory is reserved at its full size up front (initial = maximum), so its buffer never
 * changes and views stay valid; the operating system backs pages only once they are touched.
 * Only the main thread allocates (a first-fit pool with coalescing, @thi.ng/malloc).
 */
export class KernelArena {
  readonly memory: WebAssembly.Memory
  readonly buffer: SharedArrayBuffer
  private readonly pool: MemPool

  constructor(megabytes: number) {
    const pages = Math.ceil((megabytes * MIB + KERNEL_RESERVED_BYTES) / PAGE)
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true })
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer
    this.pool = new MemPool({ buf: this.buffer, start: KERNEL_RESERVED_BYTES, align: ALIGN })
    this.firstBlock = this.pool.stats().top
  }

  /** Where the pool's first block starts: after the module's bytes and the pool's own state. */
  private readonly firstBlock: number

  /**
   * Bytes requests can use in all: the memory less the module's, the pool's own state (before
   * its first block) and the arena's own blocks (permanentInt32).
   */
  get capacity(): number {
    return this.buffer.byteLength - this.firstBlock - this.permanentBytes
  }

  /** Bytes held by live allocations, the arena's own (permanentInt32) aside: 0 whenever no request is in flight. */
  get usedBytes(): number {
    return this.pool.stats().used.size - this.permanentBytes
  }

  private permanentBytes = 0

  /** Int32s held for the arena's whole life (the pool's task control words), never released. */
  permanentInt32(length: number): Int32Array {
    const before = this.pool.stats().used.size
    const words = this.group().int32(length)
    this.permanentBytes += this.pool.stats().used.size - before
    return words
  }

  /**
   * Throws ArenaFullError when `bytes` (a whole request's needs) exceeds the memory even when
   * idle: such a request can never run, so it is refused before anything is allocated.
   */
  requireCapacity(bytes: number): void {
    if (bytes > this.capacity) throw new ArenaFullError(bytes)
  }

  /** A new allocation group: everything one request needs, freed together. */
  group(): ArenaGroup {
    return new ArenaGroup(this.pool, this.buffer)
  }
}

export class ArenaFullError extends Error {
  override name = 'ArenaFullError'
  constructor(readonly bytes: number) {
    super(`the kernel memory has no free block of ${bytes} bytes`)
  }
}

export class ArenaGroup {
  private readonly addresses: number[] = []

  constructor(
    private readonly pool: MemPool,
    private readonly buffer: SharedArrayBuffer
  ) {}

  private allocate(bytes: number): number {
    const address = this.pool.malloc(Math.max(bytes, ALIGN))
    if (address === 0) throw new ArenaFullError(bytes)
    this.addresses.push(address)
    return address
  }

  float32(length: number): Float32Array {
    return new Float32Array(this.buffer, this.allocate(length * 4), length)
  }

  float64(length: number): Float64Array {
    return new Float64Array(this.buffer, this.allocate(length * 8), length)
  }

  int32(length: number): Int32Array {
    return new Int32Array(this.buffer, this.allocate(length * 4), length)
  }

  bytes(length: number): Uint8Array {
    return new Uint8Array(this.buffer, this.allocate(length), length)
  }

  /** How many blocks the group holds: a mark to give back to (freeAfter). */
  mark(): number {
    return this.addresses.length
  }

  /** Frees every block allocated since `mark`; their views must not be used afterwards. */
  freeAfter(mark: number): void {
    for (const address of this.addresses.splice(mark)) this.pool.free(address)
  }

  /** Frees every block of the group; its views must not be used afterwards. */
  release(): void {
    for (const address of this.addresses) this.pool.free(address)
    this.addresses.length = 0
  }
}

/** Bytes staged at a time by copyInto. */
const STAGING_BYTES = 65_536
/** Reused by copyInto (only the main thread writes kernel memory from the host). */
const staging = new Uint8Array(new ArrayBuffer(STAGING_BYTES + 8))

/**
 * Copies host bytes into kernel memory, as `target.set(source, offset)` does, at memcpy's speed
 * whatever the two addresses are.
 *
 * V8 writes into a SharedArrayBuffer with relaxed atomic stores, a word at a time when source and
 * destination lie at the same offset modulo 8, but a byte at a time when they do not: about a
 * fifth of the speed. A socket's chunks arrive at any such offset. A skewed chunk is therefore
 * first copied (a plain memcpy, between unshared buffers) into a staging buffer at the offset that
 * matches its destination, and copied from there a word at a time.
 */
export function copyInto(target: Uint8Array, offset: number, source: Uint8Array): void {
  // Backing stores start 8-aligned, so their views' byte offsets give the skew.
  const skewed = ((target.byteOffset + offset - source.byteOffset) & 7) !== 0
  if (!skewed || source.length < 64) {
    target.set(source, offset)
    return
  }
  // Refused whole, as target.set refuses it, before any piece is written.
  if (offset + source.length > target.length) throw new RangeError('offset is out of bounds')
  for (let at = 0; at < source.length; at += STAGING_BYTES) {
    const piece = source.subarray(at, Math.min(at + STAGING_BYTES, source.length))
    const shift = (target.byteOffset + offset + at) & 7
    staging.set(piece, shift)
    target.set(staging.subarray(shift, shift + piece.length), offset + at)
  }
}
