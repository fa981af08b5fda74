#!/bin/sh
# A stand-in for the oneDNN peers' command line and output, to test rq's
# parser of them (not oneDNN: ceiling_test.go runs the real onednn_matmul
# when it can be built). FAKE_PEER picks what it prints for "M N K":
#   matmul  onednn_matmul's line; with ONEDNN_VERBOSE=1, oneDNN's verbose
#           header (nthr is FAKE_NTHR, else OMP_NUM_THREADS), then it hangs
#   gemm    onednn_gemm's line (no verbose header, as the real one)
#   flood   200k lines of noise, then onednn_matmul's line
#   garbage, fail, wrongshape, zero, switch (matmul's line for odd M,
#           gemm's for even)
# Figures encode the shape and column: int8 1000+M, bf16 2000+N, fp32 3000+K.
# With FAKE_LOG set, each run appends "M N K threads verbose" to that file.
m=$1 n=$2 k=$3
if [ -n "$FAKE_LOG" ]; then echo "$m $n $k ${OMP_NUM_THREADS:-} ${ONEDNN_VERBOSE:-0}" >>"$FAKE_LOG"; fi
matmul() { echo "M=$m N=$n K=$k int8 $((1000 + m)).5 GOPS bf16 $((2000 + n)).0 GFLOPS fp32 $((3000 + k)).0 GFLOPS"; }
gemm() { echo "M=$m N=$n K=$k int8 $((1000 + m)).5 GOPS fp32 $((3000 + k)).0 GFLOPS ratio 0.33"; }
if [ "${ONEDNN_VERBOSE:-0}" = 1 ] && [ "$FAKE_PEER" != gemm ]; then
  echo "onednn_verbose,info,oneDNN v2.6.3 (commit N/A)"
  echo "onednn_verbose,info,cpu,runtime:OpenMP,nthr:${FAKE_NTHR:-$OMP_NUM_THREADS}"
  exec sleep 30
fi
case "$FAKE_PEER" in
matmul) matmul ;;
gemm) gemm ;;
flood) yes 'onednn_verbose,exec,cpu,matmul,noise' | head -n 200000; matmul ;;
garbage) echo "hello from a program that is not oneDNN" ;;
fail) echo "./onednn_matmul: error while loading shared libraries: libdnnl.so.2" >&2; exit 127 ;;
wrongshape) m=1; matmul ;;
zero) echo "M=$m N=$n K=$k int8 0.0 GOPS bf16 5.0 GFLOPS fp32 7.0 GFLOPS" ;;
switch) if [ $((m % 2)) = 1 ]; then matmul; else gemm; fi ;;
*) echo "FAKE_PEER=$FAKE_PEER?" >&2; exit 2 ;;
esac
