// Bytes from one place in the kernel memory to another. From JavaScript, a copy between two views
// of a SharedArrayBuffer goes a byte at a time when the views are skewed modulo 8 (about 18 ms
// for 32 MB on the development VM); memory.copy takes 3–4 ms whatever the addresses.

import { ALL_ROWS_VALID, CB_DST, CB_LENGTH, CB_SRC, COPY_BLOCK_BYTES, ROWS_CANCELLED, TASK_CANCELLED } from './abi'

/** Copies rows [rowStart, rowEnd) of COPY_BLOCK_BYTES bytes each (the last one shorter) of the call's range. */
export function copyBlocks (call: usize, rowStart: i32, rowEnd: i32, control: usize): i32 {
  const dst = <usize>load<u32>(call + CB_DST)
  const src = <usize>load<u32>(call + CB_SRC)
  const length = <usize>load<u32>(call + CB_LENGTH)
  for (let row = rowStart; row < rowEnd; row++) {
    if (control != 0 && atomic.load<i32>(control) == TASK_CANCELLED) return ROWS_CANCELLED
    const at = <usize>row * <usize>COPY_BLOCK_BYTES
    if (at >= length) break
    memory.copy(dst + at, src + at, min(<usize>COPY_BLOCK_BYTES, length - at))
  }
  return ALL_ROWS_VALID
}
