#!/usr/bin/env bash
# Strategies (which worker runs a task) and speculation.
#
# Heterogeneous cluster: workers fast1 (1 slot) and fast2 (2 slots), and slow (1 slot), whose
# tasks take 5x as long: each task is `sleep 0.02*SLOW; cat`, and SLOW=5 is in the slow
# worker's environment, which its exec children inherit. A 200-task job under round-robin is dealt in strict turns, so it moves
# at the slow worker's pace; under dynamic the workers pull as their slots free. Asserted:
# dynamic < 0.8 x round-robin wall time (a functional property with a wide margin: about 0.3x
# is expected), least-loaded completes with the exact result, and every result is exact. No
# worker ever runs more tasks at once than its slots (from the tasks' own start/end times).
#
# Speculation: worker b is stopped (SIGSTOP) before a dynamic job starts, so the tasks it is
# handed never finish; the master's heartbeat timeout is 60 s, so only a speculative copy can
# save the job. Once worker a has done everything else, the tasks b holds are the job's last,
# they run far longer than the median, and copies run on a: the job must finish well before the
# heartbeat timeout with the exact result. Then b continues (SIGCONT) and runs its stale
# attempts: nothing is aggregated twice (the result is still exact, and the master logged
# backup_won for each copy that won).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

TASKS=200
# Each task also logs when it starts and ends, and on which worker (WNAME, from the worker's
# environment), so that the slots can be checked: never more tasks at once on a worker than
# its slots.
# shellcheck disable=SC2016 # expanded by the worker's shell
EXEC='echo "S $WNAME $(date +%s%N)" >>"'"$T"'/conc.$SHOAL_JOB_ID"; sleep $(awk "BEGIN{print 0.02*${SLOW:-1}}"); echo "E $WNAME $(date +%s%N)" >>"'"$T"'/conc.$SHOAL_JOB_ID"; cat'
seq 0 $((TASKS - 1)) >"$T/ref"

start_master --heartbeat-timeout 60
WNAME=fast1 start_worker fast1 --slots 1 --allow-exec --cache-dir "$T/cache-fast1"
WNAME=fast2 start_worker fast2 --slots 2 --allow-exec --cache-dir "$T/cache-fast2"
WNAME=slow SLOW=5 start_worker slow --slots 1 --allow-exec --cache-dir "$T/cache-slow"
wait_workers 3

declare -A SLOTS=([fast1]=1 [fast2]=2 [slow]=1)

# check_slots JOB: the most tasks of JOB that ran at once on each worker, from the tasks' own
# start/end lines; fails if a worker ran more than its slots.
check_slots() {
	local id=$1 name most
	for name in "${!SLOTS[@]}"; do
		most=$(awk -v w="$name" '$2 == w { print $3, ($1 == "S" ? 1 : -1) }' "$T/conc.$id" |
			sort -k1,1n -k2,2n | awk '{ n += $2; if (n > m) m = n } END { print m + 0 }')
		[ "$most" -le "${SLOTS[$name]}" ] ||
			fail "job $id ran $most tasks at once on worker $name, which has ${SLOTS[$name]} slot(s)"
	done
}

# timed_run STRATEGY: runs the 200-task job, checks its result and the slots, sets RUN_MS.
RUN_MS=
timed_run() {
	local strategy=$1 t0 id
	t0=$(date +%s%N)
	id=$(shoal submit --strategy "$strategy" --exec "$EXEC" --range "0:$TASKS" \
		--partitions "$TASKS" --name "$strategy")
	expect_exit 0 shoal wait "$id"
	RUN_MS=$(elapsed_ms "$t0")
	run_ok "$T/out.$strategy" result "$id"
	same_files "$T/ref" "$T/out.$strategy" "$strategy"
	check_slots "$id"
	log "$strategy: $TASKS tasks in $RUN_MS ms"
}

# tasks_by_worker: "name=done ..." from shoal workers --json.
tasks_by_worker() { shoal workers --json | jq -r 'map("\(.name)=\(.tasks_done)") | join(" ")'; }

timed_run round-robin
rr_ms=$RUN_MS
log "after round-robin: $(tasks_by_worker)"
timed_run dynamic
dyn_ms=$RUN_MS
log "after dynamic: $(tasks_by_worker)"
timed_run least-loaded
log "after least-loaded: $(tasks_by_worker)"
[ $((dyn_ms * 10)) -lt $((rr_ms * 8)) ] ||
	fail "dynamic took $dyn_ms ms, not under 0.8 x round-robin's $rr_ms ms"
# The jobs report the strategy they ran with.
[ "$(shoal jobs --json | jq -r 'map(.strategy) | join(" ")')" = "round-robin dynamic least-loaded" ] ||
	fail "strategies in shoal jobs: $(shoal jobs --json | jq -c 'map({name, strategy})')"

# ---- speculation: a stopped worker holding the job's last tasks
stop_pid "${WORKER_PID[fast2]}"
stop_pid "${WORKER_PID[slow]}"
wait_workers 1
start_worker a --slots 1 --allow-exec --cache-dir "$T/cache-a"
start_worker b --slots 1 --allow-exec --cache-dir "$T/cache-b"
wait_workers 3
stop_pid "${WORKER_PID[fast1]}"
wait_workers 2

N=40
seq 0 $((N - 1)) >"$T/spec.ref"
kill -STOP "${WORKER_PID[b]}"
t0=$(date +%s%N)
id=$(shoal submit --strategy dynamic --exec 'sleep 0.05; cat' --range "0:$N" --partitions "$N")
# b is handed its window of tasks in the first round, and never answers.
wait_for 50 "worker b is handed tasks" \
	test "$(shoal workers --json | jq '.[] | select(.name == "b") | .running')" -gt 0
held=$(shoal workers --json | jq '.[] | select(.name == "b") | .running')
log "stopped worker b holds $held tasks of job $id"
SHOAL_CMD_TIMEOUT=40 expect_exit 0 shoal wait "$id"
spec_ms=$(elapsed_ms "$t0")
log "job $id finished in $spec_ms ms with worker b stopped"
[ "$spec_ms" -lt 20000 ] || fail "job $id took $spec_ms ms: speculation did not save it well before the 60 s heartbeat timeout"
run_ok "$T/spec.out" result "$id"
same_files "$T/spec.ref" "$T/spec.out" "job finished by speculation"
wait_for 50 "master logs backup_won for job $id" grep -q "job=$id .*event=backup_won" "$T/master.log"
grep -q "job=$id .*event=speculate" "$T/master.log" || fail "no speculate event for job $id"
won=$(grep -c "job=$id .*event=backup_won" "$T/master.log")
[ "$won" = "$held" ] || fail "backup_won $won times for the $held tasks b held"

# b continues: its stale attempts finish or are cancelled; their results are dropped.
kill -CONT "${WORKER_PID[b]}"
wait_for 100 "worker b is idle again" \
	test "$(shoal workers --json | jq '.[] | select(.name == "b") | .running')" = 0
sleep 0.5
run_ok "$T/spec.out2" result "$id"
same_files "$T/spec.ref" "$T/spec.out2" "result after the stopped worker continued"
st=$(job_json "$id")
[ "$(jq -r '"\(.state) \(.tasks_done)/\(.tasks_total)"' <<<"$st")" = "succeeded $N/$N" ] ||
	fail "job $id after b continued: $st"
[ "$(jq .records <<<"$st")" = "$N" ] || fail "job $id counted records twice: $st"
# b is still a worker in good standing (it was never declared dead) and takes new work.
[ "$(shoal workers --json | jq length)" = 2 ] || fail "workers: $(shoal workers --json)"
run_ok "$T/after.out" run -q --strategy round-robin --op sum --range 0:1000 --partitions 10
[ "$(cat "$T/after.out")" = 499500 ] || fail "sum after speculation: $(cat "$T/after.out")"
