#!/usr/bin/env bash
# The master's state dir (issue 4): a corrupt journal, a damaged one, a journal that is some
# other program's database, a state dir that cannot be written (a path through a file, a
# read-only file system) all stop the master at start with an error naming the file and what
# to do, never an empty queue; a full disk (a small tmpfs) fails the job that needed the space
# with a reason that says so, and the master keeps serving; --keep-jobs bounds what the state
# dir keeps across restarts. The tmpfs parts are skipped, with a message, where mount fails.
source "$(dirname "$0")/lib.sh"

MOUNTS=()
unmount_all() {
	local m
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
	MOUNTS=()
}
# The tmpfs mounts go (lazily: a master may still hold a file there) before lib.sh's cleanup
# stops the processes and removes the scratch dir; cleanup reads the exit status from $?.
unmount_then_cleanup() {
	local rc=$?
	set +e
	unmount_all
	(exit $rc)
	cleanup
}
trap unmount_then_cleanup EXIT

# master_refuses STATE-DIR PATTERN: the master exits 1 at start with PATTERN in its log.
master_refuses() {
	local dir=$1 pattern=$2 rc=0
	timeout -k 5 60 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --state-dir "$dir" 2>"$T/refused.err" || rc=$?
	[ "$rc" = 1 ] || fail "master on $dir exited $rc, expected 1: $(cat "$T/refused.err")"
	grep -q -- "$pattern" "$T/refused.err" ||
		fail "master on $dir: no '$pattern' in: $(cat "$T/refused.err")"
	log "refused: $(grep -m1 ERROR "$T/refused.err" | sed 's/.*ERROR //')"
}

# A state dir with a journal holding one finished job.
make_state() {
	local dir=$1
	start_master --state-dir "$dir"
	run_ok /dev/null run --op sum --range 0:100
	stop_pid "$MASTER_PID"
	[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
	[ -s "$dir/journal.db" ] || fail "no journal in $dir"
}

# Every master of this test listens on one port, so that one worker serves them all (it
# waits for a master, and finds the next one by itself).
MASTER_PORT=$(free_port)
export SHOAL_MASTER=127.0.0.1:$MASTER_PORT
start_worker w1 --slots 2

# ---- corrupt journals
log "garbage journal"
make_state "$T/s1"
head -c 65536 /dev/urandom >"$T/s1/journal.db"
rm -f "$T/s1/journal.db-wal" "$T/s1/journal.db-shm"
master_refuses "$T/s1" "$T/s1/journal.db"
grep -q "move it aside" "$T/refused.err" || fail "no advice in: $(cat "$T/refused.err")"

log "damaged journal"
make_state "$T/s2"
# Keep the header (page 1), scramble what follows: the tables' pages.
python3 - "$T/s2/journal.db" <<'EOF'
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(4096)
    f.write(bytes((i * 37 + 11) % 256 for i in range(size - 4096)))
EOF
master_refuses "$T/s2" "$T/s2/journal.db"

log "someone else's database"
mkdir -p "$T/s3"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.commit()' "$T/s3/journal.db"
master_refuses "$T/s3" "not a shoal journal"

# ---- unwritable state dirs
log "state dir through a file"
: >"$T/plainfile"
master_refuses "$T/plainfile/state" "$T/plainfile/state"

# ---- retention across restarts (before the tmpfs parts, which may be skipped)
log "--keep-jobs"
start_master --state-dir "$T/keep"
for i in 1 2 3 4; do run_ok /dev/null run --op count --range "0:$i"; done
stop_pid "$MASTER_PID"
# A directory an earlier master renamed for removal but did not get to remove (killed).
mkdir -p "$T/keep/jobs/77.pruned/sub"
touch "$T/keep/jobs/77.pruned/spill" "$T/keep/jobs/77.pruned/sub/x"
start_master --state-dir "$T/keep" --keep-jobs 2
ids=$(shoal jobs --json | jq -c 'map(.job_id)')
[ "$ids" = "[3,4]" ] || fail "--keep-jobs 2 kept jobs $ids, expected [3,4]"
# The pruned directories leave the jobs' paths at once, and the thread pool removes them.
[ ! -e "$T/keep/jobs/1" ] && [ ! -e "$T/keep/jobs/2" ] || fail "pruned jobs' directories remain"
wait_for 300 "the pruned directories (and the leftover) to be removed" \
	bash -c '! compgen -G "$1/*.pruned" >/dev/null' _ "$T/keep/jobs"
run_ok "$T/keep.out" result 4
[ "$(cat "$T/keep.out")" = 4 ] || fail "job 4's result after a restart: $(cat "$T/keep.out")"
N=$(shoal submit --op count --range 0:5)
[ "$N" = 5 ] || fail "the job after 4 got id $N"
run_ok /dev/null wait "$N"
# A running master applies the limit too.
ids=$(shoal jobs --json | jq -c 'map(.job_id)')
[ "$ids" = "[4,5]" ] || fail "--keep-jobs 2 holds $ids after job 5, expected [4,5]"
wait_for 300 "job 3's directory to be removed" \
	bash -c '[ ! -e "$1/3" ] && ! compgen -G "$1/*.pruned" >/dev/null' _ "$T/keep/jobs"
stop_pid "$MASTER_PID"

# Many prunes at once: 40 ended jobs with files (square spills its result), then a master
# that keeps 1. The removals run on the thread pool while the master serves: it lists the
# job it kept, runs a new job and answers status calls, and every pruned directory goes.
log "--keep-jobs: 40 prunes at once"
start_master --state-dir "$T/many"
for i in $(seq 40); do N=$(shoal submit --op square --range "0:$((2000 + i))"); done
run_ok /dev/null wait "$N"
[ "$N" = 40 ] || fail "the 40th job got id $N"
for i in $(seq 40); do [ -d "$T/many/jobs/$i" ] || fail "job $i has no directory"; done
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
start_master --state-dir "$T/many" --keep-jobs 1
ids=$(shoal jobs --json | jq -c 'map(.job_id)')
[ "$ids" = "[40]" ] || fail "--keep-jobs 1 kept jobs $ids, expected [40]"
run_ok "$T/many.out" run --op square --range 0:3
[ "$(cat "$T/many.out")" = "$(printf '0\n1\n4')" ] || fail "square after the prunes: $(cat "$T/many.out")"
expect_exit 1 shoal status 7
grep -q "7" "$T/err" || fail "status of a pruned job: $(cat "$T/err")"
# Job 41 ended too: 40 went as well.
wait_for 600 "the 40 pruned directories to be removed" \
	bash -c '! compgen -G "$1/*.pruned" >/dev/null' _ "$T/many/jobs"
for i in $(seq 40); do [ ! -e "$T/many/jobs/$i" ] || fail "job $i's directory remains"; done
[ -d "$T/many/jobs/41" ] || fail "the kept job's directory is gone"
grep -q "job=39 event=pruned" "$T/master.log" || fail "no prune of job 39 in the log"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"

# ---- tmpfs: read-only and full
if ! mkdir -p "$T/ro" "$T/small" || ! mount -t tmpfs -o size=4m tmpfs "$T/ro" 2>"$T/mount.err"; then
	log "SKIP read-only and full-disk cases: cannot mount a tmpfs here ($(cat "$T/mount.err" 2>/dev/null))"
	exit 0
fi
MOUNTS+=("$T/ro")
log "read-only state dir"
mkdir -p "$T/ro/state"
mount -o remount,ro "$T/ro" || fail "cannot remount $T/ro read-only"
master_refuses "$T/ro/state" "$T/ro/state"

log "full disk"
mount -t tmpfs -o size=2m tmpfs "$T/small" || fail "cannot mount a second tmpfs"
MOUNTS+=("$T/small")
start_master --state-dir "$T/small/state"
wait_workers 1
# About 12 MB of result into 2 MB.
expect_exit 1 shoal run --op square --range 0:1000000
grep -qi "no space left on device" "$T/err" || fail "square on a full disk: $(cat "$T/err")"
grep -q "state dir" "$T/err" || fail "no advice in: $(cat "$T/err")"
log "square on a full disk: $(head -c 300 "$T/err")"
# An upload larger than the disk.
head -c 3000000 /dev/zero | tr '\0' 'x' | fold -w 99 >"$T/big.txt"
expect_exit 1 shoal run --op wordcount --input "$T/big.txt"
grep -qiE "no space left|disk is full|full" "$T/err" || fail "upload on a full disk: $(cat "$T/err")"
log "upload on a full disk: $(head -c 300 "$T/err")"
# The master is still there, and jobs that fit still run.
run_ok "$T/sum.out" run --op sum --range 0:1000
[ "$(cat "$T/sum.out")" = 499500 ] || fail "sum after a full disk: $(cat "$T/sum.out")"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM after a full disk"
unmount_all
log "done"
