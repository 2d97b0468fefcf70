/**
 * The per-row figures both kernels write when an analytics output is asked for: ROW_STATS
 * float64s a row, at these indices. Entropy and log-sum-exp are 0 where the target is ignored;
 * the argmax (the first index of the row's max, as torch.argmax) is there for every row.
 */
export const ROW_STATS = 3
export const STAT_ENTROPY = 0
export const STAT_LOG_SUM_EXP = 1
export const STAT_ARGMAX = 2
