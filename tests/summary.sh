#!/usr/bin/env bash
# Prints "N passed, N failed[, N skipped]" for one or more meson testlog.json files.
set -uo pipefail
cat "$@" 2>/dev/null | jq -rs '
  (map(select(.result == "OK" or .result == "EXPECTEDFAIL")) | length) as $p |
  (map(select(.result == "SKIP")) | length) as $s |
  (length - $p - $s) as $f |
  "\($p) passed, \($f) failed" + (if $s > 0 then ", \($s) skipped" else "" end)'
