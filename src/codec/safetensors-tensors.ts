import { XentErrors } from '../errors.js'
import { isTarget, rowPosition, targetOutOfRange } from './positions.js'
import {
  DTYPE_SIZES,
  type Dtype,
  readSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  type TensorInfo
} from './safetensors.js'

/**
 * The tensors of a safetensors request body, already in kernel memory: they are used where they
 * lie (logits in F32, F16 or BF16; soft targets and weights in F32), unless the sender misaligned
 * one for its dtype, which then costs one aligned copy (planned with the rest of the request).
 */

const LOGITS_DTYPES: ReadonlySet<Dtype> = new Set(['F32', 'F16', 'BF16'])
const TARGETS_DTYPES: ReadonlySet<Dtype> = new Set(['I32', 'I64'])

/** A request body's safetensors header, with any tensor not in `known` refused (`hint` says what to send). */
export function readRequestFile(bytes: Uint8Array, known: readonly string[], hint: string): SafetensorsFile {
  let file: SafetensorsFile
  try {
    file = readSafetensors(bytes)
  } catch (error) {
    if (error instanceof SafetensorsError) throw new XentErrors.INVALID_SAFETENSORS(error.message)
    throw error
  }
  for (const name of file.tensors.keys()) {
    if (!known.includes(name)) throw new XentErrors.INVALID_SAFETENSORS(`tensor "${name}" was not asked for; ${hint}`)
  }
  return file
}

/** The logits' and targets' dtypes and shapes checked: rows (the leading dimensions' product) and vocab. */
export function checkShapes(logits: TensorInfo, targets: TensorInfo | undefined): { rows: number; vocab: number } {
  if (!LOGITS_DTYPES.has(logits.dtype)) {
    throw new XentErrors.INVALID_SAFETENSORS(`logits are ${logits.dtype}; send F32, F16 or BF16`)
  }
  if (targets !== undefined && !TARGETS_DTYPES.has(targets.dtype)) {
    throw new XentErrors.INVALID_SAFETENSORS(`targets are ${targets.dtype}; send I32 or I64`)
  }
  if (logits.shape.length !== 2 && logits.shape.length !== 3) {
    throw new XentErrors.SHAPE_MISMATCH(
      `logits have shape ${JSON.stringify(logits.shape)}; they must be (N, V) or (B, T, V)`
    )
  }
  const emptyAt = logits.shape.indexOf(0)
  if (emptyAt !== -1)
    throw new XentErrors.EMPTY_DIMENSION(
      `logits have shape ${JSON.stringify(logits.shape)}; dimension ${emptyAt} is empty`
    )
  const leading = logits.shape.slice(0, -1)
  if (
    targets !== undefined &&
    (targets.shape.length !== leading.length || targets.shape.some((d, i) => d !== leading[i]))
  ) {
    throw new XentErrors.SHAPE_MISMATCH(
      `targets have shape ${JSON.stringify(targets.shape)}; logits of shape ${JSON.stringify(logits.shape)} need ${JSON.stringify(leading)}`
    )
  }
  const vocab = logits.shape[logits.shape.length - 1]
  return { rows: leading.reduce((product, d) => product * d, 1), vocab }
}

/** Whether a tensor lies misaligned for its dtype, so that it must be copied once to be read. */
export function isMisaligned(bytes: Uint8Array, info: TensorInfo | undefined): boolean {
  return info !== undefined && (bytes.byteOffset + info.begin) % DTYPE_SIZES[info.dtype] !== 0
}

/** Copies between two views of the kernel memory at memcpy's speed (Engine.copy). */
export type CopyBytes = (target: Uint8Array, source: Uint8Array) => void

/** A misaligned tensor's bytes, copied to `copy` (an aligned allocation of its length); otherwise where they lie. */
function alignedBytes(bytes: Uint8Array, info: TensorInfo, copy: Uint8Array | null, copyBytes: CopyBytes): Uint8Array {
  const source = bytes.subarray(info.begin, info.end)
  if (copy === null) return source
  copyBytes(copy, source)
  return copy
}

/** The logits as the kernel reads them: float32s, or the raw 16-bit words of F16 and BF16. */
export function logitsView(
  bytes: Uint8Array,
  info: TensorInfo,
  copy: Uint8Array | null,
  copyBytes: CopyBytes
): Float32Array | Uint16Array {
  const data = alignedBytes(bytes, info, copy, copyBytes)
  return info.dtype === 'F32'
    ? new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)
    : new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2)
}

/** An F32 tensor as float32s. */
export function float32View(
  bytes: Uint8Array,
  info: TensorInfo,
  copy: Uint8Array | null,
  copyBytes: CopyBytes
): Float32Array {
  const data = alignedBytes(bytes, info, copy, copyBytes)
  return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)
}

/** Targets (I32 or I64) into int32, each ignore_index or in [0, V). */
export function copyTargets(
  bytes: Uint8Array,
  info: TensorInfo,
  vocab: number,
  ignoreIndex: number,
  into: Int32Array
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset + info.begin, info.end - info.begin)
  const wide = info.dtype === 'I64'
  for (let i = 0; i < into.length; i++) {
    const target = wide ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)
    if (!isTarget(target, vocab, ignoreIndex)) {
      throw targetOutOfRange(rowPosition('targets', i, info.shape), target, vocab, ignoreIndex)
    }
    into[i] = target
  }
}
