#!/usr/bin/env bash
# Times rq eval against PyTorch on MLPerf dlrm-v2's model: the TorchRec
# DLRM_DCN that ../shared/bench/synth_dcn.py makes (dim 128, MLPerf's
# multi-hot sizes, 214 ids per row, dense 13-512-256-128, 3 cross layers of
# rank 512 over 3456, over 1024-1024-512-256-1: ~16 M multiply-adds per row),
# beside torchrec_peer.py --time, batch 2048, one thread pinned to one core,
# in the same run (see bench-lib.sh). rq runs fp32, bf16, int8-dynamic (cross
# layers int8 too), pytorch-dynamic (cross layers fp32, as quantize_dynamic
# leaves them) and int8 (static, calibrated on the same rows); PyTorch fp32
# and int8-dynamic.
#
# The paper's claim in one line: rq int8 on this model, about 7x the work of
# the DLRM (v1) of synth_dlrm.py, beside PyTorch fp32 on that DLRM, timed in
# the same run with torch_peer.py.
#
# With libdnnl-dev installed, the ceiling is printed too: oneDNN's fp32 and
# int8 matmul (../shared/bench/onednn_matmul.cpp) on the cross layers' shape,
# against rq's effective rate (multiply-adds per row x rows/s).
#
# usage: scripts/bench-dcn.sh [WORKDIR]     (needs python3-torch, python3-sklearn)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
work=${1:-$(mktemp -d)}
dcn="$work/dcn" dlrm="$work/dlrm"
mkdir -p "$dcn" "$dlrm"
if [ ! -f "$dcn/model.pt" ]; then
  echo "writing the synthetic DCN and its data to $dcn" >&2
  $py "$shared/synth_dcn.py" "$dcn" >/dev/null
fi
if [ ! -f "$dlrm/model.pt" ]; then
  echo "writing the synthetic DLRM and its data to $dlrm" >&2
  $py "$shared/synth_dlrm.py" "$dlrm" >/dev/null
fi
build_rq "$work"
rq="$work/rq"
for p in bf16 int8-dynamic pytorch-dynamic; do
  "$rq" quantize --model "$dcn/model.pt" --preset "$p" -o "$dcn/$p.safetensors" --quiet >/dev/null
done
"$rq" calibrate --model "$dcn/model.pt" --data "$dcn" -o "$dcn/ranges.json" --quiet >/dev/null
"$rq" quantize --model "$dcn/model.pt" --preset int8 --ranges "$dcn/ranges.json" -o "$dcn/int8.safetensors" --quiet >/dev/null
# Multiply-adds per row: every weight of the MLPs and the cross network once.
macs=$($py -c '
import sys, torch
sd = torch.load(sys.argv[1], map_location="cpu"); sd = sd.get("state_dict", sd)
print(sum(v.numel() for k, v in sd.items() if v.dim() == 2 and "embedding_bags" not in k))' "$dcn/model.pt")
variants=(fp32 bf16 int8-dynamic pytorch-dynamic int8)
declare -A a_rq
a_tfp32=() a_tint8=() a_dlrm=()
for _ in $(seq "$trials"); do
  for v in "${variants[@]}"; do
    m="$dcn/$v.safetensors"
    if [ "$v" = fp32 ]; then m="$dcn/model.pt"; fi
    a_rq[$v]="${a_rq[$v]:-} $(rq_eps "$m" "$dcn")"
  done
  torch=$($pin $py "$shared/torchrec_peer.py" "$dcn/model.pt" "$dcn" --time --threads 1 --batch 2048 --json)
  a_tfp32+=("$(echo "$torch" | peer_eps fp32 fp32)")
  a_tint8+=("$(echo "$torch" | peer_eps int8 fp32)")
  torch=$($pin $py "$shared/torch_peer.py" "$dlrm/model.pt" "$dlrm/data.npz" --time --threads 1 --batch 2048 --json)
  a_dlrm+=("$(echo "$torch" | peer_eps fp32 fp32)")
done
t_fp32=$(best "${a_tfp32[@]}") t_int8=$(best "${a_tint8[@]}") t_dlrm=$(best "${a_dlrm[@]}")
declare -A r
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086
  r[$v]=$(best ${a_rq[$v]})
done
gflops() { $py -c "print('%.1f' % ($1 * $macs * 2 / 1e9))"; }
echo "synth_dcn.py model ($macs multiply-adds per row) on $(cpu_name):"
echo "batch 2048, 1 thread pinned to one core, examples/s, best of $trials (same run):"
printf '  %-24s %7s  %s\n' "PyTorch fp32" "$t_fp32" "($(gflops $t_fp32) GFLOPS)"
printf '  %-24s %7s\n' "PyTorch int8-dynamic" "$t_int8"
printf '  %-24s %7s  %s\n' "rq fp32" "${r[fp32]}" "$(ratio ${r[fp32]} $t_fp32)x PyTorch fp32 (target 1.2; $(gflops ${r[fp32]}) GFLOPS)"
printf '  %-24s %7s  %s\n' "rq bf16" "${r[bf16]}" "$(ratio ${r[bf16]} $t_fp32)x PyTorch fp32"
printf '  %-24s %7s  %s\n' "rq pytorch-dynamic" "${r[pytorch-dynamic]}" "$(ratio ${r[pytorch-dynamic]} $t_int8)x PyTorch int8-dynamic"
printf '  %-24s %7s  %s\n' "rq int8-dynamic" "${r[int8-dynamic]}" "$(ratio ${r[int8-dynamic]} $t_fp32)x PyTorch fp32 (target 3), $(ratio ${r[int8-dynamic]} $t_int8)x PyTorch int8-dynamic (target 2)"
printf '  %-24s %7s  %s\n' "rq int8 (static)" "${r[int8]}" "$(ratio ${r[int8]} $t_fp32)x PyTorch fp32, $(ratio ${r[int8]} $t_int8)x PyTorch int8-dynamic"
echo "the paper's claim: rq int8-dynamic on this 7x model, ${r[int8-dynamic]} examples/s; PyTorch fp32 on synth_dlrm.py's DLRM, $t_dlrm examples/s ($(ratio ${r[int8-dynamic]} $t_dlrm)x)"
if echo '#include <oneapi/dnnl/dnnl.hpp>' | c++ -E -x c++ - >/dev/null 2>&1; then
  c++ -O2 "$shared/onednn_matmul.cpp" -ldnnl -o "$work/onednn_matmul"
  echo "ceiling: oneDNN matmul on the cross layers' V shape (M=2048 N=512 K=3456), same core:"
  echo "  $($pin "$work/onednn_matmul" 2048 512 3456 | tail -1)"
else
  echo "(no oneDNN headers: apt-get install -y libdnnl-dev for the ceiling line)"
fi
