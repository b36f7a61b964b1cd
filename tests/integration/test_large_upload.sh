#!/usr/bin/env bash
# A ~300 MB input uploaded with --input FILE and --input - (count, wordcount), and a ~300 MB
# result streamed back (grep): results equal the references, and neither the client nor the
# master holds the file: their peak RSS stays far below its size (chunked, flow-controlled
# upload; results streamed from disk).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

START_NS=$(date +%s%N)
# Sanitized builds (lib.sh's SANITIZED) only report the RSS figures, and use a smaller file to
# stay fast.
MB=300
[ "$SANITIZED" = 0 ] || MB=80
refs bigtext "$T/big.txt" "$MB" "$T/wordcount.ref"
size_kb=$(($(stat -c %s "$T/big.txt") / 1024))
wc -l <"$T/big.txt" >"$T/count.ref"
log "input: $size_kb kB, $(cat "$T/count.ref") lines"
# "Far below the input": half of it for the master (which holds the data of the tasks in
# flight: partition size x tasks in flight, whatever the input size), 64 MiB for the client.
LIMIT_KB=$((size_kb / 2))

# check_kb WHAT KB LIMIT_KB
check_kb() {
	log "$1: peak RSS $2 kB (limit $3 kB; input $size_kb kB) at $(elapsed_ms "$START_NS") ms"
	[ -n "$2" ] || fail "$1: no RSS figure"
	[ "$SANITIZED" = 1 ] || [ "$2" -lt "$3" ] || fail "$1: peak RSS $2 kB, over $3 kB"
}

# timed_run WHAT OUT ARGS...: `shoal ARGS...` under /usr/bin/time; sets CLIENT_KB (its peak RSS).
CLIENT_KB=
timed_run() {
	local what=$1 out=$2 rc=0
	shift 2
	timeout -k 5 300 /usr/bin/time -f "maxrss_kb=%M" -o "$T/time.txt" \
		"$SHOAL_CLIENT_BIN" "$@" >"$out" 2>"$T/err" || rc=$?
	[ "$rc" = 0 ] || fail "$what: exit $rc: $(head -c 1000 "$T/err")"
	CLIENT_KB=$(sed -n 's/^maxrss_kb=//p' "$T/time.txt")
}

start_master --upload-resume-timeout 1
start_worker a --slots 2
start_worker b --slots 2
wait_workers 2

# ---- many partitions: upload, count, and a large result streamed back
timed_run "count --input FILE" "$T/out" run --op count --input "$T/big.txt" --partitions 400 -q
same_files "$T/count.ref" "$T/out" "count of the uploaded file"
check_kb "client (count --input FILE)" "$CLIENT_KB" 65536
check_kb "master (count --input FILE)" "$(proc_kb "$MASTER_PID" VmHWM)" "$LIMIT_KB"

timeout 300 cat "$T/big.txt" | {
	timed_run "count --input -" "$T/out" run --op count --input - --partitions 400 -q
	echo "$CLIENT_KB" >"$T/stdin_kb"
}
same_files "$T/count.ref" "$T/out" "count of stdin"
check_kb "client (count --input -)" "$(cat "$T/stdin_kb")" 65536
check_kb "master (count --input -)" "$(proc_kb "$MASTER_PID" VmHWM)" "$LIMIT_KB"

# grep for a word on most lines: a result nearly as large as the input, spilled by the master
# and streamed to the client.
LC_ALL=C grep -F -- w1 "$T/big.txt" >"$T/grep.ref"
timed_run "grep" /dev/null run --op grep --arg pattern=w1 --input "$T/big.txt" --partitions 400 -q \
	-o "$T/grep.out"
same_files "$T/grep.ref" "$T/grep.out" "grep with a large result"
log "grep result: $(($(stat -c %s "$T/grep.out") / 1024)) kB"
check_kb "client (grep, large result)" "$CLIENT_KB" 65536
check_kb "master (grep, large result)" "$(proc_kb "$MASTER_PID" VmHWM)" "$LIMIT_KB"

# A client killed while it downloads the result: the master carries on, the result can be
# fetched again whole.
gid=$(shoal jobs --json | jq '.[-1].job_id')
rm -f "$T/grep.out"
"$SHOAL_CLIENT_BIN" result "$gid" -o "$T/grep.out" 2>/dev/null &
fetcher=$!
PIDS+=("$fetcher")
part_downloaded() { [ "$(stat -c %s "$T/grep.out" 2>/dev/null || echo 0)" -gt 1000000 ]; }
wait_for 300 "part of the result downloaded" part_downloaded
kill -KILL "$fetcher"
wait "$fetcher" 2>/dev/null || true
alive "$MASTER_PID" || fail "the master died when a downloading client was killed"
run_ok /dev/null result "$gid" -o "$T/grep.out"
same_files "$T/grep.ref" "$T/grep.out" "grep result fetched again after a killed download"
rm -f "$T/grep.ref" "$T/grep.out"

# A client killed while it uploads: the job fails once --upload-resume-timeout (1 s here)
# passes without the client resuming (it does not wait forever in "uploading"), the partial
# upload is removed from the state dir, the master goes on serving. The client
# reads a pipe fed 20 MB and then nothing, so the upload is certainly in progress.
state_kb0=$(du -sk "$T/state" | cut -f1)
mkfifo "$T/feed"
python3 -c '
import sys, time
with open(sys.argv[1], "rb") as f:
    sys.stdout.buffer.write(f.read(20 << 20))
sys.stdout.flush()
time.sleep(120)' "$T/big.txt" >"$T/feed" &
feeder=$!
PIDS+=("$feeder")
"$SHOAL_CLIENT_BIN" run --op count --input - -q <"$T/feed" >/dev/null 2>&1 &
uploader=$!
PIDS+=("$uploader")
uploading() {
	[ "$(shoal jobs --json | jq -r --argjson g "$gid" '.[-1] | select(.job_id > $g) | .state')" = uploading ]
}
wait_for 300 "an upload in progress" uploading
sleep 0.5
kill -KILL "$uploader"
wait "$uploader" 2>/dev/null || true
kill "$feeder"
wait "$feeder" 2>/dev/null || true
uid=$(shoal jobs --json | jq '.[-1].job_id')
wait_for 100 "the killed uploader's job $uid ends" \
	eval "job_json $uid | jq -e '.state == \"failed\" or .state == \"cancelled\"' >/dev/null"
log "killed uploader: job $uid $(job_json "$uid" | jq -r '"\(.state) after \(.input_bytes) bytes: \(.error)"')"
job_json "$uid" | jq -r .error | grep -q "did not resume it within 1 s" ||
	fail "the killed uploader's job does not say why it failed: $(job_json "$uid")"
upload_removed() { [ $(($(du -sk "$T/state" | cut -f1) - state_kb0)) -lt 10240 ]; }
wait_for 50 "the partial upload removed from the state dir" upload_removed

# ---- default partitioning (the master picks the partition size)
timed_run "wordcount --input FILE" /dev/null run --op wordcount --input "$T/big.txt" -q \
	-o "$T/wordcount.out"
same_files "$T/wordcount.ref" "$T/wordcount.out" "wordcount of the uploaded file"
check_kb "client (wordcount --input FILE)" "$CLIENT_KB" 65536
tasks=$(shoal jobs --json | jq '.[-1].tasks_total')
# The master reads each assigned task's whole partition into memory (up to 4 MiB by default
# for uploads) and keeps a window of tasks per worker in flight, so its peak grows with
# partition size x tasks in flight.
check_kb "master (default partitioning, $tasks tasks)" "$(proc_kb "$MASTER_PID" VmHWM)" "$LIMIT_KB"
