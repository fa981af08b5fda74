#!/usr/bin/env bash
# Times rq eval against PyTorch on the same machine, in the same run, on the
# MLPerf-shaped DLRM that ../shared/bench/synth_dlrm.py makes (defaults:
# 26 tables x 100k x 128, bottom 13-512-256-128, top 1024-1024-512-256-1).
#
# usage: scripts/bench-eval.sh [WORKDIR]     (needs python3-torch, python3-sklearn)
# Prints examples/s for each and the ratio rq/PyTorch; batch 2048, one thread.
set -euo pipefail
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
rq_eps=$("$work/rq" eval --model "$work/model.pt" --data "$work/data.npz" --batch 2048 --threads 1 --quiet --json |
  $py -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["examples_per_sec"])')
torch_eps=$($py "$shared/torch_peer.py" "$work/model.pt" "$work/data.npz" --time --threads 1 --batch 2048 --json |
  $py -c 'import json,sys; r=json.load(sys.stdin)["rows"]; print("%.0f" % [x for x in r if x["mlp"]=="fp32" and x["emb"]=="fp32"][0]["examples_per_s"])')
echo "fp32 eval, batch 2048, 1 thread: rq $rq_eps examples/s, PyTorch $torch_eps examples/s, ratio $($py -c "print('%.2f' % ($rq_eps/$torch_eps))")"
