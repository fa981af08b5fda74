#!/usr/bin/env bash
# Sends SIGTERM (or the signal in $SIG) to each long rq command a few seconds
# in, and reports its exit code, how long it took to stop, and whether the
# previous output survived unchanged (issue 12's "SIGTERM during any long
# command returns within 1 s with the prior output intact").
#
#   scripts/stop-check.sh [../shared/criteo-18k]
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-../shared/criteo-18k}
SIG=${SIG:-TERM}
go build -o /tmp/rq-stop-check .
RQ=/tmp/rq-stop-check
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
M=$S/dlrm-criteo.pt D=$S/dlrm-processed.npz
$RQ quantize --model "$M" --preset int8-dynamic -o "$W/q.safetensors" -q >/dev/null
$RQ calibrate --model "$M" --data "$D" --rows 0:4000 -o "$W/ranges.json" -q >/dev/null
$RQ search --model "$M" --ranges "$W/ranges.json" --data "$D" --rows 15429:16715 --max-ne-delta 0.05 -o "$W/prod-plan.json" -q >/dev/null
# A gzip of 10 GB of newlines: eval --bad-rows skip reads it for minutes.
(set +o pipefail; yes '' | head -c 2000000000 | gzip -1 >"$W/newlines.tsv.gz")

printf '%-10s %-6s %-9s %s\n' command exit stop_ms previous_output
check() {
	local name=$1 delay=$2 out=$3; shift 3
	echo previous >"$out"
	$RQ "$@" -q >/dev/null 2>"$W/err" &
	local pid=$!
	sleep "$delay"
	local t0
	t0=$(date +%s%N)
	kill -s "$SIG" $pid 2>/dev/null || true
	local code=0
	wait $pid || code=$?
	local ms=$((($(date +%s%N) - t0) / 1000000))
	local prev=changed
	[ "$(cat "$out")" = previous ] && prev=intact
	printf '%-10s %-6s %-9s %s  %s\n' "$name" "$code" "$ms" "$prev" "$(tr -d '\0' <"$W/err" | head -c 100)"
}
check eval 1.5 "$W/state.json" eval --model "$M" --data "$W/newlines.tsv.gz" --data-format tsv --bad-rows skip --state-out "$W/state.json"
check calibrate 1.5 "$W/r.json" calibrate --model "$M" --data "$D" --bins 65536 -o "$W/r.json"
check quantize 0.05 "$W/q2.safetensors" quantize --model "$M" --preset int8-int4 --ranges "$W/ranges.json" -o "$W/q2.safetensors"
check search 0.4 "$W/plan.json" search --model "$M" --ranges "$W/ranges.json" --data "$D" --max-ne-delta 0.05 -o "$W/plan.json"
check debug 1.5 "$W/report.html" debug --model "$M" --quantized "$W/q.safetensors" --data "$D" --html "$W/report.html"
check monitor 0.4 "$W/trend.svg" monitor --plan "$W/prod-plan.json" --ranges "$W/ranges.json" --snapshot "$M" --data "$D" --windows 16 --plot "$W/trend.svg"
check bench 1.5 "$W/none" bench --kernel gemm-fp32 --shapes 2048,1024,1024 --min-time 5s
