#!/usr/bin/env bash
# Malformed input on the master's port (raw sockets from python3, hand-encoded protobuf): each
# bad connection is closed or refused with a log line saying why, the master stays alive and
# keeps serving, and a claimed frame length is never allocated up front. Fake workers that send
# malformed, unsorted or stray results cannot corrupt a job.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

WIRE=(timeout -k 2 30 python3 "$TESTS_DIR/wire.py")

start_master

# ---- fake workers first, while no real worker can take the tasks
for mode in garbage unsorted stray; do
	# A fresh file: the previous fake's "registered" must not count for this one.
	rm -f "$T/fake.out"
	"${WIRE[@]}" fakeworker "$MASTER_PORT" "$mode" 20 >"$T/fake.out" 2>"$T/fake.err" &
	fake=$!
	PIDS+=("$fake")
	wait_for 100 "fake worker ($mode) registered" grep -q registered "$T/fake.out"
	op=sum
	[ "$mode" = unsorted ] && op=wordcount
	expect_exit 1 shoal run --op "$op" --range 0:100 --partitions 2 --retries 2 -q
	grep -qiE "malformed|out of order" "$T/err" || fail "fake worker ($mode): job error: $(cat "$T/err")"
	[ ! -s "$T/out" ] || fail "fake worker ($mode): a result was printed: $(head -c 200 "$T/out")"
	alive "$MASTER_PID" || fail "master died with a fake worker ($mode)"
	kill "$fake" 2>/dev/null || true
	wait "$fake" 2>/dev/null || true
done
wait_workers 0

start_worker w1 --slots 2
wait_workers 1

count_ok() {
	run_ok "$T/out" run --op count --range 0:10 -q
	[ "$(cat "$T/out")" = 10 ] || fail "count after $1: '$(cat "$T/out")'"
}
count_ok "the fake workers"

# ---- one malformed connection at a time; after each the master is alive and serves jobs
for c in garbage garbage-small truncated huge zero not-envelope unknown-kind version role \
	before-hello after-hello-garbage missing-required; do
	"${WIRE[@]}" case "$c" "$MASTER_PORT" "$T/master.log" "$MASTER_PID" >>"$T/cases.out" 2>"$T/case.err" ||
		fail "case $c: $(cat "$T/case.err")"
	count_ok "case $c"
done
log "$(grep -vc '^refusal' "$T/cases.out") malformed-connection cases ok"
grep -q "refusal: .*99.*1\|refusal: .*1.*99" "$T/cases.out" || fail "no refusal naming both versions"

# ---- memory: a claimed length is never allocated before the bytes arrive
# RSS shows what was touched; VmSize also shows a buffer allocated for a claimed length and
# left untouched (8 x 64 MiB = 512 MiB would show; the threshold leaves room for thread stacks).
rss0=$(proc_kb "$MASTER_PID" VmRSS)
vsz0=$(proc_kb "$MASTER_PID" VmSize)
# 64 connections announcing 4 GiB frames (over the maximum: closed at once) ...
"${WIRE[@]}" hold "$MASTER_PORT" 64 4294967295 0.5 >/dev/null
# ... and 8 announcing frames of 64 MiB (the maximum, so legal) with 1 KiB sent, held open.
"${WIRE[@]}" hold "$MASTER_PORT" 8 67108864 3 >"$T/hold.out" &
holder=$!
PIDS+=("$holder")
wait_for 100 "connections held" grep -q holding "$T/hold.out"
sleep 0.5
rss1=$(proc_kb "$MASTER_PID" VmRSS)
vsz1=$(proc_kb "$MASTER_PID" VmSize)
count_ok "held partial frames" # a partial frame on other connections blocks no one
wait "$holder" || fail "the holder of partial frames failed"
rss2=$(proc_kb "$MASTER_PID" VmRSS)
log "master VmRSS: ${rss0} kB before, ${rss1} kB with 8 x 64 MiB claims held, ${rss2} kB after;" \
	"VmSize ${vsz0} kB, then ${vsz1} kB"
[ $((vsz1 - vsz0)) -lt 262144 ] ||
	fail "master VmSize grew by $(((vsz1 - vsz0) / 1024)) MB with 8 x 64 MiB claimed: it allocates claimed lengths"
[ $((rss1 - rss0)) -lt 10240 ] ||
	fail "master RSS grew by $(((rss1 - rss0) / 1024)) MB while partial frames were claimed"
[ $((rss2 - rss0)) -lt 10240 ] || fail "master RSS grew by $(((rss2 - rss0) / 1024)) MB after the claims"
grep -q "exceeds the maximum" "$T/master.log" || fail "no log line for over-long frames"

alive "$MASTER_PID" || fail "master died"
wait_workers 1
count_ok "everything"

# ---- an uploader that ignores flow control (sends 256 MiB without waiting for UploadAck): the
# master closes it after about a window, logs why, fails the job, and stays small.
rss0=$(proc_kb "$MASTER_PID" VmRSS)
rc=0
"${WIRE[@]}" overrun "$MASTER_PORT" "$T/master.log" 256 >"$T/overrun.out" 2>"$T/overrun.err" || rc=$?
job=$(sed -n 's/^job //p' "$T/overrun.out")
[ -n "$job" ] || fail "overrun: $(cat "$T/overrun.err")"
alive "$MASTER_PID" || fail "master died with an overrunning upload"
wait_for 100 "the overrunning upload's job ends" \
	eval "job_json $job | jq -e '.state == \"failed\" or .state == \"cancelled\"' >/dev/null"
hwm=$(proc_kb "$MASTER_PID" VmHWM)
log "overrun: master VmRSS ${rss0} kB before, peak ${hwm} kB; job $job: $(job_json "$job" | jq -r .error)"
[ "$SANITIZED" = 1 ] || [ $((hwm - rss0)) -lt 65536 ] || fail "master peak grew by $(((hwm - rss0) / 1024)) MB with an overrunning upload"
count_ok "an overrunning upload"
# Last, as it fails today: master/upload.c closes the connection with conn_close(), which logs
# at debug level only, and the job's error then says the client disconnected.
[ "$rc" = 0 ] || fail "$(sed "s/^FAIL: //" "$T/overrun.err")"
