#!/usr/bin/env bash
# tests/fuzz/ci.sh EXE TARGET SECONDS: one libFuzzer target as a meson test (suite 'fuzz',
# -Dfuzz=true builds). Replays the seed corpus and the regression inputs
# (tests/fuzz/regressions/TARGET: crash inputs found earlier, kept once fixed), then fuzzes for
# SECONDS on a scratch copy of the corpus. A crash fails the test; its input is copied to
# tests/fuzz/crashes/TARGET/ (after the fix, move it to regressions/TARGET/ so every build
# replays it). Prints the executions reached.
set -u
exe=$1
t=$2
secs=$3
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz-$t.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/art"

seeds=()
for d in "$here/corpus/$t" "$here/regressions/$t"; do
	[ -d "$d" ] || continue
	for f in "$d"/*; do [ -f "$f" ] && seeds+=("$f"); done
done
if ((${#seeds[@]})); then
	# Files as arguments: libFuzzer runs each once.
	"$exe" -rss_limit_mb=2048 -timeout=10 "${seeds[@]}" >"$work/replay.log" 2>&1 || {
		tail -n 40 "$work/replay.log"
		echo "$t: a seed or regression input fails"
		exit 1
	}
	cp "$here/corpus/$t/"* "$work/corpus/" 2>/dev/null
fi

"$exe" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$work/art/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
cov=$(grep -Eo 'cov: [0-9]+' "$work/fuzz.log" | tail -1)
artifacts=("$work/art/"*)
if [ $rc -ne 0 ] || [ -e "${artifacts[0]}" ]; then
	mkdir -p "$here/crashes/$t"
	cp "$work/art/"* "$here/crashes/$t/" 2>/dev/null
	grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)|^ +#[0-9]+ ' "$work/fuzz.log" | head -20
	echo "$t: CRASH (exit $rc) after ${execs:-?} executions; input saved in tests/fuzz/crashes/$t/"
	echo "replay: $exe tests/fuzz/crashes/$t/FILE; once fixed, move it to tests/fuzz/regressions/$t/"
	exit 1
fi
echo "$t: ${#seeds[@]} seeds/regressions replayed; ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, no crash"
