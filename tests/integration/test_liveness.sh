#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# Worker liveness with the master's defaults (heartbeat every 1 s, --heartbeat-timeout 5 s):
#  - a worker stopped with SIGSTOP in the middle of a job is declared dead by the master (the
#    reason names the silence) and its tasks run on the other workers; the time from the
#    SIGSTOP to the master's worker_gone line is measured and logged (the issue's bound is
#    timeout + 1 s; only the ordering is asserted: after the stop, after a timeout's worth of
#    silence as the master measured it);
#  - SIGCONT: the straggler comes back, notices its connection is gone, drops what it held,
#    registers again and takes work; the job's result equals the reference and every
#    partition was aggregated once (tasks_done = tasks_total, nothing duplicated);
#  - a worker whose master is killed (SIGKILL) stops its running task's command at once (no
#    stale task survives), retries with backoff and registers with the restarted master;
#  - --job-timeout: a job with no worker connected for that long fails with a reason that
#    says so; a job whose workers come back in time succeeds.
# LIVENESS_RUNS=N repeats the SIGSTOP measurement N times (bench/README.md's figure).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

HB_TIMEOUT_MS=5000 # the master's default --heartbeat-timeout
RUNS=${LIVENESS_RUNS:-1}
N=3000   # range 0:N, squared
PARTS=300

# log_ms LINE: the time stamp of a log line in Unix milliseconds.
log_ms() { date -u -d "$(cut -d' ' -f1 <<<"$1")" +%s%3N; }

# running_on NAME: tasks the master has assigned to worker NAME now.
running_on() { shoal workers --json | jq --arg n "$1" '[.[] | select(.name == $n) | .running] | add // 0'; }

# registrations NAME: how many times worker NAME has registered with the master.
registrations() { grep -c "event=worker_registered .*name=$1 " "$T/master.log" || true; }

# lost_count: how many times worker c lost its master.
lost_count() { grep -c "lost master=.*reconnecting" "$T/worker-c.log" || true; }

# more_than N CMD...: CMD prints a number greater than N.
more_than() {
	local n=$1
	shift
	[ "$("$@")" -gt "$n" ]
}

start_master
for w in a b c; do start_worker "$w" --slots 2 --allow-exec --cache-dir "$T/cache-$w"; done
wait_workers 3

# Slow partitions (0.1 s each), so that the job is still running when the worker stops, and
# after it is declared dead; the squares are checked against a reference made here.
seq 0 $((N - 1)) | awk '{ print $1 * $1 }' >"$T/square.ref"
SLOW='sleep 0.1; while read -r x; do echo $((x * x)); done'

for run in $(seq "$RUNS"); do
	gone_before=$(grep -c "event=worker_gone .*name=c " "$T/master.log" || true)
	regs_before=$(registrations c)
	id=$(shoal submit --exec "$SLOW" --range "0:$N" --partitions "$PARTS" --strategy round-robin)
	[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
	# Stop c while it holds tasks of the running job.
	wait_for 300 "worker c runs tasks of job $id" more_than 0 running_on c
	stop_ns=$(date +%s%N)
	kill -STOP "${WORKER_PID[c]}"
	held=$(running_on c)
	log "run $run: stopped worker c holding $held tasks of job $id"

	# The master declares c dead (bounded wait: well beyond the timeout) ...
	for _ in $(seq 300); do
		[ "$(grep -c "event=worker_gone .*name=c " "$T/master.log" || true)" -gt "$gone_before" ] && break
		sleep 0.1
	done
	line=$(grep "event=worker_gone .*name=c " "$T/master.log" | tail -n 1)
	[ "$(grep -c "event=worker_gone .*name=c " "$T/master.log" || true)" -gt "$gone_before" ] ||
		fail "the master never declared the stopped worker c dead"
	gone_ms=$(log_ms "$line")
	detect_ms=$((gone_ms - stop_ns / 1000000))
	silence=$(sed -n 's/.*reason="no heartbeat for \([0-9]*\) ms".*/\1/p' <<<"$line")
	[ -n "$silence" ] || fail "the master's reason for dropping c does not name the silence: $line"
	if [ "$detect_ms" -le $((HB_TIMEOUT_MS + 1000)) ]; then verdict="within"; else verdict="BEYOND"; fi
	log "run $run: worker c declared dead ${detect_ms} ms after SIGSTOP (master: no heartbeat for ${silence} ms; $verdict the ${HB_TIMEOUT_MS} ms timeout + 1 s)"
	echo "detection_ms=$detect_ms silence_ms=$silence" >>"$T/detect.txt"
	# Ordering only (its last heartbeat precedes the SIGSTOP by up to a heartbeat period, more
	# on a loaded machine): declared dead after it stopped, and after the timeout of silence.
	[ "$detect_ms" -gt 0 ] || fail "worker c declared dead $detect_ms ms after SIGSTOP, before it stopped"
	[ "$silence" -gt "$HB_TIMEOUT_MS" ] || fail "worker c dropped after only $silence ms of silence"
	requeued=$(sed -n 's/.*tasks_requeued=\([0-9]*\).*/\1/p' <<<"$line")
	[ "${requeued:-0}" -gt 0 ] || fail "worker c held no task when it was declared dead: $line"

	# ... and the straggler comes back while the job still runs (when the machine is slow
	# enough) or after it: either way it registers again and nothing is aggregated twice.
	kill -CONT "${WORKER_PID[c]}"
	wait_for 300 "worker c registers again" more_than "$regs_before" registrations c
	expect_exit 0 shoal wait "$id"
	run_ok "$T/square.out" result "$id"
	same_files "$T/square.ref" "$T/square.out" "run $run: square with worker c stopped and resumed"
	st=$(job_json "$id")
	[ "$(jq -r '"\(.tasks_done)/\(.tasks_total)"' <<<"$st")" = "$PARTS/$PARTS" ] ||
		fail "run $run: job $id counts: $st"
	grep -q "lost master=.*reconnecting" "$T/worker-c.log" ||
		fail "worker c did not notice that its connection was gone"
done
wait_workers 3
# The straggler takes work again (round-robin deals every worker a share).
c_before=$(shoal workers --json | jq '.[] | select(.name == "c") | .tasks_done')
run_ok "$T/out" run --op sum --range 0:100000 --partitions 60 --strategy round-robin -q
[ "$(cat "$T/out")" = 4999950000 ] || fail "sum after worker c came back: $(cat "$T/out")"
c_after=$(shoal workers --json | jq '.[] | select(.name == "c") | .tasks_done')
[ "$c_after" -gt "$c_before" ] || fail "worker c got no work after it came back: $(shoal workers --json)"

# ---- the master is killed: the worker stops its task's command at once (nothing stale keeps
# running), retries with backoff and registers with the restarted master by itself.
stop_pid "${WORKER_PID[a]}"
stop_pid "${WORKER_PID[b]}"
wait_workers 1
id=$(shoal submit --exec "echo \$\$ >\"$T/child.pid\"; exec sleep 600" --range 0:1 --partitions 1)
wait_for 300 "the task's command starts" test -s "$T/child.pid"
child=$(cat "$T/child.pid")
alive "$child" || fail "the task's command is not running"
lost_before=$(lost_count)
daemon_killed "$MASTER_PID"
kill -KILL "$MASTER_PID"
wait_for 300 "worker c drops the task of its lost master (pid $child)" eval '! alive "$child"'
wait_for 300 "worker c notices the master is gone" more_than "$lost_before" lost_count
sleep 1.5 # a few failed attempts with backoff
alive "${WORKER_PID[c]}" || fail "worker c exited without its master"
grep -q "retrying with backoff" "$T/worker-c.log" || fail "worker c logged no retries: $(tail -5 "$T/worker-c.log")"
mv "$T/master.log" "$T/master-1.log"
start_master # same port
wait_workers 1
shoal cancel "$id" >/dev/null 2>&1 || true # a master with a journal may have resumed it

# ---- --job-timeout: no worker for that long fails the job, saying so
stop_pid "${WORKER_PID[c]}"
wait_workers 0
expect_exit 1 shoal run --op sum --range 0:1000 --job-timeout 1 -q
grep -q "job timeout: no worker connected" "$T/err" || fail "--job-timeout failure: $(cat "$T/err")"
id=$(shoal submit --op sum --range 0:1000 --job-timeout 1)
wait_for 300 "job $id fails" eval '[ "$(job_json "$id" | jq -r .state)" = failed ]'
job_json "$id" | jq -r .error | grep -q "no worker connected to run it for" ||
	fail "job $id: $(job_json "$id")"
# A worker that comes back within the timeout: the job runs.
id=$(shoal submit --op sum --range 0:1000 --job-timeout 30)
start_worker d --slots 2
expect_exit 0 shoal wait "$id"
[ "$(shoal result "$id")" = 499500 ] || fail "sum after a worker came in time: $(shoal result "$id")"
expect_exit 2 shoal run --op sum --range 0:10 --job-timeout 0
expect_exit 2 shoal run --op sum --range 0:10 --job-timeout never
cp "$T/detect.txt" "${LIVENESS_OUT:-/dev/null}" 2>/dev/null || true
log "ok"
