// The kernel family, compiled to WebAssembly SIMD (wasm/kernels.wasm; see scripts/build-wasm.mjs).
//
// It runs on an imported, shared memory: the host writes a request's tensors into it and every
// worker instantiates this module over the same memory, so nothing is copied on the way in or
// out. The module owns no memory of its own (no data segments, no allocation; its few globals are
// per instance, per worker): every address comes in a call struct the host wrote (./abi.ts).

export * from './abi'
export { copyBlocks } from './copy'
export { hardTargetRows } from './cross-entropy'
export { logprobRows } from './logprobs'
export { softTargetRows } from './soft-targets'
export { jsonIndex, numberRows, printRows } from './json'
