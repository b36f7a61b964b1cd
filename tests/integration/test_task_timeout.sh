#!/usr/bin/env bash
# --task-timeout measures how long an attempt RUNS on its worker, not how long it waited there:
#  - a worker with one slot holding more tasks than slots (the master's prefetch) runs tasks
#    that each take less than the timeout, though together they take longer: no attempt times
#    out and the job succeeds with --retries 1 (no failure allowed);
#  - a command that really runs too long is killed by its worker, which reports the timeout in
#    its own words, and the retry succeeds; the killed command is gone;
#  - a plugin attempt cannot be interrupted: it fails at the timeout with an error that says
#    so, its slot stays held until the thread ends, and the master sends new work to another
#    worker instead of queueing it behind the abandoned thread.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$TESTS_DIR/../.." && pwd)
MARK="50.$$$(date +%N)"

start_master
start_worker a --slots 1 --allow-exec --cache-dir "$T/cache-a"
wait_workers 1

# ---- queue time on the worker does not count: 2 tasks of ~3 s on one slot, timeout 5 s
run_ok "$T/out" run --exec 'sleep 3; cat' --range 0:2 --partitions 2 --task-timeout 5 \
	--retries 1 -q
printf '0\n1\n' >"$T/want"
same_files "$T/want" "$T/out" "tasks queued behind others on a one-slot worker"
! grep -q "task timeout" "$T/master.log" || fail "an attempt timed out: $(grep "task timeout" "$T/master.log")"

# ---- a command that runs too long is killed by its worker and retried
run_ok "$T/out" run --exec "if [ \"\$SHOAL_ATTEMPT\" = 1 ]; then echo \$\$ >\"$T/pid.\$SHOAL_PARTITION\"; exec sleep $MARK; fi; cat" \
	--range 0:3 --partitions 3 --task-timeout 1 --retries 2 -q
printf '0\n1\n2\n' >"$T/want"
same_files "$T/want" "$T/out" "retried after timeouts"
grep -q "ran longer than the task timeout (1000 ms); its command was killed" "$T/master.log" ||
	fail "the worker did not report the timeout: $(grep task_failed "$T/master.log" || true)"
for f in "$T"/pid.*; do
	pid=$(cat "$f")
	for _ in $(seq 100); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
	[ ! -d "/proc/$pid" ] || fail "timed-out command (pid $pid) is still running"
done

# ---- a plugin attempt cannot be stopped: it fails at the timeout and holds its slot
mkdir -p "$T/plugins"
cat >"$T/plugins/sleepy.c" <<'EOF'
/* Sleeps 60 s, then echoes its partition. */
#include <time.h>
#include "shoal_plugin.h"
static int m(const uint8_t *d, size_t n, const struct shoal_plugin_args *a,
             const struct shoal_plugin_out *o, char *err, size_t errlen)
{
	(void)a; (void)err; (void)errlen;
	struct timespec ts = {60, 0};
	while (nanosleep(&ts, &ts) != 0)
		;
	return o->write(o->ctx, d, n);
}
static const struct shoal_plugin p = {.abi_version = SHOAL_PLUGIN_ABI_VERSION, .name = "sleepy", .map = m};
const struct shoal_plugin *shoal_plugin_v1(void) { return &p; }
EOF
cc -shared -fPIC -O1 -Wall -I"$ROOT/common" -o "$T/plugins/sleepy.so" "$T/plugins/sleepy.c" ||
	fail "cannot build the sleepy plugin"
expect_exit 1 shoal run --plugin "$T/plugins/sleepy.so" --range 0:1 --task-timeout 0.5 --retries 1 -q
grep -q "ran longer than the task timeout (500 ms); a plugin or built-in op cannot be interrupted" "$T/err" ||
	fail "plugin timeout error: $(cat "$T/err")"
held_a() { shoal workers --json | jq '.[] | select(.name == "a") | .held'; }
for _ in $(seq 200); do
	[ "$(held_a)" = 1 ] && break
	sleep 0.05
done
[ "$(held_a)" = 1 ] || fail "worker a's slot is not shown held: $(shoal workers --json)"
grep -q "name=a event=held_slots held=1" "$T/master.log" || fail "no held_slots line in the log"
done_a=$(shoal workers --json | jq '.[] | select(.name == "a") | .tasks_done')

start_worker b --slots 1 --cache-dir "$T/cache-b"
wait_workers 2
run_ok "$T/out" run --op square --range 0:40 --partitions 4 -q
seq 0 39 | awk '{ print $1 * $1 }' >"$T/want"
same_files "$T/want" "$T/out" "work while a's only slot is held"
now_a=$(shoal workers --json | jq '.[] | select(.name == "a") | .tasks_done')
[ "$now_a" = "$done_a" ] || fail "worker a ran tasks ($done_a -> $now_a) while its slot was held"

# The abandoned thread sleeps on; the worker would wait for it on SIGTERM.
kill -KILL "${WORKER_PID[a]}"
daemon_killed "${WORKER_PID[a]}"
log "ok"
