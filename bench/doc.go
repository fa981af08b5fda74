// Package bench measures rq's kernels on this machine: GEMMs at each
// precision and embedding bags on DLRM shapes, with any number of threads,
// and, given a oneDNN peer binary (../shared/bench/onednn_matmul.cpp, oneDNN's
// matmul primitive with its int8, bf16 and fp32 columns, or the older
// onednn_gemm.c with int8 and fp32), the ceiling the same shapes reach there,
// so figures are read as ratios from one run on one machine. The peers are
// told apart by the line they print, not by their file names.
//
// rq bench prints these; the precision search's latency cost model reads
// them too. Timing is best-of-trials over a minimum duration per trial,
// because machines are noisy and the best run is the least disturbed one.
package bench
