#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec/--reduce-exec commands are awk's
# Master durability at the end of a job and across the stages of a reduce job: the master is
# killed (SIGKILL) at a moment the test observes, restarted on the same state dir and port, and
#  - a sort and a wordcount job killed during their final k-way merge (every partition in and
#    journaled, the master's log says the merge started, the job has not succeeded): the client
#    waiting on the job (`shoal wait`, started before the kill) carries on, the result equals
#    LC_ALL=C sort / an awk word count of the input, and the restarted master ran no partition
#    again (partitions_recovered = partitions, tasks_dispatched = 0): it only merged again;
#  - an --exec/--reduce-exec job killed in its map stage (some map partitions journaled) and one
#    killed in its reduce stage (the stage journaled, some reducers journaled): `shoal run`,
#    started before the kill, carries on; the result is byte-identical to an uninterrupted run
#    of the same job and, sorted, equals an awk word count; partitions_recovered covers at least
#    the journaled partitions (in the reduce stage: every map partition and the journaled
#    reducers) and partitions_recovered + tasks_dispatched = all partitions of both stages,
#    i.e. the restarted master ran each missing partition once and no journaled one;
#  - a reduce job that had ended before the restarts still gives its result.
# The moments are conditions polled in the master's log and journal (read-only, with python3's
# sqlite3), and the master is killed as soon as one holds; a kill that came too late (the merge
# had finished) is retried with a new job, a few times at most.
source "$(dirname "$0")/lib.sh"
START_NS=$(date +%s%N)
step() { log "$* ($(elapsed_ms "$START_NS") ms)"; }


# kill_start MODE N: starts a watcher (pid KW) that SIGKILLs the master as soon as the condition
# holds for the next job submitted (the first id above the highest one now), polled every 10 ms
# for at most 120 s; kill_wait then collects it and sets J to that job. Started before the job,
# so that the watcher's own start (a second on a loaded machine) costs nothing of the window.
#   merge    the log says the job's final merge started and the journal holds N partitions of it;
#   shuffle  the log says its shuffle started and the journal holds N map partitions of it;
#   map      the journal holds at least N partitions of its map stage;
#   reduce   the journal says it is in its reduce stage and holds at least N of its reducers.
# If the step after the moment shows in the log first (the job succeeded; for shuffle, its reduce
# stage started), the moment has passed: the master is killed all the same, and too_late says so.
kill_start() {
	local after
	after=$(shoal jobs --json | jq 'map(.job_id) | max // 0')
	daemon_killed "$MASTER_PID"
	rm -f "$T/killed.job"
	python3 - "$MASTER_PID" "$T/master.log" "$T/state/journal.db" "$T/killed.job" "$1" "$after" \
		"$2" <<'EOF' &
import os, signal, sqlite3, sys, time

pid, logf, db, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
after, n = int(sys.argv[6]), int(sys.argv[7])
job, seen, text = None, False, b""


def query(sql, *args):
    """The first row of a query on the journal, or None while it cannot be read."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return c.execute(sql, args).fetchone()
        finally:
            c.close()
    except sqlite3.Error:
        return None


def holds(stage, rows):
    if mode in ("merge", "shuffle"):
        return stage == 0 and rows == n
    return stage == (1 if mode == "reduce" else 0) and rows >= n


deadline = time.monotonic() + 120
with open(logf, "rb") as f:
    while time.monotonic() < deadline:
        text = text[-200:] + f.read()
        if job is None:
            row = query("SELECT min(id) FROM jobs WHERE id > ?", after)
            if row and row[0] is not None:
                job = row[0]
                start = {"merge": "merge_started", "shuffle": "shuffle"}.get(mode)
                start = start and f"job={job} event={start} ".encode()
                late = "reduce_stage" if mode == "shuffle" else "succeeded"
                late = f"job={job} event={late} ".encode()
                seen = start is None
        if job is not None:
            seen = seen or start in text
            j = seen and query("SELECT (SELECT stage FROM jobs WHERE id = ?1), "
                               "(SELECT count(*) FROM tasks WHERE job = ?1)", job)
            if late in text or (j and j[0] is not None and holds(*j)):
                os.kill(pid, signal.SIGKILL)
                with open(out, "w") as o:
                    o.write(f"{job}\n")
                sys.exit(0)
        time.sleep(0.01)
sys.exit(f"timed out waiting for '{mode} {n}' of job {job} (the first after {after})")
EOF
	KW=$!
}

# kill_wait: waits for the watcher kill_start started and for the master it killed; sets J.
kill_wait() {
	wait "$KW" || fail "the watcher did not kill the master (see above)"
	wait "$MASTER_PID" 2>/dev/null || true
	J=$(cat "$T/killed.job")
}

# too_late MODE JOB: the killed master's log shows that JOB had passed the moment of MODE.
too_late() {
	local late=succeeded
	[ "$1" != shuffle ] || late=reduce_stage
	grep -q "job=$2 event=$late " "$T/master.log"
}

# start_run OUT ARGS...: `shoal run ARGS... -o OUT` in the background (R: its pid, its stderr in
# $T/run.err).
start_run() {
	local out=$1
	shift
	shoal run -q "$@" -o "$out" 2>"$T/run.err" &
	R=$!
}

start_master
start_worker w1 --slots 2 --allow-exec
start_worker w2 --slots 2 --allow-exec
wait_workers 2

# Input for the merges: 130 partitions (more than the merge's fan-in of 64, so it merges in two
# passes) of lines "HEX kN": a unique word (random bits, then the line number) and one of 50
# common ones.
LINES=1000000
if [ "$SANITIZED" = 1 ]; then LINES=400000; fi
awk -v n="$LINES" 'BEGIN { srand(7411); for (i = 0; i < n; i++)
	printf "%04x%04x%06x k%d\n", int(rand() * 65536), int(rand() * 65536), i, i % 50 }' \
	>"$T/lines.txt"
LC_ALL=C sort "$T/lines.txt" >"$T/sort.ref"
# Word count: WORD<TAB>COUNT, bytewise by WORD: each unique word once (in sort.ref's order, as
# they all have the same length) merged with the common words' counts.
awk '{ c[$2]++ } END { for (k in c) print k "\t" c[k] }' "$T/lines.txt" | LC_ALL=C sort >"$T/keys.ref"
LC_ALL=C sort -m <(awk '{ print $1 "\t1" }' "$T/sort.ref") "$T/keys.ref" >"$T/wc.ref"
PARTS=130

# merge_case OP REF: kills the master during OP's final merge (retried with a new job if the
# merge had finished before the kill), then checks the waiting client, the result and the
# restarted master's counts.
merge_case() {
	local op=$1 ref=$2 try J W rc
	for try in 1 2 3; do
		kill_start merge $PARTS
		J=$(shoal submit --op "$op" --input-path "$T/lines.txt" --partitions $PARTS)
		shoal wait "$J" >"$T/wait.out" 2>"$T/wait.err" &
		W=$!
		kill_wait
		if too_late merge "$J"; then
			log "$op job $J: its merge had finished when the kill came (try $try)"
			respawn_master
			workers_back 2
			wait "$W" || fail "shoal wait $J exited $? after the restart: $(cat "$T/wait.err")"
			continue
		fi
		step "$op job $J: master killed during its merge (try $try)"
		respawn_master
		rc=0
		wait "$W" || rc=$?
		[ $rc = 0 ] || fail "shoal wait $J exited $rc across the restart: $(cat "$T/wait.err")"
		grep -q "job=$J event=merge_started " "$T/master.log" ||
			fail "job $J: the restarted master did not merge again"
		run_ok "$T/$op.out" result "$J"
		same_files "$ref" "$T/$op.out" "$op killed during its merge"
		if [ "$(job_field "$J" partitions_recovered)" != $PARTS ] || [ "$(job_field "$J" tasks_dispatched)" != 0 ]; then
			fail "job $J: a partition ran again after the restart: $(job_json "$J")"
		fi
		log "$op job $J: $PARTS of $PARTS partitions recovered, none run again; merged again"
		workers_back 2
		return 0
	done
	fail "$op: the merge finished before the kill on every try (the machine is too fast for $LINES lines?)"
}

step "kill -9 during a sort's final merge"
merge_case sort "$T/sort.ref"
step "kill -9 during a wordcount's final merge"
merge_case wordcount "$T/wc.ref"

# ---- A reduce job: awk word count as map and reduce over an uploaded input, 16 map
# partitions, 10 reducers (more than the 4 slots, so some reducers finish while others wait).
# The commands sleep so that the stages last long enough to be caught.
awk -v n=6000 'BEGIN { srand(11); for (i = 0; i < n; i++) { l = ""
	for (k = 0; k < 8; k++) l = l " w" int(rand() * rand() * 400); print substr(l, 2) } }' >"$T/text.txt"
awk '{ for (i = 1; i <= NF; i++) c[$i]++ } END { for (w in c) print w "\t" c[w] }' "$T/text.txt" |
	LC_ALL=C sort >"$T/rwc.ref"
MAP='sleep 0.3; awk '"'"'{ for (i = 1; i <= NF; i++) print $i "\t1" }'"'"
# COUNT: KEY<TAB>N per run of equal keys, N the sum of their values.
COUNT='LC_ALL=C awk -F"\t" '"'"'NR > 1 && $1 != k { print k "\t" n; n = 0 } { k = $1; n += $2 } END { if (NR) print k "\t" n }'"'"
MAPS=16 REDUCERS=10
REDUCE_JOB=(--exec "$MAP" --reduce-exec "sleep 0.5; $COUNT" --reducers "$REDUCERS" --input "$T/text.txt"
	--partitions "$MAPS")
step "uninterrupted reduce job"
run_ok /dev/null run -q "${REDUCE_JOB[@]}" -o "$T/reduce.ref"
REF_JOB=$(shoal jobs --json | jq 'map(.job_id) | max')
LC_ALL=C sort "$T/reduce.ref" | cmp -s - "$T/rwc.ref" || fail "the reduce job's word count is wrong"

# run_survived OUT: the `shoal run` started by start_run exited 0 across the restart.
run_survived() {
	local rc=0
	wait "$R" || rc=$?
	[ $rc = 0 ] || fail "shoal run (job $J) exited $rc across the restart: $(cat "$T/run.err")"
}

# counts JOB TOTAL: sets rec and disp (partitions_recovered, tasks_dispatched) and checks that
# the restarted master ran each partition it did not recover once: rec + disp = TOTAL.
counts() {
	local js
	js=$(job_json "$1")
	rec=$(jq .partitions_recovered <<<"$js")
	disp=$(jq .tasks_dispatched <<<"$js")
	[ "$(jq .tasks_total <<<"$js")" = "$2" ] || fail "job $1: not $2 tasks in all: $js"
	[ $((rec + disp)) = "$2" ] || fail "job $1: $rec partitions recovered + $disp dispatched != $2: $js"
}

# reduce_case MODE N: the reduce job under `shoal run`, the master killed at kill_start MODE N;
# sets J, rec and disp.
reduce_case() {
	local mode=$1 n=$2
	kill_start "$mode" "$n"
	start_run "$T/reduce-$mode.out" "${REDUCE_JOB[@]}"
	kill_wait
	! too_late "$mode" "$J" || fail "job $J succeeded before the kill"
	step "reduce job $J: master killed in its $mode stage"
	respawn_master
	run_survived
	same_files "$T/reduce.ref" "$T/reduce-$mode.out" "reduce job killed in its $mode stage"
	counts "$J" $((MAPS + REDUCERS))
	log "reduce job $J ($mode stage): $rec of $((MAPS + REDUCERS)) partitions recovered, $disp run after the restart"
	grep -q "job=$J event=resumed stage=$mode " "$T/master.log" ||
		fail "job $J: the restarted master did not resume its $mode stage"
	workers_back 2
}

step "kill -9 in a reduce job's map stage"
reduce_case map 4
[ "$rec" -ge 4 ] || fail "job $J: 4 map partitions were journaled, $rec recovered"

step "kill -9 in a reduce job's reduce stage"
reduce_case reduce 1
[ "$rec" -ge $((MAPS + 1)) ] ||
	fail "job $J: its reduce stage and a reducer were journaled, but only $rec partitions were recovered"

# ---- A reduce job killed during its shuffle (the k-way merge of every map output's bucket into
# the reducers' grouped input): lines.txt in 70 map partitions (still more than the fan-in)
# keyed by their common word, one reducer counting. Retried with a new job if the reduce stage
# had started before the kill.
step "kill -9 during a reduce job's shuffle"
for try in 1 2 3 4; do
	[ "$try" -lt 4 ] || fail "the shuffle finished before the kill on every try"
	kill_start shuffle 70
	start_run "$T/shuffle.out" --exec 'awk '"'"'{ print $2 "\t1" }'"'" --reduce-exec "$COUNT" \
		--input-path "$T/lines.txt" --partitions 70
	kill_wait
	if too_late shuffle "$J"; then
		log "reduce job $J: its reduce stage had started when the kill came (try $try)"
		respawn_master
		workers_back 2
		run_survived
		continue
	fi
	step "reduce job $J: master killed during its shuffle (try $try)"
	respawn_master
	run_survived
	same_files "$T/keys.ref" "$T/shuffle.out" "reduce job killed during its shuffle"
	counts "$J" 71
	[ "$disp" = 1 ] || fail "job $J: $disp partitions run after the restart, only its reducer should have"
	grep -q "job=$J event=shuffle " "$T/master.log" || fail "job $J: the restarted master did not shuffle again"
	log "reduce job $J: $rec of 70 map partitions recovered, shuffled again, $disp reducer run"
	workers_back 2
	break
done

# The reduce job that ended before the restarts still has its result (read through its reducers'
# places in the reduce stage's spill file).
run_ok "$T/reduce-again.out" result "$REF_JOB"
same_files "$T/reduce.ref" "$T/reduce-again.out" "an ended reduce job's result after restarts"
step "done"
