#!/usr/bin/env bash
# Worker liveness does not depend on the system clock. The master and the workers run under
# an LD_PRELOAD shim (tests/integration/shims/clockshift.c) that moves their CLOCK_REALTIME,
# gettimeofday and time by an offset this test rewrites while they run:
#  - the clock steps back 2 minutes: no worker is dropped (the master used to compute
#    "no heartbeat for 18446744073709550358 ms" from the wall clock and drop them all);
#  - the clock steps forward 4 minutes: no worker is dropped either;
#  - both times the master's view of a worker's last heartbeat (a display field, unix ms)
#    follows the shifted clock, which shows the shim is in effect and the master has kept
#    hearing from the workers for several heartbeats after the step;
#  - a job then completes with the right result, on the same two registrations.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

: "${SHOAL_CLOCKSHIFT_SHIM:?SHOAL_CLOCKSHIFT_SHIM must name the clock shim}"
SHIFT=$T/clockshift
echo 0 >"$SHIFT"
# The shim comes before libasan in a sanitized build: tell ASan that this is intended.
ASAN_SHIFTED="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0"

LD_PRELOAD=$SHOAL_CLOCKSHIFT_SHIM SHOAL_CLOCKSHIFT_FILE=$SHIFT ASAN_OPTIONS=$ASAN_SHIFTED \
	start_master
for w in a b; do
	LD_PRELOAD=$SHOAL_CLOCKSHIFT_SHIM SHOAL_CLOCKSHIFT_FILE=$SHIFT ASAN_OPTIONS=$ASAN_SHIFTED \
		start_worker "$w" --slots 2
done
wait_workers 2

# field NAME KEY: a field of worker NAME in `shoal workers --json` (empty if it is not listed).
field() { shoal workers --json | jq -r --arg n "$1" --arg k "$2" '.[] | select(.name == $n) | .[$k]'; }
now_ms() { date +%s%3N; }

declare -A ID=()
for w in a b; do ID[$w]=$(field "$w" worker_id); done

# registered_as_before: both workers are listed with the ids they first registered with.
registered_as_before() {
	local w
	for w in a b; do
		[ "$(field "$w" worker_id)" = "${ID[$w]}" ] || fail "worker $w was dropped after the clock step: $(grep -E 'event=worker_(gone|registered)' "$T/master.log" | tail -n 4)"
	done
}

# heartbeat_below / heartbeat_above NAME MS: the master's last heartbeat time of NAME is
# below/above MS (unix ms on the shifted clock).
heartbeat_below() { local v; v=$(field "$1" last_heartbeat_ms); [ -n "$v" ] && [ "$v" -lt "$2" ]; }
heartbeat_above() { local v; v=$(field "$1" last_heartbeat_ms); [ -n "$v" ] && [ "$v" -gt "$2" ]; }

# step OFFSET_MS: sets the offset, then waits until the master has heard from both workers
# on the shifted clock, and for 3 more heartbeats (a dozen liveness sweeps) after that.
step() {
	local off=$1 w seen
	echo "$off" >"$SHIFT"
	log "clock offset now ${off} ms"
	for w in a b; do
		if [ "$off" -lt 0 ]; then
			wait_for 600 "worker $w heard on the shifted clock" heartbeat_below "$w" $(($(now_ms) + off / 2))
		else
			wait_for 600 "worker $w heard on the shifted clock" heartbeat_above "$w" $(($(now_ms) + off / 2))
		fi
		registered_as_before
	done
	for w in a b; do
		seen=$(field "$w" last_heartbeat_ms)
		wait_for 600 "3 more heartbeats of $w" heartbeat_above "$w" $((seen + 2500))
		registered_as_before
	done
}

step -120000 # back 2 minutes
step 120000  # forward 4 minutes from there

seq 0 1999 | awk '{ print $1 * $1 }' >"$T/square.ref"
run_ok "$T/square.out" run --op square --range 0:2000 --partitions 40
same_files "$T/square.ref" "$T/square.out" "square after clock steps"
registered_as_before

gone=$(grep -c 'event=worker_gone' "$T/master.log" || true)
[ "$gone" = 0 ] || fail "the master dropped workers: $(grep 'event=worker_gone' "$T/master.log")"
regs=$(grep -c 'event=worker_registered' "$T/master.log" || true)
[ "$regs" = 2 ] || fail "expected 2 worker registrations, the master logged $regs"
log "ok: workers stayed registered across a 2-minute step back and a 4-minute step forward"
