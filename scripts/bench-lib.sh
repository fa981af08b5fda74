# Shared by scripts/bench-eval.sh and scripts/bench-dcn.sh (source it): one
# thread on one core for rq and the PyTorch peers, best-of figures, ratios.
#
# "One thread" means one core for both: torch.set_num_threads(1) does not
# bind the BLAS Debian's PyTorch calls (OpenBLAS, with its own thread pool),
# which otherwise runs PyTorch's GEMMs on every core. So both programs run
# pinned to one CPU (taskset) with the BLAS/OpenMP thread counts set to 1.
# Each figure is the best of TRIALS runs (default 3), alternating programs,
# because machines are noisy.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
pin=""
if command -v taskset >/dev/null; then pin="taskset -c 0"; fi
trials=${TRIALS:-3}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared="$root/../shared/bench"
py=/usr/bin/python3
if ! $py -c 'import torch, sklearn' 2>/dev/null; then
  echo "needs PyTorch and scikit-learn: apt-get install -y python3-torch python3-sklearn" >&2
  exit 1
fi

# build_rq DIR: builds rq into DIR/rq.
build_rq() { (cd "$root" && go build -o "$1/rq" .); }

# rq_eps MODEL DATA: rq eval's examples/s, batch 2048, one thread, pinned.
rq_eps() {
  $pin "$rq" eval --model "$1" --data "$2" --batch 2048 --threads 1 --quiet --json |
    $py -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["examples_per_sec"])'
}

# peer_eps MLP EMB: examples/s of the peer's row with those precisions, from
# the peer's --json output on stdin.
peer_eps() {
  $py -c 'import json,sys; r=json.load(sys.stdin)["rows"]; print("%.0f" % [x for x in r if x["mlp"]==sys.argv[1] and x["emb"]==sys.argv[2]][0]["examples_per_s"])' "$1" "$2"
}

# best X...: the largest of its arguments.
best() { $py -c "import sys; print(max(int(x) for x in sys.argv[1:]))" "$@"; }

# ratio A B: A/B to two decimals.
ratio() { $py -c "print('%.2f' % ($1/$2))"; }

# cpu_name: the CPU the figures were measured on.
cpu_name() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1; }
