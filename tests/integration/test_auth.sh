#!/usr/bin/env bash
# The cluster secret: a job with the secret on master, worker and client; a wrong secret, a
# missing secret on either side, a worker presenting a client's proof and replayed handshakes
# are refused with a logged reason (the peer's address, never the secret); secret files that
# others can read, or that are empty or short, are refused at start; listening beyond loopback
# needs a secret or --insecure. Client exit code 3 on authentication failure.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

WIRE=(timeout -k 2 30 python3 "$TESTS_DIR/wire.py")

mksecret() { # mksecret FILE: a fresh random secret, mode 0600
	(umask 077 && head -c 32 /dev/urandom | base64 >"$1")
}
SECRET=$T/secret
OTHER=$T/other-secret
mksecret "$SECRET"
mksecret "$OTHER"

# wait_exit PID WHAT: waits (bounded) for a daemon the test expects to exit on its own and
# sets EXIT_RC to its status.
EXIT_RC=
wait_exit() {
	local pid=$1
	DEAD_OK[$pid]=1
	wait_for 300 "$2 to exit" eval "! alive $pid"
	EXIT_RC=0
	wait "$pid" 2>/dev/null || EXIT_RC=$?
}

# ---- a job with the secret on all three (flag on the master and worker, env on the client)
start_master --secret-file "$SECRET"
grep -q "event=secret_loaded" "$T/master.log" || fail "master did not load the secret"
start_worker w1 --secret-file "$SECRET" --slots 2
export SHOAL_SECRET_FILE=$SECRET
wait_workers 1
run_ok "$T/out" run --op square --range 0:1000 --partitions 4 -q
refs ref square range:0:1000 >"$T/ref"
same_files "$T/ref" "$T/out" "square with a secret"
run_ok "$T/out" --secret-file "$SECRET" run --op sum --range 0:100 -q
[ "$(cat "$T/out")" = 4950 ] || fail "sum with --secret-file: $(cat "$T/out")"
log "a job with the secret on master, worker and client: ok"

# ---- the client: wrong secret, no secret (exit 3, clear message; the master logs the peer)
expect_exit 3 shoal --secret-file "$OTHER" jobs
grep -q "cannot authenticate with the master.*could not prove" "$T/err" ||
	fail "wrong secret: client message: $(cat "$T/err")"
wait_for 50 "master log of the wrong secret" grep -q "event=auth_failed role=client" "$T/master.log"
log "wrong secret: $(cat "$T/err")"

expect_exit 3 env -u SHOAL_SECRET_FILE "$SHOAL_CLIENT_BIN" jobs
grep -q "refused the connection: authentication required" "$T/err" ||
	fail "no secret: client message: $(cat "$T/err")"
grep -q "event=refused reason=\"authentication required: .*this client has none" "$T/master.log" ||
	fail "no secret: the master did not log the refusal"
log "no secret on the client: $(cat "$T/err")"

# ---- workers: without the secret, and with another one, they are refused and exit 1
unset SHOAL_SECRET_FILE
start_worker nosecret
export SHOAL_SECRET_FILE=$SECRET
wait_exit "${WORKER_PID[nosecret]}" "the worker without a secret"
[ "$EXIT_RC" = 1 ] || fail "worker without a secret exited $EXIT_RC, expected 1"
grep -q "refused this worker: authentication required" "$T/worker-nosecret.log" ||
	fail "worker without a secret: $(tail -3 "$T/worker-nosecret.log")"
start_worker wrong --secret-file "$OTHER"
wait_exit "${WORKER_PID[wrong]}" "the worker with a wrong secret"
[ "$EXIT_RC" = 1 ] || fail "worker with a wrong secret exited $EXIT_RC, expected 1"
grep -q "handshake with master=.* failed: authentication failed: the master could not prove" \
	"$T/worker-wrong.log" || fail "worker with a wrong secret: $(tail -3 "$T/worker-wrong.log")"
wait_for 50 "master log of the worker's failure" grep -q "event=auth_failed role=worker" "$T/master.log"
wait_workers 1
log "workers without / with a wrong secret: refused, exit 1"

# ---- by hand: a correct handshake, a worker presenting a client's proof, replays
for mode in client role replay; do
	"${WIRE[@]}" auth "$MASTER_PORT" "$T/master.log" "$SECRET" "$mode" "$MASTER_PID" >>"$T/wire.out" \
		2>"$T/wire.err" || fail "wire.py auth $mode: $(cat "$T/wire.err")"
done
grep -q "role: refused: authentication failed: role binding" "$T/wire.out" || fail "role binding"
grep -q "replay-hello: refused: .*replayed" "$T/wire.out" || fail "replayed hello"
grep -q "replay-proof: refused: .*wrong proof" "$T/wire.out" || fail "replayed proof"
log "$(grep -c ": refused:" "$T/wire.out") hand-made handshakes refused as they should be"
wait_workers 1
run_ok "$T/out" run --op count --range 0:10 -q
[ "$(cat "$T/out")" = 10 ] || fail "count after the refusals: $(cat "$T/out")"

# The secret itself appears in no log.
key=$(tr -d '\n' <"$SECRET")
for f in "$T"/*.log; do
	! grep -qF "$key" "$f" || fail "the secret appears in $(basename "$f")"
done

stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC"
stop_pid "${WORKER_PID[w1]}"

# ---- a master without a secret, a client and a worker with one: both sides say so
mv "$T/master.log" "$T/master-secret.log"
rm -rf "$T/state"
MASTER_PORT=
unset SHOAL_SECRET_FILE
start_master
expect_exit 3 shoal --secret-file "$SECRET" jobs
grep -q "authentication mismatch: this client has a cluster secret but the master has none" \
	"$T/err" || fail "secret on the client only: $(cat "$T/err")"
grep -q "event=refused reason=\"authentication mismatch" "$T/master.log" ||
	fail "secret on the client only: the master did not log it"
start_worker secretonly --secret-file "$SECRET"
wait_exit "${WORKER_PID[secretonly]}" "the worker with a secret the master lacks"
[ "$EXIT_RC" = 1 ] || fail "worker with a secret the master lacks exited $EXIT_RC"
grep -q "authentication mismatch" "$T/worker-secretonly.log" || fail "worker: no mismatch message"
# The plain handshake still works without a secret anywhere.
start_worker plain
wait_workers 1
run_ok "$T/out" run --op count --range 0:10 -q
[ "$(cat "$T/out")" = 10 ] || fail "count without secrets: $(cat "$T/out")"
log "secret on one side only: refused on both sides; no secret anywhere: plain handshake"

# ---- unusable secret files are refused at start, with what to do
cp "$SECRET" "$T/open-secret"
chmod 644 "$T/open-secret"
expect_exit 2 timeout -k 2 30 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --http off --state-dir "$T/state2" --secret-file "$T/open-secret"
grep -q "readable by group or others (mode 0644).*chmod 600" "$T/err" || fail "master, 0644: $(cat "$T/err")"
expect_exit 2 timeout -k 2 30 "$SHOAL_WORKER_BIN" --master "$SHOAL_MASTER" --secret-file "$T/open-secret"
grep -q "readable by group or others.*chmod 600" "$T/err" || fail "worker, 0644: $(cat "$T/err")"
expect_exit 2 shoal --secret-file "$T/open-secret" jobs
grep -q "readable by group or others.*chmod 600" "$T/err" || fail "client, 0644: $(cat "$T/err")"
chmod 640 "$T/open-secret"
expect_exit 2 env SHOAL_SECRET_FILE="$T/open-secret" "$SHOAL_CLIENT_BIN" jobs
grep -q "readable by group or others (mode 0640)" "$T/err" || fail "client, env, 0640: $(cat "$T/err")"
(umask 077 && : >"$T/empty" && printf 'short\n' >"$T/short")
expect_exit 2 timeout -k 2 30 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --http off --state-dir "$T/state2" --secret-file "$T/empty"
grep -q "is empty" "$T/err" || fail "empty secret: $(cat "$T/err")"
expect_exit 2 shoal --secret-file "$T/short" jobs
grep -q "holds 5 bytes; a cluster secret needs at least 16" "$T/err" || fail "short secret: $(cat "$T/err")"
expect_exit 2 shoal --secret-file "$T/missing" jobs
grep -q "cannot open secret file" "$T/err" || fail "missing secret file: $(cat "$T/err")"
log "group/other-readable, empty, short and missing secret files refused"

# ---- listening beyond loopback needs a secret, or --insecure (said loudly)
expect_exit 2 timeout -k 2 30 "$SHOAL_MASTER_BIN" --listen 0.0.0.0:0 --http off --state-dir "$T/state2"
grep -q "refusing to listen on 0.0.0.0 (--listen) without a cluster secret.*--insecure" "$T/err" ||
	fail "0.0.0.0 without a secret: $(cat "$T/err")"
expect_exit 2 timeout -k 2 30 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --http 0.0.0.0:0 --state-dir "$T/state2"
grep -q "refusing to listen on 0.0.0.0 (--http) without a cluster secret.*--insecure" "$T/err" ||
	fail "--http 0.0.0.0 without a secret: $(cat "$T/err")"
# The accepted cases bind the wildcard address inside a network namespace of their own (no
# interface but a down loopback), so nothing is exposed to the machine's networks.
if unshare -n true 2>/dev/null; then
	for args in "--insecure" "--secret-file $SECRET"; do
		rm -f "$T/wild.log"
		# shellcheck disable=SC2086
		unshare -n "$SHOAL_MASTER_BIN" --listen 0.0.0.0:0 --http 0.0.0.0:0 --state-dir "$T/state3" $args \
			2>"$T/wild.log" &
		wild=$!
		PIDS+=("$wild")
		DAEMON[$wild]=shoal-master
		wait_for 100 "the master on 0.0.0.0 ($args)" grep -q "event=listening address=0.0.0.0" "$T/wild.log"
		if [ "$args" = --insecure ]; then
			[ "$(grep -c "WARN master: event=insecure INSECURE" "$T/wild.log")" = 2 ] ||
				fail "--insecure not logged loudly for both listeners: $(cat "$T/wild.log")"
		fi
		stop_pid "$wild"
		[ "$STOP_RC" = 0 ] || fail "master on 0.0.0.0 ($args) exited $STOP_RC"
	done
	log "0.0.0.0 (--listen, --http): refused without a secret; started with --insecure (warned) and with a secret"
else
	log "no network namespaces here: the accepted 0.0.0.0 cases are not exercised"
fi
