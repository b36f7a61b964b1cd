#!/usr/bin/env bash
# shoal cancel ID of a running --exec 'sleep 30' job stops it promptly: the job reports
# cancelled, its running children on every worker are killed (no `sleep` of it survives), the
# workers' slots are free again and they run the next job.
#
# The job's command sleeps for a duration unique to this test run (30.<pid><nanoseconds> s), so
# its processes are found with pgrep -f by that marker. Before the cancel, the test checks that
# the processes it finds descend from this test's workers (it walks their parent chains), so the
# marker names exactly them. After the cancel the same marker must match nothing: a survivor
# would be re-parented away from its worker, so the check does not restrict it to the workers'
# descendants (the marker is unique to this run, so nothing else matches it).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

MARK="30.$$$(date +%N)"
PATTERN="sleep $MARK"

start_master
start_worker a --slots 2 --allow-exec --cache-dir "$T/cache-a"
start_worker b --slots 2 --allow-exec --cache-dir "$T/cache-b"
wait_workers 2

# descends_from PID ANCESTOR...: PID's parent chain reaches one of the ANCESTORs.
descends_from() {
	local pid=$1 a
	shift
	for _ in $(seq 64); do
		for a in "$@"; do [ "$pid" = "$a" ] && return 0; done
		pid=$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null) || return 1
		[ -n "$pid" ] && [ "$pid" -gt 1 ] || return 1
	done
	return 1
}

# marked: PIDs whose command line holds the marker (the sleeps and the shells running them).
marked() { pgrep -f "$PATTERN" || true; }

# 8 partitions on 4 slots: 4 tasks run, 4 wait in the workers' prefetch or the master's queue.
id=$(shoal submit --exec "sleep $MARK; cat" --range 0:8 --partitions 8 --name sleeper)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
for _ in $(seq 100); do
	[ "$(pgrep -cx -f "$PATTERN" || true)" -ge 4 ] && break
	sleep 0.1
done
[ "$(pgrep -cx -f "$PATTERN" || true)" -ge 4 ] ||
	fail "4 sleeps of job $id do not run: $(pgrep -af "$PATTERN" || true); job: $(job_json "$id")"
before=$(marked)
for pid in $before; do
	descends_from "$pid" "${WORKER_PID[a]}" "${WORKER_PID[b]}" ||
		fail "process $pid matches '$PATTERN' but is not a worker's descendant: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
done
running=$(shoal workers --json | jq '[.[].running] | add')
[ "$running" -ge 4 ] || fail "workers report $running running tasks"
st=$(job_json "$id")
[ "$(jq -r .state <<<"$st")" = running ] || fail "job $id: $st"
log "job $id: $(echo "$before" | wc -w) marked processes on workers a and b"

t0=$(date +%s%N)
expect_exit 0 shoal cancel "$id"
grep -qx "job $id cancelled" "$T/out" || fail "shoal cancel printed: $(cat "$T/out")"
for _ in $(seq 50); do
	[ -z "$(marked)" ] && break
	sleep 0.1
done
[ -z "$(marked)" ] || fail "processes of job $id survived the cancel by 5 s: $(for p in $(marked); do
	echo "[$p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null), parent $(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null)]"
done); workers a=${WORKER_PID[a]} b=${WORKER_PID[b]}; $(shoal workers --json | jq -c 'map({name, running})')"
gone_ms=$(elapsed_ms "$t0")
log "job $id: all its processes gone $gone_ms ms after shoal cancel"
[ "$gone_ms" -lt 3000 ] || fail "job $id's processes took $gone_ms ms to go"
for pid in $before; do
	! alive "$pid" || fail "process $pid of job $id survived the cancel"
done

st=$(job_json "$id")
[ "$(jq -r .state <<<"$st")" = cancelled ] || fail "job $id after cancel: $st"
jq -r .error <<<"$st" | grep -q 'cancelled by a client' || fail "job $id error: $st"
expect_exit 1 shoal wait "$id"
grep -q "job $id was cancelled" "$T/err" || fail "shoal wait: $(cat "$T/err")"
expect_exit 1 shoal result "$id"
# Cancelling again is harmless; a finished job stays as it ended; an unknown job is an error.
expect_exit 0 shoal cancel "$id"
grep -qx "job $id cancelled" "$T/out" || fail "second cancel printed: $(cat "$T/out")"
expect_exit 1 shoal cancel 9999
grep -q "no job 9999" "$T/err" || fail "cancel 9999: $(cat "$T/err")"

# The slots are free again and the workers take the next job.
wait_for 50 "the workers' slots are free" test "$(shoal workers --json | jq '[.[].running] | add')" = 0
next=$(shoal submit --exec 'cat' --range 0:100 --partitions 4)
expect_exit 0 shoal wait "$next"
run_ok "$T/next" result "$next"
seq 0 99 >"$T/next.ref"
same_files "$T/next.ref" "$T/next" "job after the cancel"
expect_exit 0 shoal cancel "$next"
grep -qx "job $next had already succeeded" "$T/out" || fail "cancel of a finished job printed: $(cat "$T/out")"
[ "$(job_json "$next" | jq -r .state)" = succeeded ] || fail "cancel changed finished job $next: $(job_json "$next")"

# A job that is still queued (waiting for another) is cancelled without ever running.
blocker=$(shoal submit --exec "sleep $MARK; cat" --range 0:1)
waiter=$(shoal submit --op sum --range 0:10 --after "$blocker")
expect_exit 0 shoal cancel "$waiter"
expect_exit 0 shoal cancel "$blocker"
[ "$(job_json "$waiter" | jq -r '"\(.state) \(.started_ms)"')" = "cancelled null" ] ||
	fail "queued job $waiter after cancel: $(job_json "$waiter")"
wait_for 50 "no process of job $blocker remains" test -z "$(marked)"
