#!/usr/bin/env bash
# --task-timeout stops an attempt that runs too long (its command's process group is killed)
# and retries it; a task that times out on every attempt fails its job with a reason that says
# so. And --input-path given relative to the client's directory reaches the workers as the
# same file.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

MARK="40.$$$(date +%N)"

start_master
start_worker a --slots 2 --allow-exec --cache-dir "$T/cache-a"
start_worker b --slots 2 --allow-exec --cache-dir "$T/cache-b"
wait_workers 2

# ---- the first attempt hangs, the second finishes: the job succeeds with the right result
seq 1 100 >"$T/nums.txt"
start=$(date +%s%N)
run_ok "$T/out" run --exec "if [ \"\$SHOAL_ATTEMPT\" = 1 ]; then sleep $MARK; fi; cat" \
	--input "$T/nums.txt" --partitions 2 --task-timeout 1 --retries 3 -q
same_files "$T/nums.txt" "$T/out" "a retried attempt after a timeout"
elapsed=$((($(date +%s%N) - start) / 1000000))
[ "$elapsed" -lt 30000 ] || fail "the timed-out attempts were not stopped ($elapsed ms)"
grep -q "ran longer than the task timeout" "$T/master.log" ||
	fail "the master logged no timeout"

# ---- every attempt hangs: the job fails, saying why, and no sleep survives
expect_exit 1 shoal run --exec "sleep $MARK" --range 0:1 --task-timeout 0.5 --retries 2 -q
grep -q "task timeout" "$T/err" || fail "timeout failure: error $(cat "$T/err")"
for _ in $(seq 50); do
	pgrep -f "sleep $MARK" >/dev/null || break
	sleep 0.1
done
! pgrep -f "sleep $MARK" >/dev/null || fail "a timed-out command is still running"

# ---- bad values are usage errors
expect_exit 2 shoal run --op count --range 0:10 --task-timeout 0
expect_exit 2 shoal run --op count --range 0:10 --task-timeout soon

# ---- a relative --input-path is the client's file
mkdir -p "$T/here"
seq 1 1000 >"$T/here/rel.txt"
(cd "$T/here" && shoal run --op count --input-path rel.txt -q) >"$T/out" 2>"$T/err" ||
	fail "relative --input-path: $(cat "$T/err")"
[ "$(cat "$T/out")" = 1000 ] || fail "relative --input-path counted '$(cat "$T/out")'"

log "ok"
