// The piscina worker: each call runs one row range of a batch on shared memory.
import { runTask } from './task.js'

export default runTask
