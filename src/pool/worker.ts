// The piscina worker: an instance of the kernel over the pool's shared memory; each call runs
// one row range of a batch in place and returns the first invalid row, or −1.
import { workerData } from 'piscina'
import { instantiateKernel } from '../kernel/wasm.js'

const { memory, module } = workerData as { memory: WebAssembly.Memory; module: WebAssembly.Module }

export default instantiateKernel(memory, module)
