#!/bin/sh
# fuzz.sh [DURATION] [PATTERN]: run every parser fuzz target for DURATION
# (default 3m) each, one at a time, and print a summary line per target:
# package, target, wall time (compiling included), executions, new corpus entries, verdict. Failing
# inputs land in the package's testdata/fuzz/<Target>/ (commit them with the
# fix: they become seeds that CI runs). Minimizing a new input is capped at
# 10s: uncapped (60s), FuzzParseTorch spends its whole time minimizing and
# runs a few hundred inputs.
set -eu
dur=${1:-3m}
pattern=${2:-.}
cd "$(dirname "$0")/.."
targets=$(grep -rl '^func Fuzz' --include='*_test.go' . | while read -r f; do
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "$(dirname "$f") $t"
	done
done | sort -u | grep -E "$pattern")
failed=$(mktemp)
echo "$targets" | while read -r pkg target; do
	log=$(mktemp)
	start=$(date +%s)
	if go test -run '^$' -fuzz "^$target\$" -fuzztime "$dur" -fuzzminimizetime 10s -parallel 1 "$pkg" >"$log" 2>&1; then
		verdict=ok
	else
		verdict=FAILED
		echo "$pkg $target" >>"$failed"
	fi
	secs=$(($(date +%s) - start))
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	new=$(grep -o 'total: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	printf '%-12s %-24s %5ss %12s execs %6s corpus  %s\n' "$pkg" "$target" "$secs" "${execs:-?}" "${new:-?}" "$verdict"
	[ "$verdict" = ok ] || sed -n '1,40p' "$log"
	rm -f "$log"
done
if [ -s "$failed" ]; then
	echo "failed: $(tr '\n' ' ' <"$failed")"
	rm -f "$failed"
	exit 1
fi
rm -f "$failed"
