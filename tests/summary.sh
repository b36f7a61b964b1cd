#!/usr/bin/env bash
# Counts the results in one or more meson testlog.json files. Skipped tests (exit 77: e.g. the
# valgrind test in a sanitizer build) are named on a line of their own first, so that the last
# line is always exactly "N passed, N failed".
set -uo pipefail
cat "$@" 2>/dev/null | jq -rs '
  (map(select(.result == "OK" or .result == "EXPECTEDFAIL")) | length) as $p |
  (map(select(.result == "SKIP")) | map(.name)) as $s |
  (length - $p - ($s | length)) as $f |
  (if ($s | length) > 0 then "\($s | length) skipped: \($s | join(", "))\n" else "" end) +
  "\($p) passed, \($f) failed"'
