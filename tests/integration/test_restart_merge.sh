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

MASTER_LOGS=0
# restart_master: the master again, on the same port and state dir; the killed one's log is
# kept as master-runN.log.old.
restart_master() {
	MASTER_LOGS=$((MASTER_LOGS + 1))
	cp "$T/master.log" "$T/master-run$MASTER_LOGS.log.old"
	start_master
}

# workers_back N: the workers found the new master by themselves (bounded).
workers_back() {
	local want=$1 n=
	for _ in $(seq 300); do
		n=$("$SHOAL_CLIENT_BIN" workers --json 2>/dev/null | jq length 2>/dev/null || echo -1)
		[ "$n" = "$want" ] && return 0
		sleep 0.1
	done
	fail "workers did not re-register with the restarted master: $n of $want"
}

field() { job_json "$1" | jq -r ".$2"; }

# kill_when MODE JOB N: SIGKILLs the master as soon as the condition holds (polled every 10 ms
# for at most 120 s; the test fails if it never does):
#   merge   the log says JOB's merge started, the journal holds N partitions of JOB, and the
#           log does not say JOB succeeded;
#   map     the journal holds at least N partitions of JOB's map stage;
#   reduce  the journal says JOB is in its reduce stage and holds at least N of its reducers.
kill_when() {
	daemon_killed "$MASTER_PID"
	python3 - "$MASTER_PID" "$T/master.log" "$T/state/journal.db" "$@" <<'EOF' ||
import os, signal, sqlite3, sys, time

pid, logf, db, mode, job, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], \
    int(sys.argv[5]), int(sys.argv[6])
started = f"job={job} event=merge_started ".encode()
succeeded = f"job={job} event=succeeded ".encode()
seen, ended, text = False, False, b""


def journal():
    """(stage, rows) of JOB in the journal, or None while it cannot be read."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = c.execute("SELECT stage FROM jobs WHERE id = ?", (job,)).fetchone()
            rows = c.execute("SELECT count(*) FROM tasks WHERE job = ?", (job,)).fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return None
    return (row[0], rows) if row else None


deadline = time.monotonic() + 120
with open(logf, "rb") as f:
    while time.monotonic() < deadline:
        text = text[-200:] + f.read()
        seen = seen or started in text
        ended = ended or succeeded in text
        if ended:
            sys.exit(f"job {job} succeeded before the condition '{mode} {n}' held")
        j = journal() if mode != "merge" or seen else None
        if j and ((mode == "merge" and j[1] == n) or (mode == "map" and j[0] == 0 and j[1] >= n)
                  or (mode == "reduce" and j[0] == 1 and j[1] >= n)):
            os.kill(pid, signal.SIGKILL)
            sys.exit(0)
        time.sleep(0.01)
sys.exit(f"timed out waiting for '{mode} {n}' of job {job}")
EOF
		fail "kill_when $*: the condition did not hold (see above)"
	wait "$MASTER_PID" 2>/dev/null || true
}

# ended_in_log JOB: the killed master's log says JOB succeeded.
ended_in_log() { grep -q "job=$1 event=succeeded " "$T/master.log"; }

start_master
start_worker w1 --slots 2 --allow-exec
start_worker w2 --slots 2 --allow-exec
wait_workers 2

# Input for the merges: 130 partitions (more than the merge's fan-in of 64, so it merges in two
# passes) of lines "HEX WORD": a near-unique word and one of 50 common ones.
LINES=1500000
if [ "$SANITIZED" = 1 ]; then LINES=600000; fi
awk -v n="$LINES" 'BEGIN { srand(7411); for (i = 0; i < n; i++)
	printf "%04x%04x%06x k%d\n", int(rand() * 65536), int(rand() * 65536), i % 1000000, i % 50 }' \
	>"$T/lines.txt"
LC_ALL=C sort "$T/lines.txt" >"$T/sort.ref"
# Word count: WORD<TAB>COUNT, bytewise by WORD.
wc_ref() { awk '{ for (i = 1; i <= NF; i++) c[$i]++ } END { for (w in c) print w "\t" c[w] }' "$1" |
	LC_ALL=C sort; }
wc_ref "$T/lines.txt" >"$T/wc.ref"
PARTS=130

# merge_case OP REF: kills the master during OP's final merge (retried with a new job if the
# merge had finished before the kill), then checks the waiting client, the result and the
# restarted master's counts.
merge_case() {
	local op=$1 ref=$2 try J W rc
	for try in 1 2 3; do
		J=$(shoal submit --op "$op" --input-path "$T/lines.txt" --partitions $PARTS)
		shoal wait "$J" >"$T/wait.out" 2>"$T/wait.err" &
		W=$!
		kill_when merge "$J" $PARTS
		if ended_in_log "$J"; then
			log "$op job $J: its merge had finished when the kill came (try $try)"
			restart_master
			workers_back 2
			wait "$W" || fail "shoal wait $J exited $? after the restart: $(cat "$T/wait.err")"
			continue
		fi
		step "$op job $J: master killed during its merge (try $try)"
		restart_master
		rc=0
		wait "$W" || rc=$?
		[ $rc = 0 ] || fail "shoal wait $J exited $rc across the restart: $(cat "$T/wait.err")"
		grep -q "job=$J event=merge_started " "$T/master.log" ||
			fail "job $J: the restarted master did not merge again"
		run_ok "$T/$op.out" result "$J"
		same_files "$ref" "$T/$op.out" "$op killed during its merge"
		if [ "$(field "$J" partitions_recovered)" != $PARTS ] || [ "$(field "$J" tasks_dispatched)" != 0 ]; then
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

# ---- A reduce job: awk word count as map and reduce, 12 map partitions, 6 reducers (more
# than the 4 slots, so some reducers finish while others wait). The commands sleep so that the
# stages last long enough to be caught.
awk -v n=6000 'BEGIN { srand(11); for (i = 0; i < n; i++) { l = ""
	for (k = 0; k < 8; k++) l = l " w" int(rand() * rand() * 400); print substr(l, 2) } }' >"$T/text.txt"
wc_ref "$T/text.txt" >"$T/rwc.ref"
MAP='sleep 0.3; awk '"'"'{ for (i = 1; i <= NF; i++) print $i "\t1" }'"'"
REDUCE='sleep 0.5; LC_ALL=C awk -F"\t" '"'"'NR > 1 && $1 != k { print k "\t" n; n = 0 } { k = $1; n += $2 } END { if (NR) print k "\t" n }'"'"
MAPS=12 REDUCERS=6
reduce_job() {
	shoal run -q --exec "$MAP" --reduce-exec "$REDUCE" --reducers $REDUCERS --input-path "$T/text.txt" \
		--partitions $MAPS "$@"
}
step "uninterrupted reduce job"
reduce_job -o "$T/reduce.ref" || fail "the uninterrupted reduce job failed"
REF_JOB=$(shoal jobs --json | jq 'map(.job_id) | max')
LC_ALL=C sort "$T/reduce.ref" | cmp -s - "$T/rwc.ref" || fail "the reduce job's word count is wrong"

# reduce_case MODE N: `shoal run` of the reduce job, the master killed at kill_when MODE JOB N;
# sets J (the job) and rec (its partitions_recovered).
reduce_case() {
	local mode=$1 n=$2 R rc disp total last
	last=$(shoal jobs --json | jq 'map(.job_id) | max')
	reduce_job -o "$T/reduce-$mode.out" 2>"$T/run.err" &
	R=$!
	newest() { J=$(shoal jobs --json | jq 'map(.job_id) | max') && [ "$J" -gt "$last" ]; }
	wait_for 300 "the reduce job's submission" newest
	kill_when "$mode" "$J" "$n"
	! ended_in_log "$J" || fail "job $J succeeded before the kill"
	step "reduce job $J: master killed in its $mode stage"
	restart_master
	rc=0
	wait "$R" || rc=$?
	[ $rc = 0 ] || fail "shoal run (job $J) exited $rc across the restart: $(cat "$T/run.err")"
	same_files "$T/reduce.ref" "$T/reduce-$mode.out" "reduce job killed in its $mode stage"
	rec=$(field "$J" partitions_recovered)
	disp=$(field "$J" tasks_dispatched)
	total=$(field "$J" tasks_total)
	[ "$total" = $((MAPS + REDUCERS)) ] || fail "job $J: $total tasks in all: $(job_json "$J")"
	[ $((rec + disp)) = "$total" ] ||
		fail "job $J: $rec partitions recovered + $disp dispatched != $total: $(job_json "$J")"
	log "reduce job $J ($mode stage): $rec of $total partitions recovered, $disp run after the restart"
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
# The reduce job that ended before the restarts still has its result (read through its reducers'
# places in the reduce stage's spill file).
run_ok "$T/reduce-again.out" result "$REF_JOB"
same_files "$T/reduce.ref" "$T/reduce-again.out" "an ended reduce job's result after restarts"
step "done"
