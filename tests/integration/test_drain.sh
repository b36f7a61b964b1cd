#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# A draining worker hands back the tasks it will not start. Two workers with --slots 1 and a
# job of one long partition and several short ones (an --exec command; the long one waits
# until this test lets it end):
#  - worker a alone takes the long partition and a prefetched short one, then b joins;
#  - a gets SIGTERM while the long one runs: it tells the master it drains (the master logs
#    event=worker_draining with the task it returns), takes nothing new and finishes the long
#    one; every short partition, the one a held included, finishes on b while the long one
#    is still running (asserted from the job's progress, no timing);
#  - then the long one is let go: a reports it and exits 0, the job succeeds with the right
#    result, and handing the task back counted no failure.
# Before the fix the short task prefetched on a waited for a to exit, which needs the long
# one to end: the short partitions never all finished first.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

N=8
RELEASE=$T/release
# Partition 0 is the long one: it waits for $RELEASE (at most 60 s); the others are short.
CMD="read x; if [ \"\$x\" = 0 ]; then i=0; while [ ! -e '$RELEASE' ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done; fi; echo \$((x * x))"

start_master
start_worker a --slots 1 --allow-exec
wait_workers 1

# running_on NAME: tasks the master has assigned to worker NAME.
running_on() { shoal workers --json | jq --arg n "$1" '[.[] | select(.name == $n) | .running] | add // 0'; }
at_least() { local n=$1; shift; [ "$("$@")" -ge "$n" ]; }
done_count() { job_json "$1" | jq .tasks_done; }

id=$(shoal submit --exec "$CMD" --range "0:$N" --partitions "$N" --strategy round-robin)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
# a holds the long partition (running) and a short one (queued behind it, its one slot busy).
wait_for 600 "worker a holds 2 tasks" at_least 2 running_on a
start_worker b --slots 1 --allow-exec
wait_workers 2

stop_ns=$(date +%s%N)
kill -TERM "${WORKER_PID[a]}"
daemon_killed "${WORKER_PID[a]}"
wait_for 600 "the master hears that a drains" grep -q "event=worker_draining .*name=a " "$T/master.log"
line=$(grep "event=worker_draining .*name=a " "$T/master.log")
[[ "$line" == *"tasks_running=1 "* ]] || fail "a should still run the long task: $line"
[[ "$line" =~ tasks_returned=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] || fail "a returned nothing: $line"

# Every short partition finishes while the long one still runs (it cannot end before
# $RELEASE exists).
wait_for 600 "the $((N - 1)) short partitions finish" at_least $((N - 1)) done_count "$id"
[ "$(done_count "$id")" = $((N - 1)) ] || fail "more than the short partitions finished: $(job_json "$id")"
[ "$(job_json "$id" | jq -r .state)" = running ] || fail "job is not running: $(job_json "$id")"
alive "${WORKER_PID[a]}" || fail "worker a exited before its long task ended"
log "short partitions done on b $(elapsed_ms "$stop_ns") ms after a's SIGTERM, the long one still running on a"

touch "$RELEASE"
rc=0
shoal wait "$id" >/dev/null 2>"$T/wait.err" || rc=$?
[ "$rc" = 0 ] || fail "shoal wait exited $rc: $(cat "$T/wait.err")"
run_ok "$T/out" result "$id"
seq 0 $((N - 1)) | awk '{ print $1 * $1 }' >"$T/ref"
same_files "$T/ref" "$T/out" "drained job"
[ "$(job_json "$id" | jq .task_failures)" = 0 ] || fail "returned tasks counted as failures: $(job_json "$id")"

# a exits 0 once its long task is reported.
for _ in $(seq 600); do alive "${WORKER_PID[a]}" || break; sleep 0.1; done
alive "${WORKER_PID[a]}" && fail "worker a did not exit after its long task"
st=0
wait "${WORKER_PID[a]}" || st=$?
[ "$st" = 0 ] || fail "worker a exited $st"
grep -q "event=draining running=1 " "$T/worker-a.log" || fail "worker a did not log its drain: $(tail -n 5 "$T/worker-a.log")"
# Its long task's result was taken: nothing was left on a to run again elsewhere.
wait_for 600 "the master sees a leave" grep -q "event=worker_gone .*name=a " "$T/master.log"
gone=$(grep "event=worker_gone .*name=a " "$T/master.log")
[[ "$gone" == *"tasks_requeued=0 "* ]] || fail "a left tasks behind: $gone"
log "ok: drained worker returned its not-started tasks; result correct; no failure counted"
