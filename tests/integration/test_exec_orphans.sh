#!/usr/bin/env bash
# Nothing an --exec command starts outlives its attempt (worker/shim.h):
#  - a process that left the command's process group (setsid) is killed when the attempt's
#    --task-timeout passes, and when the command ends on its own;
#  - when the worker is SIGKILLed, its commands die with it: the command itself, a background
#    child, and a setsid one (no orphan runs beside the retried attempt).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

MARK="70.$$$(date +%N)"

# wait_file F: bounded wait until F exists and is not empty.
wait_file() {
	for _ in $(seq 600); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	fail "$1 was never written"
}

# wait_gone PID WHAT: bounded wait until process PID has ended.
wait_gone() {
	for _ in $(seq 300); do
		[ -d "/proc/$1" ] || return 0
		sleep 0.05
	done
	fail "$2 (pid $1: $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)) is still running"
}

start_master
start_worker a --slots 2 --allow-exec --cache-dir "$T/cache-a"
wait_workers 1

# ---- a setsid process of a command that runs past its timeout is stopped with it
expect_exit 1 shoal run --exec "setsid sleep $MARK & echo \$! >\"$T/escaped\"; exec sleep $MARK" \
	--range 0:1 --task-timeout 1 --retries 1 -q
grep -q "ran longer than the task timeout" "$T/err" || fail "timeout error: $(cat "$T/err")"
wait_file "$T/escaped"
wait_gone "$(cat "$T/escaped")" "a setsid process of a timed-out command"

# ---- a daemon left behind by a command that succeeded is stopped when the command ends
run_ok "$T/out" run --exec "setsid sh -c 'echo \$\$ >\"$T/daemon\"; exec sleep $MARK' </dev/null >/dev/null 2>&1 &
while [ ! -s \"$T/daemon\" ]; do sleep 0.05; done; cat" --range 0:1 -q
[ "$(cat "$T/out")" = 0 ] || fail "the command's result: '$(cat "$T/out")'"
wait_gone "$(cat "$T/daemon")" "a daemon started by a finished command"

# ---- kill -9 of the worker: its commands and what they started die with it
shoal submit --exec "sleep $MARK & echo \$! >\"$T/bg.\$SHOAL_PARTITION\"
setsid sleep $MARK & echo \$! >\"$T/esc.\$SHOAL_PARTITION\"
echo \$\$ >\"$T/sh.\$SHOAL_PARTITION\"; exec sleep $MARK" --range 0:2 --partitions 2 -q >/dev/null
for p in 0 1; do
	for f in bg esc sh; do wait_file "$T/$f.$p"; done
done
kill -KILL "${WORKER_PID[a]}"
daemon_killed "${WORKER_PID[a]}"
for p in 0 1; do
	wait_gone "$(cat "$T/sh.$p")" "the command of a SIGKILLed worker"
	wait_gone "$(cat "$T/bg.$p")" "a background child of a SIGKILLed worker's command"
	wait_gone "$(cat "$T/esc.$p")" "a setsid process of a SIGKILLed worker's command"
done

log "ok"
