#!/usr/bin/env bash
# Master durability (issue 4): the master is killed (SIGKILL) at several points and restarted
# on the same state dir and port. Every job it had resumes and ends with exactly the reference
# result; partitions it had journaled are not run again (counted from its own stats:
# partitions_recovered + tasks_dispatched = partitions, with recovered > 0); clients waiting
# on a job (`shoal wait`, `shoal run`, `shoal result` mid-download) reconnect and carry on;
# workers re-register by themselves. A SIGTERM'd master leaves every partition it had
# counted in the journal. An upload cut short by a kill that its client does not outlive
# fails its job after --upload-resume-timeout, asking for a resubmission (uploads whose
# client carries on: test_upload_resume).
source "$(dirname "$0")/lib.sh"
MASTER_ARGS=(--upload-resume-timeout 2)
START_NS=$(date +%s%N)

done_at_least() { [ "$(job_field "$1" tasks_done)" -ge "$2" ]; }
# no_rerun ID PARTITIONS: the restarted master ran each partition it had not journaled once.
no_rerun() {
	local js rec disp
	js=$(job_json "$1")
	rec=$(jq .partitions_recovered <<<"$js")
	disp=$(jq .tasks_dispatched <<<"$js")
	[ "$rec" -gt 0 ] || fail "job $1: no partition was recovered from the journal: $js"
	[ $((rec + disp)) = "$2" ] ||
		fail "job $1: $rec partitions recovered + $disp dispatched != $2 partitions: $js"
	log "job $1: $rec of $2 partitions recovered, $disp run after the restart"
}

start_master "${MASTER_ARGS[@]}"
start_worker w1 --slots 2 --allow-exec
start_worker w2 --slots 2 --allow-exec
wait_workers 2

refs text "$T/text.txt" 300
refs ref wordcount "$T/text.txt" >"$T/wc.ref"
seq 0 599 >"$T/a.ref"
seq 0 299 >"$T/b.ref"
refs ref sum range:0:100000 >"$T/c.ref"

# ---- 1. SIGKILL mid-run: a spilled job being watched, a `shoal run`, a fold and an upload
# queued behind them.
log "kill -9 mid-run ($(elapsed_ms "$START_NS") ms)"
A=$(shoal submit --exec 'sleep 0.1; cat' --range 0:600 --partitions 60)
shoal wait "$A" >"$T/wait-a.out" 2>"$T/wait-a.err" &
WAIT_A=$!
shoal run --exec 'sleep 0.1; cat' --range 0:300 --partitions 30 -o "$T/b.out" 2>"$T/run-b.err" &
RUN_B=$!
wait_for 300 "job A's first partitions" done_at_least "$A" 10
C=$(shoal submit --op sum --range 0:100000 --partitions 20)
D=$(shoal submit --op wordcount --input "$T/text.txt" --partitions 6)
before=$(job_field "$A" tasks_done)
kill_master
log "killed with $before of 60 partitions of job $A done"
respawn_master "${MASTER_ARGS[@]}"
workers_back 2
log "workers back ($(elapsed_ms "$START_NS") ms)"
rc=0
wait "$WAIT_A" || rc=$?
[ $rc = 0 ] || fail "shoal wait $A exited $rc after the restart: $(cat "$T/wait-a.err")"
grep -q "reconnecting for up to 60 s" "$T/wait-a.err" && grep -q "reconnected to the master" "$T/wait-a.err" ||
	fail "shoal wait said nothing of its reconnect: $(cat "$T/wait-a.err")"
rc=0
wait "$RUN_B" || rc=$?
[ $rc = 0 ] || fail "shoal run exited $rc after the restart: $(cat "$T/run-b.err")"
same_files "$T/b.ref" "$T/b.out" "shoal run across a master restart"
run_ok "$T/a.out" result "$A"
same_files "$T/a.ref" "$T/a.out" "job $A across a master restart"
no_rerun "$A" 60
run_ok /dev/null wait "$C"
run_ok "$T/c.out" result "$C"
same_files "$T/c.ref" "$T/c.out" "sum queued across a restart"
run_ok /dev/null wait "$D"
run_ok "$T/d.out" result "$D"
same_files "$T/wc.ref" "$T/d.out" "uploaded wordcount queued across a restart"

# ---- 2. SIGTERM mid-run: the journal holds every partition counted before the stop.
log "SIGTERM mid-run ($(elapsed_ms "$START_NS") ms)"
E=$(shoal submit --exec 'sleep 0.1; cat' --range 0:400 --partitions 40)
wait_for 300 "job E's first partitions" done_at_least "$E" 5
before=$(job_field "$E" tasks_done)
stop_pid "$MASTER_PID" 20
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
respawn_master "${MASTER_ARGS[@]}"
workers_back 2
run_ok /dev/null wait "$E"
run_ok "$T/e.out" result "$E"
same_files <(seq 0 399) "$T/e.out" "job $E across a graceful restart"
rec=$(job_field "$E" partitions_recovered)
[ "$rec" -ge "$before" ] ||
	fail "job $E: $before partitions were done at SIGTERM, the restarted master recovered $rec"
no_rerun "$E" 40

# ---- 3. SIGKILL during an upload whose client dies too: the restarted master waits
# --upload-resume-timeout for the client to resume, then fails the job, saying to submit it
# again.
log "kill -9 during an upload ($(elapsed_ms "$START_NS") ms)"
mkfifo "$T/up.fifo"
"$SHOAL_CLIENT_BIN" submit --op wordcount --input - <"$T/up.fifo" >"$T/up.out" 2>"$T/up.err" &
UP=$!
exec 3>"$T/up.fifo"
# More than the upload window (8 MiB): a client reading a pipe sends once the window is full.
for _ in $(seq 40); do cat "$T/text.txt" >&3; done
uploading() {
	shoal jobs --json | jq -e 'map(select(.state == "uploading" and .input_bytes > 0)) | length == 1' >/dev/null
}
wait_for 300 "an upload in progress" uploading
U=$(shoal jobs --json | jq -r 'map(select(.state == "uploading"))[0].job_id')
kill -KILL "$UP"
wait "$UP" 2>/dev/null || true
kill_master
exec 3>&-
respawn_master "${MASTER_ARGS[@]}"
[ "$(job_field "$U" state)" = uploading ] || fail "job $U does not wait for its upload: $(job_json "$U")"
upload_given_up() { [ "$(job_field "$U" state)" = failed ]; }
wait_for 300 "job $U failed once nobody resumed its upload" upload_given_up
job_field "$U" error | grep -q "did not resume it.*submit the job again" ||
	fail "job $U's error: $(job_field "$U" error)"
log "job $U: $(job_field "$U" error)"
# ... and the same input submitted again goes through.
run_ok "$T/u.out" run --op wordcount --input "$T/text.txt"
same_files "$T/wc.ref" "$T/u.out" "wordcount resubmitted after a failed upload"

# ---- 4. SIGKILL during a result download: the client fetches the rest from the new master.
log "kill -9 during a result download ($(elapsed_ms "$START_NS") ms)"
F=$(shoal submit --op square --range 0:2000000)
run_ok /dev/null wait "$F"
refs ref square range:0:2000000 >"$T/f.ref"
mkfifo "$T/res.fifo"
(
	head -c 1048576 >"$T/f.part1"
	: >"$T/f.got1"
	for _ in $(seq 600); do
		[ -e "$T/f.go" ] && break
		sleep 0.1
	done
	cat >"$T/f.part2"
) <"$T/res.fifo" &
READER=$!
shoal result "$F" >"$T/res.fifo" 2>"$T/f.err" &
FETCH=$!
wait_for 600 "the first MiB of the result" test -e "$T/f.got1"
kill_master
respawn_master "${MASTER_ARGS[@]}"
: >"$T/f.go"
rc=0
wait "$FETCH" || rc=$?
[ $rc = 0 ] || fail "shoal result exited $rc across a restart: $(cat "$T/f.err")"
wait "$READER" || true
cat "$T/f.part1" "$T/f.part2" >"$T/f.out"
same_files "$T/f.ref" "$T/f.out" "result download across a master restart"
resumed_at=$(sed -n "s/.*job=$F event=fetch offset=\([0-9]*\).*/\1/p" "$T/master.log" | head -n 1)
[ -n "$resumed_at" ] && [ "$resumed_at" -gt 0 ] ||
	fail "the client did not resume its download from where it was (offset '$resumed_at')"
log "download resumed at byte $resumed_at of $(wc -c <"$T/f.ref")"

# Every job is still there, ended as it ended, and ids go on after the highest one.
workers_back 2
N=$(shoal submit --op count --range 0:10)
[ "$N" -gt "$F" ] || fail "job id $N after a restart does not follow $F"
run_ok /dev/null wait "$N"
log "done ($(elapsed_ms "$START_NS") ms)"
