#!/usr/bin/env bash
# Cluster-wide named locks (shoal lock NAME [--ttl S] -- CMD ARGS...).
#   - 8 concurrent `shoal lock` on one name: the commands' [start, end] intervals (written by
#     the commands themselves with date +%s.%N) are pairwise disjoint, and the fencing tokens
#     (SHOAL_LOCK_TOKEN) strictly increase in the order the commands started;
#   - exit statuses: the command's own, 128+N for a signal, 127 for a missing command (without
#     taking the lock), 2 for usage errors;
#   - a holder killed with SIGKILL (the `shoal lock` process only: its command is not killed
#     and keeps running, as the lease semantics intend) keeps the lock until its lease lapses: a
#     waiter gets it no sooner than 2/3 TTL after the kill (the last renewal was at most TTL/3
#     before it) and no later than TTL + 1.5 s (the master checks leases every 250 ms), and
#     with a larger token;
#   - a holder that cannot renew in time (stopped with SIGSTOP past its TTL) loses the lock:
#     when it continues it warns, its command gets SIGTERM, and it exits 1;
#   - a holder whose master goes away warns, its command gets SIGTERM, and it exits 3;
#   - tokens keep growing across a master restart.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_master

# ---- 8 concurrent holders, one name
log_file=$T/log
: >"$log_file"
# shellcheck disable=SC2016 # expanded by the command's shell
CMD='echo "S $SHOAL_LOCK_TOKEN $(date +%s.%N)" >>"$0"; sleep 0.2; echo "E $SHOAL_LOCK_TOKEN $(date +%s.%N)" >>"$0"'
holders=()
for i in $(seq 8); do
	shoal lock L8 --ttl 5 -- sh -c "$CMD" "$log_file" >"$T/h$i.out" 2>"$T/h$i.err" &
	holders+=("$!")
	PIDS+=("$!")
done
for i in $(seq 8); do
	rc=0
	wait "${holders[$((i - 1))]}" || rc=$?
	[ "$rc" = 0 ] || fail "holder $i exited $rc: $(cat "$T/h$i.err")"
done
[ "$(wc -l <"$log_file")" = 16 ] || fail "expected 16 log lines: $(cat "$log_file")"
# One line per command: token start end, in start order; then the checks.
python3 - "$log_file" <<'EOF' || fail "lock intervals: $(cat "$log_file")"
import sys
ev = {}
for line in open(sys.argv[1]):
    kind, tok, t = line.split()
    ev.setdefault(int(tok), {})[kind] = float(t)
assert len(ev) == 8, "8 distinct tokens expected, got %s" % sorted(ev)
iv = sorted((e["S"], e["E"], tok) for tok, e in ev.items())
for a, b in zip(iv, iv[1:]):
    assert a[1] < b[0], "intervals overlap: token %d [%f, %f] and token %d [%f, %f]" % (
        a[2], a[0], a[1], b[2], b[0], b[1])
    assert a[2] < b[2], "token %d started before token %d" % (a[2], b[2])
print("# 8 holders, tokens %s, gaps %s ms" % (
    [t for _, _, t in iv], [round((b[0] - a[1]) * 1000) for a, b in zip(iv, iv[1:])]),
    file=sys.stderr)
EOF
[ "$(grep -c 'lock=L8 event=granted' "$T/master.log")" = 8 ] || fail "master log: $(grep 'lock=L8' "$T/master.log")"
[ "$(grep -c 'lock=L8 event=released' "$T/master.log")" = 8 ] || fail "master log: $(grep 'lock=L8' "$T/master.log")"

# ---- exit statuses and usage errors
expect_exit 7 shoal lock S -- sh -c 'exit 7'
expect_exit $((128 + 15)) shoal lock S -- sh -c 'kill -TERM $$'
expect_exit 0 shoal lock S --ttl 0.5 true
expect_exit 127 shoal lock S2 -- no-such-command-shoal-test
grep -q 'no-such-command-shoal-test: command not found' "$T/err" || fail "missing command: $(cat "$T/err")"
! grep -q 'lock=S2 ' "$T/master.log" || fail "the lock was taken for a command that does not exist"
expect_exit 2 shoal lock S
expect_exit 2 shoal lock S --
expect_exit 2 shoal lock -- true
expect_exit 2 shoal lock S --ttl 0.05 -- true
expect_exit 2 shoal lock S --ttl x -- true
expect_exit 2 shoal lock "$(printf 'a\tb')" -- true
# Options after the command are the command's.
# shellcheck disable=SC2016 # expanded by the command's shell
expect_exit 0 shoal lock S -- sh -c 'test "$1" = --ttl' sh --ttl
# Without a master: exit 3.
SHOAL_MASTER=127.0.0.1:$(free_port) expect_exit 3 shoal lock S -- true

# ---- a holder killed with SIGKILL keeps the lock until its lease lapses
# The processes that are killed or stopped run the client binary itself (the shoal function
# wraps it in timeout, and $! would name a subshell).
TTL=3
# shellcheck disable=SC2016 # expanded by the command's shell
"$SHOAL_CLIENT_BIN" lock K --ttl $TTL -- sh -c 'echo $$ >"$1/cmd.pid"; echo "$SHOAL_LOCK_TOKEN" >"$1/tok1"; exec sleep 60' sh "$T" \
	2>"$T/holder.err" &
holder=$!
PIDS+=("$holder")
wait_for 100 "the holder's command runs" test -s "$T/tok1"
cmd_pid=$(cat "$T/cmd.pid")
PIDS+=("$cmd_pid")
# shellcheck disable=SC2016 # expanded by the command's shell
timeout 30 "$SHOAL_CLIENT_BIN" lock K --ttl $TTL -- sh -c 'date +%s%N >"$1/got"; echo "$SHOAL_LOCK_TOKEN" >"$1/tok2"' sh "$T" \
	2>"$T/waiter.err" &
waiter=$!
PIDS+=("$waiter")
sleep 0.5
[ ! -e "$T/got" ] || fail "the waiter got lock K while its holder was alive"
alive "$waiter" || fail "the waiter exited: $(cat "$T/waiter.err")"
kill -KILL "$holder"
kill_ns=$(date +%s%N)
wait "$holder" 2>/dev/null || true
wait_for $(((TTL + 5) * 10)) "the waiter gets lock K" test -s "$T/tok2"
got_ms=$((($(cat "$T/got") - kill_ns) / 1000000))
log "lock K: the waiter got it $got_ms ms after the holder was killed (ttl ${TTL} s)"
min_ms=$((TTL * 1000 * 2 / 3 - 100))
max_ms=$((TTL * 1000 + 1500))
[ "$got_ms" -ge "$min_ms" ] || fail "the waiter got lock K $got_ms ms after the kill, before the lease could lapse (>= $min_ms ms)"
[ "$got_ms" -le "$max_ms" ] || fail "the waiter got lock K $got_ms ms after the kill, long after the lease lapsed (<= $max_ms ms)"
[ "$(cat "$T/tok2")" -gt "$(cat "$T/tok1")" ] || fail "token $(cat "$T/tok2") after token $(cat "$T/tok1")"
rc=0
wait "$waiter" || rc=$?
[ "$rc" = 0 ] || fail "the waiter exited $rc: $(cat "$T/waiter.err")"
grep -q 'lock=K event=expired' "$T/master.log" || fail "the master did not log the lease's expiry"
# The killed holder's command was not killed with it: it is still running, and is stopped here.
alive "$cmd_pid" || fail "the killed holder's command ($cmd_pid) died with it"
kill -KILL "$cmd_pid"

# ---- a holder that cannot renew in time loses the lock: warning, SIGTERM to the command, exit 1
# shellcheck disable=SC2016 # expanded by the command's shell
"$SHOAL_CLIENT_BIN" lock P --ttl 1 -- sh -c 'trap "kill \$!; echo TERM >\"$1/term\"; exit 0" TERM; echo "$SHOAL_LOCK_TOKEN" >"$1/ptok"; sleep 60 & wait' sh "$T" \
	2>"$T/lost.err" &
lost=$!
PIDS+=("$lost")
wait_for 100 "the holder of P runs its command" test -s "$T/ptok"
kill -STOP "$lost"
# While it is stopped, the lease lapses and another client gets the lock.
# shellcheck disable=SC2016 # expanded by the command's shell
SHOAL_CMD_TIMEOUT=10 expect_exit 0 shoal lock P --ttl 1 -- sh -c 'echo "$SHOAL_LOCK_TOKEN" >"$1/ptok2"' sh "$T"
kill -CONT "$lost"
rc=0
for _ in $(seq 100); do alive "$lost" || break; sleep 0.1; done
wait "$lost" || rc=$?
[ "$rc" = 1 ] || fail "the holder that lost lock P exited $rc: $(cat "$T/lost.err")"
grep -q 'WARNING: lost lock P (token [0-9]*): the lease' "$T/lost.err" || fail "no warning: $(cat "$T/lost.err")"
wait_for 50 "the command of the holder that lost P gets SIGTERM" test -s "$T/term"
[ "$(cat "$T/ptok2")" -gt "$(cat "$T/ptok")" ] || fail "token $(cat "$T/ptok2") after token $(cat "$T/ptok")"

# ---- the master goes away while a lock is held: the next renewal fails, the command gets
# SIGTERM and shoal exits 3. Then, fencing tokens keep growing across the master's restart
# (same state dir): storage that remembers the highest token it saw must not be made to refuse
# every later holder.
# shellcheck disable=SC2016 # expanded by the command's shell
"$SHOAL_CLIENT_BIN" lock M --ttl 1.5 -- sh -c 'trap "kill \$!; echo TERM >\"$1/mterm\"; exit 0" TERM; echo up >"$1/mup"; sleep 60 & wait' sh "$T" \
	2>"$T/m.err" &
mholder=$!
PIDS+=("$mholder")
wait_for 100 "the holder of M runs its command" test -s "$T/mup"
highest=$(grep -o 'event=granted token=[0-9]*' "$T/master.log" | sed 's/.*=//' | sort -n | tail -n 1)
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
for _ in $(seq 100); do alive "$mholder" || break; sleep 0.1; done
rc=0
wait "$mholder" || rc=$?
[ "$rc" = 3 ] || fail "the holder of M exited $rc when the master went away: $(cat "$T/m.err")"
grep -q 'WARNING: cannot renew lock M (token [0-9]*): lost the connection to the master' "$T/m.err" ||
	fail "holder of M: $(cat "$T/m.err")"
wait_for 50 "the command of M gets SIGTERM" test -s "$T/mterm"
start_master # same port, same --state-dir
# shellcheck disable=SC2016 # expanded by the command's shell
expect_exit 0 shoal lock R -- sh -c 'echo "$SHOAL_LOCK_TOKEN"'
after=$(cat "$T/out")
log "highest token before the restart: $highest; first token after it: $after"
[ "$after" -gt "$highest" ] ||
	fail "after a master restart lock R was granted token $after, not above the $highest granted before it"
