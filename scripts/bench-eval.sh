#!/usr/bin/env bash
# Times rq eval against PyTorch on the same machine, in the same run, on the
# MLPerf-shaped DLRM that ../shared/bench/synth_dlrm.py makes (defaults:
# 26 tables x 100k x 128, bottom 13-512-256-128, top 1024-1024-512-256-1),
# batch 2048, one thread pinned to one core (see bench-lib.sh): rq fp32,
# int8-dynamic and pytorch-dynamic against torch_peer.py's fp32 and
# int8-dynamic (torch quantize_dynamic). The TorchRec DCN of MLPerf dlrm-v2
# is scripts/bench-dcn.sh.
#
# usage: scripts/bench-eval.sh [WORKDIR]     (needs python3-torch, python3-sklearn)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
work=${1:-$(mktemp -d)}
if [ ! -f "$work/model.pt" ]; then
  echo "writing the synthetic model and data to $work" >&2
  $py "$shared/synth_dlrm.py" "$work"
fi
build_rq "$work"
rq="$work/rq"
"$rq" quantize --model "$work/model.pt" --preset int8-dynamic -o "$work/int8-dynamic.safetensors" --quiet >/dev/null
"$rq" quantize --model "$work/model.pt" --preset pytorch-dynamic -o "$work/pytorch-dynamic.safetensors" --quiet >/dev/null
a_fp32=() a_int8=() a_pt=() a_tfp32=() a_tint8=()
for _ in $(seq "$trials"); do
  a_fp32+=("$(rq_eps "$work/model.pt" "$work/data.npz")")
  a_int8+=("$(rq_eps "$work/int8-dynamic.safetensors" "$work/data.npz")")
  a_pt+=("$(rq_eps "$work/pytorch-dynamic.safetensors" "$work/data.npz")")
  torch=$($pin $py "$shared/torch_peer.py" "$work/model.pt" "$work/data.npz" --time --threads 1 --batch 2048 --json)
  a_tfp32+=("$(echo "$torch" | peer_eps fp32 fp32)")
  a_tint8+=("$(echo "$torch" | peer_eps int8 fp32)")
done
rq_fp32=$(best "${a_fp32[@]}") rq_int8=$(best "${a_int8[@]}") rq_pt=$(best "${a_pt[@]}")
t_fp32=$(best "${a_tfp32[@]}") t_int8=$(best "${a_tint8[@]}")
echo "synth_dlrm.py model on $(cpu_name): batch 2048, 1 thread pinned to one core, examples/s, best of $trials (same run):"
echo "  PyTorch fp32            $t_fp32"
echo "  PyTorch int8-dynamic    $t_int8"
echo "  rq fp32                 $rq_fp32   ($(ratio $rq_fp32 $t_fp32)x PyTorch fp32)"
echo "  rq pytorch-dynamic      $rq_pt   ($(ratio $rq_pt $t_int8)x PyTorch int8-dynamic)"
echo "  rq int8-dynamic         $rq_int8   ($(ratio $rq_int8 $t_int8)x PyTorch int8-dynamic, $(ratio $rq_int8 $t_fp32)x PyTorch fp32)"
