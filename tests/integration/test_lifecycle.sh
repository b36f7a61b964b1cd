#!/usr/bin/env bash
# A job's life through the client commands (submit, status, wait, result -o, jobs, workers,
# cancel) and the daemons' lives: a worker started before its master registers once the master
# is up, SIGTERM stops master and workers promptly with exit status 0.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- a worker started before the master: it keeps trying and registers once the master is up
MASTER_PORT=$(free_port)
export SHOAL_MASTER=127.0.0.1:$MASTER_PORT
start_worker early --slots 2
sleep 1.5 # a few failed attempts
alive "${WORKER_PID[early]}" || fail "a worker without a master exited: $(cat "$T/worker-early.log")"
start_master
[ "$SHOAL_MASTER" = "127.0.0.1:$MASTER_PORT" ] || fail "the master is not on the chosen port"
wait_workers 1 # bounded: about 10 s, more than the worker's first backoff steps
start_worker late --slots 3
wait_workers 2

# ---- submit prints the id; wait, status, result
id=$(shoal submit --op square --range 0:10 --name lifecycle-square --priority 3)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id', not a job id"
expect_exit 0 shoal wait "$id"
st=$(job_json "$id")
jq -e --argjson id "$id" '
	.job_id == $id and .state == "succeeded" and .op == "square" and .name == "lifecycle-square"
	and .priority == 3 and .tasks_total >= 1 and .tasks_done == .tasks_total
	and .tasks_running == 0 and .task_failures == 0 and .records == 10 and .result_size == 26
	and .submitted_ms > 0 and .started_ms >= .submitted_ms and .finished_ms >= .started_ms
	and .error == null' <<<"$st" >/dev/null || fail "status --json of job $id: $st"
expect_exit 0 shoal wait "$id" --json
jq -e '.state == "succeeded"' "$T/out" >/dev/null || fail "wait --json: $(cat "$T/out")"
seq 0 9 | awk '{ print $1 * $1 }' >"$T/square10.ref"
expect_exit 0 shoal result "$id" -o "$T/result.txt"
[ ! -s "$T/out" ] || fail "result -o also wrote to stdout: $(head -c 200 "$T/out")"
same_files "$T/square10.ref" "$T/result.txt" "result -o"
expect_exit 0 shoal result "$id"
same_files "$T/square10.ref" "$T/out" "result to stdout"
expect_exit 0 shoal run --op square --range 0:10 -o "$T/run.txt"
same_files "$T/square10.ref" "$T/run.txt" "run -o"
expect_exit 0 shoal status "$id"
grep -q succeeded "$T/out" || fail "status (table) lacks the state: $(cat "$T/out")"
sid=$(shoal submit --json --op sum --range 0:10 | jq .job_id)
[[ "$sid" =~ ^[0-9]+$ ]] || fail "submit --json gave no job_id"
expect_exit 0 shoal wait "$sid"
[ "$(shoal result "$sid")" = 45 ] || fail "sum 0..9"

# jobs --json: both jobs, in order, with their fields
shoal jobs --json >"$T/jobs.json"
jq -e --argjson id "$id" --argjson sid "$sid" '
	(map(.job_id) | index($id)) < (map(.job_id) | index($sid))
	and (.[] | select(.job_id == $id) | .name == "lifecycle-square" and .state == "succeeded")
	and (.[] | select(.job_id == $sid) | .op == "sum")' "$T/jobs.json" >/dev/null ||
	fail "jobs --json: $(cat "$T/jobs.json")"
expect_exit 0 shoal jobs
grep -q lifecycle-square "$T/out" || fail "jobs (table) lacks the job's name: $(cat "$T/out")"

# workers --json: both workers with their slots and counters
shoal workers --json >"$T/workers.json"
jq -e '
	length == 2
	and (map(.name) | sort) == ["early", "late"]
	and (.[] | select(.name == "early") | .slots == 2)
	and (.[] | select(.name == "late") | .slots == 3)
	and all(.[]; (.address | startswith("127.0.0.1:")) and .worker_id > 0 and .running == 0
		and .tasks_failed == 0 and .last_heartbeat_ms >= .connected_ms)
	and (map(.tasks_done) | add) > 0' "$T/workers.json" >/dev/null ||
	fail "workers --json: $(cat "$T/workers.json")"
expect_exit 0 shoal workers
grep -q early "$T/out" || fail "workers (table): $(cat "$T/out")"
grep -q late "$T/out" || fail "workers (table): $(cat "$T/out")"

# ---- cancel a running long job (grep for a letter among 10^11 integers: no output, minutes)
long=$(shoal submit --op grep --arg pattern=x --range 0:100000000000 --partitions 100000)
wait_for 300 "job $long running with progress" \
	eval "job_json $long | jq -e '.state == \"running\" and .tasks_done > 0' >/dev/null"
expect_exit 0 shoal cancel "$long"
st=$(job_json "$long")
jq -e '.state == "cancelled" and .tasks_done < .tasks_total' <<<"$st" >/dev/null ||
	fail "after cancel: $st"
expect_exit 1 shoal wait "$long"
expect_exit 1 shoal result "$long"
# The tasks stop everywhere: the workers go idle well before the job could have finished.
wait_for 100 "workers idle after the cancel" \
	eval "shoal workers --json | jq -e 'all(.[]; .running == 0)' >/dev/null"
sleep 0.5
jq -e '.tasks_running == 0' <<<"$(job_json "$long")" >/dev/null || fail "cancelled job still runs tasks"
# A cancelled job's state does not change any more, and the cluster goes on.
run_ok "$T/out" run --op count --range 0:1000 -q
[ "$(cat "$T/out")" = 1000 ] || fail "count after the cancel: $(cat "$T/out")"
[ "$(job_json "$long" | jq -r .state)" = cancelled ] || fail "the cancelled job came back"

# ---- SIGTERM: a worker exits 0 promptly and the master drops it
stop_pid "${WORKER_PID[late]}" 5
[ "$STOP_RC" = 0 ] || fail "worker SIGTERM: exit status $STOP_RC"
wait_workers 1
# the master exits 0 promptly, with a worker still connected
t0=$(date +%s%N)
stop_pid "$MASTER_PID" 5
[ "$STOP_RC" = 0 ] || fail "master SIGTERM: exit status $STOP_RC"
log "master stopped in $(elapsed_ms "$t0") ms"
expect_exit 3 shoal jobs
# a worker whose master is gone (reconnecting) still exits 0 promptly on SIGTERM
sleep 0.3
alive "${WORKER_PID[early]}" || fail "the worker exited when its master stopped"
stop_pid "${WORKER_PID[early]}" 5
[ "$STOP_RC" = 0 ] || fail "reconnecting worker SIGTERM: exit status $STOP_RC"
