#!/usr/bin/env bash
# Installs dependencies, builds shoal and runs every test (unit + integration).
#   bash tests/run.sh              normal build (build-test/)
#   bash tests/run.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   bash tests/run.sh --fuzz       clang + libFuzzer (build-fuzz/): the 'fuzz' suite only, each
#                                  fuzz target for SHOAL_FUZZ_SECONDS (default 20) seconds
# Ends with a line "N passed, N failed" counted from meson's test log (skipped tests are named on the line before).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/install-deps.sh || exit 1

dir=build-test
opts=(-Dwerror=true)
if [ "${1:-}" = "--sanitize" ]; then
	dir=build-asan
	opts+=(-Db_sanitize=address,undefined)
fi
if [ "${1:-}" = "--fuzz" ]; then
	dir=build-fuzz
	if [ ! -d "$dir/meson-info" ]; then
		CC=clang meson setup "$dir" -Dwerror=true -Dfuzz=true -Db_lundef=false \
			-Dfuzz_seconds="${SHOAL_FUZZ_SECONDS:-20}" >/dev/null || exit 1
	fi
	# meson test builds what the fuzz suite needs (the targets), not the whole tree.
	meson test -C "$dir" --suite fuzz --print-errorlogs --num-processes 2
	rc=$?
	jq -r 'select(.name | contains("fuzz / ")) | .stdout' "$dir/meson-logs/testlog.json" |
		grep -E 'executions|CRASH' || true
	bash tests/summary.sh "$dir/meson-logs/testlog.json"
	exit $rc
fi
if [ ! -d "$dir/meson-info" ]; then
	meson setup "$dir" "${opts[@]}" >/dev/null || exit 1
fi
ninja -C "$dir" || exit 1
meson test -C "$dir" --print-errorlogs --num-processes 2
rc=$?
bash tests/summary.sh "$dir/meson-logs/testlog.json"
exit $rc
