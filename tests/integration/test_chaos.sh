#!/usr/bin/env bash
# Chaos loop: a job of 2,000 tasks while the harness SIGKILLs a random worker every 100-300 ms
# and starts a replacement; the result equals the reference in each of CHAOS_RUNS runs
# (default 20). The tasks square 20 integers each after a 5 ms pause (tests/integration/
# plugins/slow_square.c, in the workers' thread pools), so that a run lasts about a second of
# wall time, long enough for several kills, while costing little CPU. Every partition must be
# aggregated exactly once: a lost one leaves a hole in the ordered result, a duplicate repeats
# lines; both differ from the reference.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

RUNS=${CHAOS_RUNS:-20}
PARTS=2000
N=$((PARTS * 20))
DELAY_MS=5
WORKERS=4
PLUGIN=${SHOAL_SLOW_SQUARE_PLUGIN:?the build sets SHOAL_SLOW_SQUARE_PLUGIN}
[ -f "$PLUGIN" ] || fail "no plugin at $PLUGIN"

seq 0 $((N - 1)) | awk '{ printf "%d\n", $1 * $1 }' >"$T/square.ref"

start_master
NEXT=0
LIVE=()
# spawn: starts one more worker (w1, w2, ...) and adds it to LIVE.
spawn() {
	NEXT=$((NEXT + 1))
	start_worker "w$NEXT" --slots 2 --allow-exec --cache-dir "$T/cache-w$NEXT"
	LIVE+=("w$NEXT")
}
for _ in $(seq "$WORKERS"); do spawn; done
wait_workers "$WORKERS"

total_kills=0
start_ns=$(date +%s%N)
for run in $(seq "$RUNS"); do
	id=$(shoal submit --plugin "$PLUGIN" --arg "delay_ms=$DELAY_MS" --range "0:$N" \
		--partitions "$PARTS")
	[[ "$id" =~ ^[0-9]+$ ]] || fail "run $run: submit printed '$id'"
	kills=0
	# Bounded: at most 300 kills per run (a run takes a few dozen on a slow machine).
	for _ in $(seq 300); do
		sleep "0.$((RANDOM % 3 + 1))"
		state=$(job_json "$id" | jq -r .state)
		case $state in
		queued | running) ;;
		*) break ;;
		esac
		k=$((RANDOM % ${#LIVE[@]}))
		victim=${LIVE[$k]}
		pid=${WORKER_PID[$victim]}
		daemon_killed "$pid"
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null || true
		LIVE=("${LIVE[@]:0:$k}" "${LIVE[@]:$((k + 1))}")
		spawn
		kills=$((kills + 1))
	done
	expect_exit 0 shoal wait "$id"
	run_ok "$T/out" result "$id"
	same_files "$T/square.ref" "$T/out" "run $run (job $id, $kills workers killed)"
	st=$(job_json "$id")
	[ "$(jq .tasks_done <<<"$st")" = "$PARTS" ] || fail "run $run: job $id counts: $st"
	total_kills=$((total_kills + kills))
	log "run $run: job $id identical to the reference; $kills workers killed and replaced"
done
# The kills landed on workers holding tasks: their tasks were run again elsewhere.
hit=$(grep -c 'event=worker_gone .*tasks_requeued=[1-9]' "$T/master.log" || true)
log "$RUNS runs in $(elapsed_ms "$start_ns") ms: $total_kills workers killed, $hit of them holding tasks"
[ "$total_kills" -gt 0 ] || fail "no worker was killed while a job ran"
[ "$hit" -gt 0 ] || fail "no killed worker held tasks: nothing was re-run"
wait_workers "$WORKERS"
log "ok"
