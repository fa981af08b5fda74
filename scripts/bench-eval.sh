#!/usr/bin/env bash
# Times rq eval against PyTorch on the same machine, in the same run, on the
# MLPerf-shaped DLRM that ../shared/bench/synth_dlrm.py makes (defaults:
# 26 tables x 100k x 128, bottom 13-512-256-128, top 1024-1024-512-256-1),
# batch 2048, one thread: rq fp32 and int8-dynamic (and int8-int4) against
# torch_peer.py's fp32 and int8-dynamic (torch quantize_dynamic).
#
# "One thread" means one core for both: torch.set_num_threads(1) does not
# bind the BLAS Debian's PyTorch calls (OpenBLAS, with its own thread pool),
# which otherwise runs PyTorch's GEMMs on every core. So both programs run
# pinned to one CPU (taskset) with the BLAS/OpenMP thread counts set to 1.
# Each figure is the best of TRIALS runs (default 3), alternating programs,
# because this machine is noisy.
#
# usage: scripts/bench-eval.sh [WORKDIR]     (needs python3-torch, python3-sklearn)
set -euo pipefail
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
pin=""
if command -v taskset >/dev/null; then pin="taskset -c 0"; fi
trials=${TRIALS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$root/../shared/bench"
work=${1:-$(mktemp -d)}
py=/usr/bin/python3
if ! $py -c 'import torch, sklearn' 2>/dev/null; then
  echo "needs PyTorch and scikit-learn: apt-get install -y python3-torch python3-sklearn" >&2
  exit 1
fi
if [ ! -f "$work/model.pt" ]; then
  echo "writing the synthetic model and data to $work" >&2
  $py "$shared/synth_dlrm.py" "$work"
fi
(cd "$root" && go build -o "$work/rq" .)
rq="$work/rq"
eps() { $py -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["examples_per_sec"])'; }
run_rq() { $pin "$rq" eval --model "$1" --data "$work/data.npz" --batch 2048 --threads 1 --quiet --json | eps; }
best() { $py -c "import sys; print(max(int(x) for x in sys.argv[1:]))" "$@"; }
"$rq" quantize --model "$work/model.pt" --preset int8-dynamic -o "$work/int8-dynamic.safetensors" --quiet >/dev/null
"$rq" quantize --model "$work/model.pt" --preset pytorch-dynamic -o "$work/pytorch-dynamic.safetensors" --quiet >/dev/null
a_fp32=() a_int8=() a_pt=() a_tfp32=() a_tint8=()
for _ in $(seq "$trials"); do
  a_fp32+=("$(run_rq "$work/model.pt")")
  a_int8+=("$(run_rq "$work/int8-dynamic.safetensors")")
  a_pt+=("$(run_rq "$work/pytorch-dynamic.safetensors")")
  torch=$($pin $py "$shared/torch_peer.py" "$work/model.pt" "$work/data.npz" --time --threads 1 --batch 2048 --json)
  a_tfp32+=("$(echo "$torch" | $py -c 'import json,sys; r=json.load(sys.stdin)["rows"]; print("%.0f" % [x for x in r if x["mlp"]=="fp32" and x["emb"]=="fp32"][0]["examples_per_s"])')")
  a_tint8+=("$(echo "$torch" | $py -c 'import json,sys; r=json.load(sys.stdin)["rows"]; print("%.0f" % [x for x in r if x["mlp"]=="int8" and x["emb"]=="fp32"][0]["examples_per_s"])')")
done
rq_fp32=$(best "${a_fp32[@]}") rq_int8=$(best "${a_int8[@]}") rq_pt=$(best "${a_pt[@]}")
t_fp32=$(best "${a_tfp32[@]}") t_int8=$(best "${a_tint8[@]}")
ratio() { $py -c "print('%.2f' % ($1/$2))"; }
echo "batch 2048, 1 thread pinned to one core, examples/s, best of $trials (same run):"
echo "  PyTorch fp32            $t_fp32"
echo "  PyTorch int8-dynamic    $t_int8"
echo "  rq fp32                 $rq_fp32   ($(ratio $rq_fp32 $t_fp32)x PyTorch fp32)"
echo "  rq pytorch-dynamic      $rq_pt   ($(ratio $rq_pt $t_int8)x PyTorch int8-dynamic)"
echo "  rq int8-dynamic         $rq_int8   ($(ratio $rq_int8 $t_int8)x PyTorch int8-dynamic, $(ratio $rq_int8 $t_fp32)x PyTorch fp32)"
