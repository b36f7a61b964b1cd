#!/usr/bin/env bash
# The master's limits, each set low on its own master: the handshake deadline (a silent
# connection and one that dribbles a byte a second are both closed), connections in total and
# per source address, unfinished jobs, upload size (declared and streamed), a client that stops
# reading its result (disconnected; the job stays and its result is still fetchable), the
# largest frame, the write queue's lower bound; and --exec's process group dies with a
# cancelled task. Roles: a client cannot send worker messages, nor a worker client messages.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

WIRE=(timeout -k 2 90 python3 "$TESTS_DIR/wire.py")

# restart_master ARGS...: a fresh master (new port, new state dir) with these limits.
restart_master() {
	if [ -n "$MASTER_PID" ]; then
		stop_pid "$MASTER_PID"
		[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC"
		mv "$T/master.log" "$T/master-$MASTER_PID.log"
	fi
	rm -rf "$T/state"
	MASTER_PORT=
	start_master "$@"
}

# ---- handshake deadline: the whole handshake, not per byte
restart_master --handshake-timeout 1
for mode in silent dribble; do
	"${WIRE[@]}" slow "$MASTER_PORT" "$T/master.log" "$mode" "$MASTER_PID" >>"$T/slow.out" \
		2>"$T/wire.err" || fail "handshake deadline ($mode): $(cat "$T/wire.err")"
done
grep -q "^dribble: closed after .* [1-9][0-9]* bytes sent" "$T/slow.out" ||
	fail "the dribbling peer sent nothing? $(cat "$T/slow.out")"
log "$(cat "$T/slow.out")"

# ---- roles: each kind a role may not send closes that connection, with a log line
"${WIRE[@]}" roles "$MASTER_PORT" "$T/master.log" "$MASTER_PID" >"$T/roles.out" 2>"$T/wire.err" ||
	fail "roles: $(cat "$T/wire.err")"
[ "$(grep -c ': refused:' "$T/roles.out")" = 8 ] || fail "roles: $(cat "$T/roles.out")"
log "roles: $(grep -c ': refused:' "$T/roles.out") cross-role messages refused"

# ---- connections: at most 2 from one address, 3 in all
restart_master --max-connections-per-addr 2 --max-connections 3
"${WIRE[@]}" conns "$MASTER_PORT" 2 127.0.0.1 30 >"$T/hold1.out" 2>&1 &
hold1=$!
PIDS+=("$hold1")
wait_for 100 "two connections held" grep -q holding "$T/hold1.out"
expect_exit 3 shoal jobs
grep -q "too many connections from 127.0.0.1: at most 2 at once from one address" "$T/err" ||
	fail "per-address limit: $(cat "$T/err")"
"${WIRE[@]}" hello "$MASTER_PORT" 127.0.0.2 >"$T/hello.out" 2>&1 || fail "hello: $(cat "$T/hello.out")"
grep -q "^welcomed" "$T/hello.out" || fail "127.0.0.2 refused: $(cat "$T/hello.out")"
"${WIRE[@]}" conns "$MASTER_PORT" 1 127.0.0.2 30 >"$T/hold2.out" 2>&1 &
hold2=$!
PIDS+=("$hold2")
wait_for 100 "a third connection held" grep -q holding "$T/hold2.out"
"${WIRE[@]}" hello "$MASTER_PORT" 127.0.0.3 >"$T/hello.out" 2>&1 || fail "hello: $(cat "$T/hello.out")"
grep -q "refused: too many connections: the master serves at most 3" "$T/hello.out" ||
	fail "total limit: $(cat "$T/hello.out")"
grep -q "event=refused reason=\"too many connections" "$T/master.log" || fail "limits not logged"
kill "$hold1" "$hold2" 2>/dev/null || true
wait "$hold1" "$hold2" 2>/dev/null || true
wait_for 100 "the held connections to close" shoal jobs
log "connections: per-address and total limits refuse, and free up again"

# ---- unfinished jobs and upload size (no worker: jobs stay queued)
restart_master --max-queued-jobs 2 --max-upload 1000
for _ in 1 2; do run_ok "$T/id" submit --op count --range 0:10; done
expect_exit 1 shoal submit --op count --range 0:10
grep -q "2 unfinished jobs, its limit (--max-queued-jobs 2)" "$T/err" ||
	fail "queued jobs: $(cat "$T/err")"
run_ok "$T/out" cancel "$(cat "$T/id")"
run_ok "$T/id" submit --op count --range 0:10
log "unfinished jobs: the third submit is refused until one ends"
run_ok "$T/out" cancel "$(cat "$T/id")"
run_ok "$T/out" cancel 1

for _ in $(seq 500); do echo 123456789; done >"$T/big.txt" # 5000 bytes
expect_exit 2 shoal submit --op count --input "$T/big.txt"
grep -q "the input is 5000 bytes; the master takes uploads of at most 1000 bytes (--max-upload)" \
	"$T/err" || fail "declared upload size: $(cat "$T/err")"
start_worker w1 --slots 2
wait_workers 1
# Through a pipe, so the client cannot declare the size.
expect_exit 1 bash -c "cat '$T/big.txt' | '$SHOAL_CLIENT_BIN' run --op count --input - -q"
grep -q "larger than the 1000 bytes the master takes (--max-upload)" "$T/err" ||
	fail "streamed upload size: $(cat "$T/err")"
head -c 900 "$T/big.txt" >"$T/small.txt"
run_ok "$T/out" run --op count --input "$T/small.txt" -q
[ "$(cat "$T/out")" = 90 ] || fail "an upload under the limit counted $(cat "$T/out")"
log "uploads: over --max-upload refused (declared) or failed (streamed); under it fine"

# ---- a client that stops reading its result is disconnected; the job stays fetchable
restart_master --write-stall-timeout 2
start_worker w2 --slots 2
wait_workers 1
run_ok "$T/id" submit --op square --range 0:3000000 --partitions 8
job=$(cat "$T/id")
run_ok "$T/out" wait "$job"
"${WIRE[@]}" stall "$MASTER_PORT" "$job" 60 >"$T/stall.out" 2>&1 &
staller=$!
PIDS+=("$staller")
wait_for 100 "the staller to connect" grep -q "^127.0.0.1:" "$T/stall.out"
peer=$(head -1 "$T/stall.out")
wait_for 300 "the master to drop the stalled client" \
	grep -q "peer=$peer event=dropped reason=\"stopped reading" "$T/master.log"
kill "$staller" 2>/dev/null || true
wait "$staller" 2>/dev/null || true
run_ok "$T/result" result "$job"
refs ref square range:0:3000000 >"$T/ref"
same_files "$T/ref" "$T/result" "the result after a stalled fetch"
log "stall: $(grep -o "peer=$peer event=dropped reason=\"[^\"]*\"" "$T/master.log")"

# ---- --exec's process group dies with a cancelled task
restart_master
start_worker x --slots 1 --allow-exec
wait_workers 1
MARK="77.$$$(date +%N)"
run_ok "$T/id" submit --exec "sleep $MARK & sleep $MARK; cat" --range 0:1
wait_for 100 "the exec command to start" pgrep -f "sleep $MARK"
run_ok "$T/out" cancel "$(cat "$T/id")"
wait_for 100 "the exec process group to die" eval "! pgrep -f 'sleep $MARK' >/dev/null"
log "exec: a cancelled task's command and its background child are gone"

# ---- frames over --max-frame close that connection; --max-write-queue must hold a frame
restart_master --max-frame 4096 --max-write-queue $((4096 + 4 * 1048576))
"${WIRE[@]}" case bigframe "$MASTER_PORT" "$T/master.log" "$MASTER_PID" >"$T/case.out" 2>&1 ||
	fail "bigframe: $(cat "$T/case.out")"
expect_exit 2 timeout -k 2 30 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --http off --state-dir "$T/s2" \
	--max-write-queue 1000000
grep -q "max-write-queue 1000000 is below --max-frame + 4 MiB" "$T/err" ||
	fail "--max-write-queue bound: $(cat "$T/err")"
log "max frame: $(cat "$T/case.out")"
