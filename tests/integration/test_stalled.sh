#!/usr/bin/env bash
# A job with no worker to run it is not a silent hang (no --job-timeout, the default):
#  - `shoal run` (with -q, stderr not a terminal) prints one warning on stderr a few seconds
#    after it starts waiting with no worker connected, saying what is wrong and what to do;
#  - `shoal status ID` shows it (a "waiting" row; `stalled`/`stalled_since_ms` in --json);
#  - the job keeps waiting: a worker that connects then runs it, the result is right and the
#    stall is cleared; the warning was printed exactly once;
#  - the same for `shoal wait` after the only worker is stopped.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_master

seq 0 499 | awk '{ print $1 * $1 }' >"$T/square.ref"

# stalled_json ID: the job's `stalled` field (empty if null).
stalled_json() { job_json "$1" | jq -r '.stalled // empty'; }
has_stalled() { [ -n "$(stalled_json "$1")" ]; }
warned() { grep -q "job $2 is not progressing" "$1"; }

# 1. shoal run, no worker at all.
shoal run -q --op square --range 0:500 --partitions 5 >"$T/run.out" 2>"$T/run.err" &
RUN=$!
wait_for 600 "shoal run warns that job 1 is stalled" warned "$T/run.err" 1
grep -q -- "--job-timeout" "$T/run.err" || fail "the warning does not name --job-timeout: $(cat "$T/run.err")"
grep -q "no worker has been connected since" "$T/run.err" || fail "the warning does not say why: $(cat "$T/run.err")"
alive "$RUN" || fail "shoal run ended while the job waited for workers: $(cat "$T/run.err")"
has_stalled 1 || fail "shoal status --json does not show the stall: $(job_json 1)"
[ "$(job_json 1 | jq -r .state)" = queued ] || fail "job 1 is not queued: $(job_json 1)"
[ "$(job_json 1 | jq '.stalled_since_ms > 0')" = true ] || fail "no stalled_since_ms: $(job_json 1)"
shoal status 1 >"$T/status.txt"
grep -q "^waiting .*no worker has been connected since" "$T/status.txt" || fail "shoal status shows no waiting row: $(cat "$T/status.txt")"

start_worker a --slots 2
rc=0
wait "$RUN" || rc=$?
[ "$rc" = 0 ] || fail "shoal run exited $rc once a worker came: $(cat "$T/run.err")"
same_files "$T/square.ref" "$T/run.out" "square once a worker came"
n=$(grep -c "is not progressing" "$T/run.err" || true)
[ "$n" = 1 ] || fail "expected one warning, shoal run printed $n: $(cat "$T/run.err")"
[ -z "$(stalled_json 1)" ] || fail "job 1 still shows a stall after it succeeded: $(job_json 1)"

# 2. shoal wait, after the only worker stopped.
stop_pid "${WORKER_PID[a]}"
[ "$STOP_RC" = 0 ] || fail "worker a exited $STOP_RC on SIGTERM"
wait_workers 0
id=$(shoal submit --op square --range 0:500 --partitions 5)
[ "$id" = 2 ] || fail "submit printed '$id'"
shoal wait "$id" >"$T/wait.out" 2>"$T/wait.err" &
WAIT=$!
wait_for 600 "shoal wait warns that job 2 is stalled" warned "$T/wait.err" 2
alive "$WAIT" || fail "shoal wait ended while the job waited: $(cat "$T/wait.err")"
grep -q "event=stalled" "$T/master.log" || fail "the master did not log the stall"
start_worker b --slots 2
rc=0
wait "$WAIT" || rc=$?
[ "$rc" = 0 ] || fail "shoal wait exited $rc once a worker came: $(cat "$T/wait.err")"
run_ok "$T/result2.out" result "$id"
same_files "$T/square.ref" "$T/result2.out" "job 2's result"
[ -z "$(stalled_json 2)" ] || fail "job 2 still shows a stall: $(job_json 2)"
log "ok: stalls reported once by run and wait, shown by status, cleared when a worker came"
