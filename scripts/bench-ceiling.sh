#!/usr/bin/env bash
# Builds the oneDNN peer (../shared/bench/onednn_gemm.c) and runs rq bench beside
# it on the same shapes and thread counts, in the same run, printing our figure,
# oneDNN's and the ratio for every GEMM (bags are compared with our fp32 bag).
#
# usage: scripts/bench-ceiling.sh [rq bench flags...]
#   e.g. scripts/bench-ceiling.sh --threads 1,2 --json
# needs: apt-get install -y libdnnl-dev
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/../shared/bench/onednn_gemm.c"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! echo '#include <dnnl.h>' | cc -E -x c - >/dev/null 2>&1; then
  echo "oneDNN headers not found: apt-get install -y libdnnl-dev" >&2
  exit 1
fi
cc -O2 "$src" -ldnnl -o "$work/onednn_gemm"
(cd "$root" && go build -o "$work/rq" .)
"$work/rq" bench --ceiling "$work/onednn_gemm" "$@"
