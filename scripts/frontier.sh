#!/usr/bin/env bash
# The table-format frontier of issue 15: for each table format alone (every
# embedding table at that format, every FC layer fp32), the table bytes, the
# model's bytes as a share of fp32, and ΔNE and ΔAUC against the fp32 model
# with their 95% intervals, on each model below. One markdown table per model
# on stdout; progress on stderr.
#
# Per model and format: the plan is written (plan JSON, quantize/plan.go),
# `rq quantize` makes the file, `rq inspect --json` gives the table bytes and
# `rq eval --baseline` the point figures and the model bytes on the test
# rows. rq eval has no interval; the intervals come from the search's paired
# bootstrap (1000 resamples over the test rows, seed 1): `rq search --ladder
# "table=RUNG;fc=fp32" --max-evals 1` evaluates exactly one plan, every table
# at RUNG and the FC layers fp32 (its "all-lowest" step), and its trace holds
# that plan with ΔNE and ΔAUC as point, lo, hi. The script checks that the
# traced plan is the one it quantized and that the search's point ΔNE is
# eval's, so the interval belongs to the row it is printed on.
#
# The formats are data: the PLANS table below (name, search rung, layer plan
# fragment given to every table), and PLANS_FILE=FILE appends lines of the
# same form. A format without a search rung (rung "-") gets its point figures
# and no interval. Mixed tables are lines like the others (their hot rows
# come from the calibration's access counts, which the script computes).
#
# Models are data too (MODELS below): name, model file and data under
# SHARED (default ../shared beside the clone), calibration and test rows.
# Calibration (rq calibrate on the training rows) is done once per model and
# its ranges go to quantize and search: nothing in an fp32-FC plan reads them
# yet, but the mixed tables will take their hot rows from it.
#
# usage: scripts/frontier.sh [MODEL...]     (default: every model below)
# env:   SHARED=DIR  THREADS=N (default: all cores)  PLANS_FILE=FILE  WORK=DIR (kept)
# needs: go, jq
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$root/../shared}
threads=${THREADS:-$(nproc)}

# name  model  data  calibration-rows  test-rows (model and data under $shared)
MODELS='
criteo-18k   criteo-18k/dlrm-criteo.pt       criteo-18k/dlrm-processed.npz    0:15429  15429:16715
dcn          criteo-torchrec/dcn.safetensors criteo-torchrec/day_0_dense.npy  0:15429  15429:16715
'

# name  search-rung ("-": none)  plan fragment for every table
PLANS='
int8        int8        {"precision":"int8"}
int4        int4        {"precision":"int4"}
int2        int2        {"precision":"int2"}
mxfp8_e4m3  mxfp8_e4m3  {"precision":"mxfp8_e4m3"}
mxfp8_e5m2  mxfp8_e5m2  {"precision":"mxfp8_e5m2"}
mxfp6_e3m2  mxfp6_e3m2  {"precision":"mxfp6_e3m2"}
mxfp6_e2m3  mxfp6_e2m3  {"precision":"mxfp6_e2m3"}
mxfp4       mxfp4       {"precision":"mxfp4"}
mxint8      mxint8      {"precision":"mxint8"}
mixed-int8-int2@0.01   mixed-int8-int2@0.01   {"precision":"mixed","hot_precision":"int8","cold_precision":"int2","hot_share":0.01}
mixed-int8-int2@0.05   mixed-int8-int2@0.05   {"precision":"mixed","hot_precision":"int8","cold_precision":"int2","hot_share":0.05}
mixed-int8-int2@0.2    mixed-int8-int2@0.2    {"precision":"mixed","hot_precision":"int8","cold_precision":"int2","hot_share":0.2}
mixed-int8-int4@0.05   mixed-int8-int4@0.05   {"precision":"mixed","hot_precision":"int8","cold_precision":"int4","hot_share":0.05}
mixed-int8-mxfp4@0.05  mixed-int8-mxfp4@0.05  {"precision":"mixed","hot_precision":"int8","cold_precision":"mxfp4","hot_share":0.05}
'
if [ -n "${PLANS_FILE:-}" ]; then
  PLANS+=$'\n'$(cat "$PLANS_FILE")
fi

want=("$@")
for w in "${want[@]}"; do
  if ! awk -v w="$w" '$1 == w { found = 1 } END { exit !found }' <<<"$MODELS"; then
    echo "frontier.sh: unknown model $w (known: $(awk 'NF { printf("%s ", $1) }' <<<"$MODELS"))" >&2
    exit 2
  fi
done
command -v jq >/dev/null || { echo "frontier.sh: needs jq" >&2; exit 1; }
if [ -n "${WORK:-}" ]; then
  work=$WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
echo "building rq into $work" >&2
(cd "$root" && go build -o "$work/rq" .)
rq="$work/rq"

# plan_lines: the PLANS lines, comments and blank lines dropped.
plan_lines() { printf '%s\n' "$PLANS" | sed -e 's/#.*//' -e '/^[[:space:]]*$/d'; }

# pct A B: 100·A/B to one decimal.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf("%.1f\n", 100 * a / b) }'; }

# iv INTERVAL-JSON DIGITS: "point [lo, hi]", signed, DIGITS decimals.
iv() {
  jq -r '"\(.point) \(.lo) \(.hi)"' <<<"$1" |
    awk -v d="$2" '{ f = "%+." d "f"; printf(f " [" f ", " f "]\n", $1, $2, $3) }'
}

# fmt X DIGITS: X signed with DIGITS decimals.
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf("%+." d "f\n", x) }'; }

run_model() {
  local name=$1 model=$shared/$2 data=$shared/$3 cal=$4 test=$5
  local dir=$work/$name
  mkdir -p "$dir"
  for f in "$model" "$data"; do
    [ -e "$f" ] || { echo "frontier.sh: $name: $f is missing (SHARED=$shared)" >&2; return 1; }
  done
  echo "$name: calibrating on rows $cal" >&2
  "$rq" calibrate -q --model "$model" --data "$data" --rows "$cal" --threads "$threads" -o "$dir/ranges.json" >/dev/null
  local info tables fp32_tables fp32_bytes
  info=$("$rq" inspect --json "$model")
  tables=$(jq -c '[.layers[] | select(.kind == "embedding") | .name]' <<<"$info")
  fp32_tables=$(jq '[.layers[] | select(.kind == "embedding") | .bytes] | add' <<<"$info")
  fp32_bytes=$(jq '.fp32_bytes' <<<"$info")
  local base
  base=$("$rq" eval -q --model "$model" --data "$data" --rows "$test" --threads "$threads" --json)

  echo
  echo "### $name: $(basename "$model"), test rows $test ($(jq .examples <<<"$base") examples), fp32 NE $(jq '.ne*100000|round/100000' <<<"$base"), AUC $(jq '.auc*100000|round/100000' <<<"$base")"
  echo
  echo "| tables | table bytes (% of fp32) | model, % of fp32 ($fp32_bytes B) | ΔNE % [95% CI] | ΔAUC [95% CI] |"
  echo "|---|---:|---:|---|---|"
  echo "| fp32 | $fp32_tables (100.0%) | 100.0 | 0 | 0 |"

  local pname rung frag
  while read -r pname rung frag; do
    echo "$name: $pname" >&2
    local safe=${pname//[^A-Za-z0-9_.-]/_}
    local plan=$dir/$safe.plan.json q=$dir/$safe.safetensors
    jq -n --argjson t "$tables" --argjson f "$frag" '{version: 1, layers: ($t | map({key: ., value: $f}) | from_entries)}' >"$plan"
    "$rq" quantize -q --model "$model" --plan "$plan" --ranges "$dir/ranges.json" -o "$q" >/dev/null
    local qtables ev dne dauc
    qtables=$("$rq" inspect --json "$q" | jq '[.layers[] | select(.kind == "embedding") | .bytes] | add')
    ev=$("$rq" eval -q --model "$q" --baseline "$model" --data "$data" --rows "$test" --threads "$threads" --json)
    dne=$(fmt "$(jq .delta.ne_pct <<<"$ev")" 4)
    dauc=$(fmt "$(jq .delta.auc <<<"$ev")" 5)
    if [ "$rung" != "-" ]; then
      local trace=$dir/$safe.trace.json rc=0
      "$rq" search -q --model "$model" --data "$data" --rows "$test" --threads "$threads" --ranges "$dir/ranges.json" \
        --ladder "table=$rung;fc=fp32" --max-evals 1 --max-ne-delta 1000 \
        -o "$dir/$safe.search-plan.json" --trace "$trace" >/dev/null || rc=$?
      [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "frontier.sh: $name $pname: rq search exited $rc" >&2; return 1; }
      local entry
      entry=$(jq -c '[.entries[] | select(.step == "all-lowest")][0]' "$trace")
      # The interval is printed only for the very plan quantized above, and
      # only when the search's point estimate is eval's.
      if [ "$entry" = null ] || ! jq -e --slurpfile p "$plan" '.plan == $p[0].layers' <<<"$entry" >/dev/null; then
        echo "frontier.sh: $name $pname: the search's plan is not the quantized one; no interval" >&2
        dne+=" (no interval)"
      elif ! jq -e --argjson e "$ev" '(.delta_ne_pct.point - $e.delta.ne_pct | fabs) < 1e-9 and (.delta_auc.point - $e.delta.auc | fabs) < 1e-12' <<<"$entry" >/dev/null; then
        echo "frontier.sh: $name $pname: search ΔNE $(jq .delta_ne_pct.point <<<"$entry") differs from eval's $(jq .delta.ne_pct <<<"$ev"); no interval" >&2
        dne+=" (no interval: search and eval differ)"
      else
        dne=$(iv "$(jq -c .delta_ne_pct <<<"$entry")" 4)
        dauc=$(iv "$(jq -c .delta_auc <<<"$entry")" 5)
      fi
    fi
    echo "| $pname | $qtables ($(pct "$qtables" "$fp32_tables")%) | $(pct "$(jq .bytes <<<"$ev")" "$fp32_bytes") | $dne | $dauc |"
  done < <(plan_lines)
}

while read -r name rest; do
  [ -n "$name" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086 # the table's fields split on purpose
  run_model "$name" $rest
done <<<"$MODELS"
echo
echo "Machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $threads threads; rq $(cd "$root" && git describe --always --dirty)."
