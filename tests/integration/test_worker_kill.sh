#!/usr/bin/env bash
# A worker killed with SIGKILL in the middle of a job: the job still succeeds with exactly the
# reference result, the master drops the dead worker, and a replacement worker gets work.
# Twice: a wordcount (merged result) and a square (ordered, spilled result). Then a worker that
# hangs (SIGSTOP) during a job: the job still succeeds, the master drops the silent worker after
# --heartbeat-timeout, and the worker registers again once it resumes.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

SQ_N=5000000
# References (python3): the square one in the background while the cluster works.
python3 -c '
import sys
w = sys.stdout.write
n = int(sys.argv[1])
for i in range(0, n, 100000):
    w("".join("%d\n" % (x * x) for x in range(i, min(n, i + 100000))))' "$SQ_N" >"$T/square.ref" &
refpid=$!
PIDS+=("$refpid")
refs bigtext "$T/big.txt" 60 "$T/wordcount.ref"

HB_TIMEOUT=3
start_master --heartbeat-timeout "$HB_TIMEOUT"
for w in a b c; do start_worker "$w" --slots 2; done
wait_workers 3

# kill_midway ID NAME: SIGKILLs worker NAME once job ID is partly done (0 < done < total).
kill_midway() {
	local id=$1 name=$2 st state ndone total
	for _ in $(seq 3000); do
		st=$(job_json "$id")
		read -r state ndone total < <(jq -r '"\(.state) \(.tasks_done) \(.tasks_total)"' <<<"$st")
		case $state in
		succeeded | failed | cancelled) fail "job $id ended before worker $name could be killed: $st" ;;
		esac
		if [ "$total" -gt 0 ] && [ "$ndone" -gt 0 ] && [ "$ndone" -lt "$total" ]; then
			daemon_killed "${WORKER_PID[$name]}"
			kill -KILL "${WORKER_PID[$name]}"
			log "job $id: killed worker $name at $ndone/$total tasks done"
			return 0
		fi
		sleep 0.01
	done
	fail "job $id never got partly done: $st"
}

# requeued NAME: tasks_requeued of the master's worker_gone line for NAME (waits for it).
requeued() {
	wait_for 100 "master drops worker $1" grep -q "event=worker_gone .*name=$1 " "$T/master.log"
	sed -n "s/.*event=worker_gone .*name=$1 .*tasks_requeued=\([0-9]*\).*/\1/p" "$T/master.log" | tail -n 1
}

# ---- wordcount of an uploaded 60 MB file in 400 partitions; kill worker b midway
id=$(shoal submit --op wordcount --input "$T/big.txt" --partitions 400)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
kill_midway "$id" b
expect_exit 0 shoal wait "$id"
run_ok /dev/null result "$id" -o "$T/wordcount.out"
same_files "$T/wordcount.ref" "$T/wordcount.out" "wordcount with worker b killed midway"
n=$(requeued b)
log "worker b: $n tasks requeued"
[ "$n" -gt 0 ] || log "note: worker b held no task when it was killed"
wait_workers 2
[ "$(shoal workers --json | jq -r '[.[].name] | sort | join(",")')" = a,c ] ||
	fail "workers after killing b: $(shoal workers --json)"

# ---- a replacement worker receives work
start_worker d --slots 2
wait_workers 3
run_ok "$T/out" run --op sum --range 0:100000 --partitions 60 --strategy round-robin -q
[ "$(cat "$T/out")" = 4999950000 ] || fail "sum with the replacement worker: $(cat "$T/out")"
d_done=$(shoal workers --json | jq '.[] | select(.name == "d") | .tasks_done')
[ "${d_done:-0}" -gt 0 ] || fail "the replacement worker got no work: $(shoal workers --json)"

# ---- square 0:5000000 in 1000 partitions (ordered result); kill worker c midway. The job is
# quick, so c is stopped (SIGSTOP) before the job starts: the master hands it its share, c
# cannot finish it, and the SIGKILL certainly lands while c holds tasks of a running job.
kill -STOP "${WORKER_PID[c]}"
id=$(shoal submit --op square --range "0:$SQ_N" --partitions 1000)
kill_midway "$id" c
expect_exit 0 shoal wait "$id"
run_ok /dev/null result "$id" -o "$T/square.out"
wait "$refpid" || fail "the python reference failed"
same_files "$T/square.ref" "$T/square.out" "square with worker c killed midway"
n=$(requeued c)
log "worker c: $n tasks requeued"
[ "$n" -gt 0 ] || fail "worker c (stopped, then killed) held no task of job $id"
wait_workers 2
[ "$(shoal workers --json | jq -r '[.[].name] | sort | join(",")')" = a,d ] ||
	fail "workers after killing c: $(shoal workers --json)"
st=$(job_json "$id")
[ "$(jq .tasks_done <<<"$st")" = 1000 ] || fail "square job: $st"

# ---- a worker that hangs: SIGSTOP a while the wordcount runs again
kill -STOP "${WORKER_PID[a]}"
stopped_ns=$(date +%s%N)
id=$(shoal submit --op wordcount --input "$T/big.txt" --partitions 100)
expect_exit 0 shoal wait "$id"
run_ok /dev/null result "$id" -o "$T/wordcount2.out"
same_files "$T/wordcount.ref" "$T/wordcount2.out" "wordcount with worker a hung"
wait_for 200 "the master drops the silent worker a" \
	eval "[ \"\$(shoal workers --json | jq -r '[.[].name] | join(\",\")')\" = d ]"
ms=$(elapsed_ms "$stopped_ns")
log "silent worker a dropped after $ms ms (heartbeat timeout ${HB_TIMEOUT} s)"
# Its last heartbeat (every second) may precede the SIGSTOP by up to a second.
[ "$ms" -ge $((HB_TIMEOUT * 1000 - 1200)) ] || fail "worker a dropped after $ms ms, before the heartbeat timeout"
grep "event=worker_gone .*name=a " "$T/master.log" | tail -n 1 | grep -qiE "heartbeat|silent|timeout|timed out" ||
	fail "the master's reason for dropping a: $(grep "name=a " "$T/master.log" | tail -n 1)"
kill -CONT "${WORKER_PID[a]}"
wait_workers 2
run_ok "$T/out" run --op sum --range 0:100000 --partitions 60 --strategy round-robin -q
[ "$(cat "$T/out")" = 4999950000 ] || fail "sum after worker a came back: $(cat "$T/out")"
a_done=$(shoal workers --json | jq '.[] | select(.name == "a") | .tasks_done')
[ "${a_done:-0}" -gt 0 ] || fail "worker a got no work after it came back: $(shoal workers --json)"
