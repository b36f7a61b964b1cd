#!/usr/bin/env bash
# Installs dependencies, builds shoal and runs every test (unit + integration).
#   bash tests/run.sh              normal build (build-test/)
#   bash tests/run.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
# Ends with a line "N passed, N failed[, N skipped]" counted from meson's test log.
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
if [ ! -d "$dir/meson-info" ]; then
	meson setup "$dir" "${opts[@]}" >/dev/null || exit 1
fi
ninja -C "$dir" || exit 1
meson test -C "$dir" --print-errorlogs --num-processes 2
rc=$?
bash tests/summary.sh "$dir/meson-logs/testlog.json"
exit $rc
