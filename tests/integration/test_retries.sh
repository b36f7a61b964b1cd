#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# Failure accounting: a task's failures and a worker's failures are counted apart.
#  - a task that fails everywhere fails its job after --retries attempts, with the task's own
#    error text; its attempts ran on different workers (a retry avoids the worker the last
#    attempt failed on); the job counts the failures (task_failures) and so does each worker
#    (tasks_failed);
#  - a broken worker (every command fails there) cannot use up a task's retries: each task
#    that fails there is retried on the healthy worker, so the job succeeds with --retries 2,
#    and no task fails twice; failing 5 attempts in a row quarantines the broken worker
#    (logged), after which the healthy worker takes everything.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_master
mkdir -p "$T/work-good" "$T/work-bad"
start_worker good --slots 1 --allow-exec --cache-dir "$T/cache-good" --work-dir "$T/work-good"
start_worker bad --slots 1 --allow-exec --cache-dir "$T/cache-bad" --work-dir "$T/work-bad"
wait_workers 2
good_id=$(shoal workers --json | jq '.[] | select(.name == "good") | .worker_id')
bad_id=$(shoal workers --json | jq '.[] | select(.name == "bad") | .worker_id')

# failures JOB: "TASK ATTEMPT WORKER" of each task_failed line of job JOB in the master's log.
failures() {
	sed -n "s/.*job=$1 task=\([0-9]*\) attempt=\([0-9]*\) worker=\([0-9]*\) event=task_failed.*/\1 \2 \3/p" \
		"$T/master.log"
}

# ---- a task failing everywhere: --retries attempts, on both workers, its own error text
expect_exit 1 shoal run --exec 'echo "record 42 is rotten" >&2; exit 7' --range 0:1 --retries 3 -q
grep -q "record 42 is rotten" "$T/err" || fail "the job's error lacks the task's text: $(cat "$T/err")"
id=$(shoal jobs --json | jq '.[-1].job_id')
st=$(job_json "$id")
[ "$(jq -r .state <<<"$st")" = failed ] || fail "job $id: $st"
[ "$(jq .task_failures <<<"$st")" = 3 ] || fail "job $id counts $(jq .task_failures <<<"$st") task failures, expected 3: $st"
failures "$id" >"$T/f1"
[ "$(wc -l <"$T/f1")" = 3 ] || fail "job $id: $(wc -l <"$T/f1") failed attempts logged: $(cat "$T/f1")"
[ "$(awk '{ print $3 }' "$T/f1" | sort -u | wc -l)" = 2 ] ||
	fail "the attempts of job $id did not run on both workers: $(cat "$T/f1")"
awk 'NR > 1 && $3 == prev { bad = 1 } { prev = $3 } END { exit bad }' "$T/f1" ||
	fail "job $id: a retry ran on the worker its last attempt failed on: $(cat "$T/f1")"
wf=$(shoal workers --json | jq '[.[].tasks_failed] | add')
[ "$wf" = 3 ] || fail "the workers count $wf failed attempts, expected 3: $(shoal workers --json)"
log "a task failing everywhere: attempts on workers $(awk '{ print $3 }' "$T/f1" | tr '\n' ' ')- job failed with its error"

# ---- a broken worker: every task that fails there succeeds on the other, with --retries 2
BROKEN="case \"\$PWD\" in \"$T/work-bad\"/*) echo 'broken host' >&2; exit 3 ;; esac; cat"
seq 0 39 >"$T/seq.ref"
for strategy in round-robin dynamic least-loaded; do
	# A fresh broken worker for each strategy (the last one may be quarantined).
	stop_pid "${WORKER_PID[bad]}"
	wait_workers 1
	start_worker bad --slots 1 --allow-exec --cache-dir "$T/cache-bad" --work-dir "$T/work-bad"
	wait_workers 2
	bad_id=$(shoal workers --json | jq '.[] | select(.name == "bad") | .worker_id')
	id=$(shoal submit --exec "$BROKEN" --range 0:40 --partitions 20 --retries 2 --strategy "$strategy")
	expect_exit 0 shoal wait "$id"
	run_ok "$T/out" result "$id"
	same_files "$T/seq.ref" "$T/out" "$strategy: a job with a broken worker"
	failures "$id" >"$T/f2"
	awk -v b="$bad_id" '$3 != b || $2 != 1 { exit 1 }' "$T/f2" ||
		fail "$strategy: job $id: a failure other than a first attempt on the broken worker: $(cat "$T/f2")"
	[ -s "$T/f2" ] || log "note: $strategy: the broken worker took no task of job $id"
	log "$strategy: job $id succeeded; $(wc -l <"$T/f2") tasks failed once on the broken worker, then ran on worker $good_id"
done
grep -q "name=bad event=quarantined" "$T/master.log" ||
	fail "the broken worker was not quarantined: $(grep event=task_failed "$T/master.log")"
[ "$(grep -c "event=task_failed" "$T/master.log")" -gt 3 ] ||
	fail "the broken worker never failed a task: the test did not test anything"
log "ok"
