#!/usr/bin/env bash
# Builds a oneDNN peer and runs rq bench beside it on the same shapes and
# thread counts, in the same run, printing our figure, oneDNN's and the ratio
# for every GEMM (bags are compared with our fp32 bag).
#
# The peer is ../shared/bench/onednn_matmul.cpp by default: oneDNN's matmul
# primitive, the path PyTorch/IPEX and OpenVINO take (AMX tiles where the CPU
# has them), with int8, bf16 and fp32 columns. PEER=onednn_gemm builds the
# older ../shared/bench/onednn_gemm.c instead (oneDNN's u8s8s32 and sgemm
# calls; no bf16 column, so bf16 rows are compared with sgemm).
#
# usage: [PEER=onednn_matmul|onednn_gemm] scripts/bench-ceiling.sh [rq bench flags...]
#   e.g. scripts/bench-ceiling.sh --threads 1,2 --json
#        PEER=onednn_gemm scripts/bench-ceiling.sh --kernel gemm-int8
# needs: apt-get install -y libdnnl-dev (and a C++ compiler for onednn_matmul)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peer=${PEER:-onednn_matmul}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$peer" in
onednn_matmul) src="$root/../shared/bench/onednn_matmul.cpp" cc=(c++ -x c++) header='#include <dnnl.hpp>' ;;
onednn_gemm) src="$root/../shared/bench/onednn_gemm.c" cc=(cc -x c) header='#include <dnnl.h>' ;;
*)
  echo "PEER=$peer: the peers are onednn_matmul (the default) and onednn_gemm" >&2
  exit 2
  ;;
esac
if ! echo "$header" | "${cc[@]}" -E - >/dev/null 2>&1; then
  echo "oneDNN headers not found (or no ${cc[0]} compiler): apt-get install -y libdnnl-dev" >&2
  exit 1
fi
"${cc[@]}" -O2 "$src" -x none -ldnnl -o "$work/$peer"
(cd "$root" && go build -o "$work/rq" .)
"$work/rq" bench --ceiling "$work/$peer" "$@"
