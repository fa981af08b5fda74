// Package bench measures rq's kernels on this machine: GEMMs at each
// precision and embedding bags on DLRM shapes, with any number of threads,
// and, given the oneDNN peer binary (../shared/bench/onednn_gemm.c), the
// ceiling the same shapes reach there, so figures are read as ratios from
// one run on one machine.
//
// rq bench prints these; the precision search's latency cost model reads
// them too. Timing is best-of-trials over a minimum duration per trial,
// because machines are noisy and the best run is the least disturbed one.
package bench
