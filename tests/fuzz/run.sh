#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS: builds the libFuzzer targets (clang, build-fuzz) and runs each for
# SECONDS on a scratch copy of its seed corpus (tests/fuzz/corpus/TARGET). Prints the
# executions each target reached; exits non-zero if any target crashed, leaving the crash
# inputs in tests/fuzz/crashes/TARGET/ (replay one: build-fuzz/tests/fuzz/TARGET FILE).
set -u
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SHOAL_FUZZ_BUILD:-$root/build-fuzz}

cd "$root" || exit 2
# Every tests/fuzz/fuzz_*.c is a target.
mapfile -t targets < <(python3 "$here/list_targets.py" "$here")
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_lundef=false >"$build.setup.log" 2>&1 || {
		cat "$build.setup.log"; echo "run.sh: meson setup failed" >&2; exit 2; }
	rm -f "$build.setup.log"
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/}" >/dev/null || {
	ninja -C "$build" "${targets[@]/#/tests/fuzz/}"; echo "run.sh: build failed" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=0
for t in "${targets[@]}"; do
	mkdir -p "$work/$t" "$work/$t-art"
	cp "$here/corpus/$t/"* "$here/regressions/$t/"* "$work/$t/" 2>/dev/null
	log="$work/$t.log"
	"$build/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$work/$t-art/" "$work/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
	if [ $rc -ne 0 ] || ls "$work/$t-art/" | grep -q .; then
		failed=1
		mkdir -p "$here/crashes/$t"
		cp "$work/$t-art/"* "$here/crashes/$t/" 2>/dev/null
		cp "$log" "$here/crashes/$t/$t.log"
		echo "$t: CRASH (exit $rc) after ${execs:-?} executions; inputs and log in tests/fuzz/crashes/$t/"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 | sed 's/^/    /'
		grep -E '^ +#[0-9]+ ' "$log" | head -8 | sed 's/^/    /'
	else
		echo "$t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, corpus $(ls "$work/$t" | wc -l) inputs, no crash"
	fi
done
exit $failed
