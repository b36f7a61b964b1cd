#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# --exec (Hadoop Streaming style user commands) end to end, on workers started with
# --allow-exec:
#  - huge stdout: >= 256 MiB from one partition arrives whole (size and checksum equal the same
#    command run here) while the master's and the worker's peak RSS stay far below it;
#  - results: `tr a-z A-Z` over a generated file equals `tr a-z A-Z` of the file, with 1 and 7
#    partitions, for --input, --input-path and --range;
#  - the child's environment: SHOAL_JOB_ID, SHOAL_TASK_ID, SHOAL_PARTITION, SHOAL_ATTEMPT (1,
#    then 2 on the retry), SHOAL_MASTER, SHOAL_BROADCAST;
#  - --file: square.py run by python3, and an executable script run as ./script.sh with a data
#    file beside it in the working directory;
#  - failures: a non-zero exit (status and stderr tail in the error, client exit 1), death by a
#    signal (named), retries counted in `shoal status --json`;
#  - stdin: a command that never reads it, one that exits after one line (head -n 1), one that
#    closes stdout and drains stdin;
#  - a slow disk under the master (an LD_PRELOAD shim slowing its large pwrites): the master
#    still holds a bounded amount of a huge stdout (back-pressure to the worker);
#  - quarantine (5 failed attempts in a row keep a worker out for 30 s): with the other worker
#    gone, a job submitted meanwhile runs when the quarantine ends;
#  - --allow-exec: `shoal workers --json` shows it per worker; a worker without it refuses the
#    task with an error saying how to allow it; in a cluster where some workers allow exec,
#    the exec job runs on those.
# Checks of product bugs found while writing this test are collected with `bug` and reported
# together at the end (the test still fails), so that one bug does not hide the others.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

START_NS=$(date +%s%N)
ROOT=$(cd "$TESTS_DIR/../.." && pwd)
# Under AddressSanitizer RSS holds shadow memory and the quarantine of freed blocks: memory
# limits are only reported, and the data is smaller.
SANITIZED=${SHOAL_SANITIZED:-0}
if ldd "$SHOAL_MASTER_BIN" 2>/dev/null | grep -q libasan; then SANITIZED=1; fi
HUGE=300000000 # bytes of 'a' before fold adds the newlines: > 256 MiB of stdout
BIG_KB=16384   # the large input of the stdin tests
TEXT_KB=1024
if [ "$SANITIZED" = 1 ]; then HUGE=64000000 BIG_KB=4096 TEXT_KB=256; fi
step() { log "$* ($(elapsed_ms "$START_NS") ms)"; }
BUGS=()
bug() {
	echo "FAIL (continuing): $*" >&2
	BUGS+=("$*")
}

start_master
start_worker e1 --slots 2 --allow-exec --cache-dir "$T/cache-e1" --work-dir "$T/work-e1"
start_worker e2 --slots 2 --allow-exec --cache-dir "$T/cache-e2" --work-dir "$T/work-e2"
wait_workers 2

# The master quarantines a worker for 30 s after 5 failed attempts in a row (a58d3a6), user
# commands failing on purpose included. heal: one successful task on each worker (round-robin
# over 4 tasks), which resets that count; run after every job that fails on purpose, so that
# no worker reaches 5 (each such job here fails 4 attempts at most: --partitions 1, --retries).
heal() { shoal run -q --exec cat --range 0:4 --partitions 4 --strategy round-robin >/dev/null ||
	fail "heal: a plain exec job failed"; }

# err_of ID: the error of job ID as `shoal status --json` reports it.
err_of() { shoal status "$1" --json | jq -r '.error // ""'; }

# ---- huge stdout from one partition: streamed, never held whole
step "huge stdout: $HUGE bytes folded at 100 in one partition"
HUGE_CMD="head -c $HUGE /dev/zero | tr '\\0' 'a' | fold -w 100"
ref_sum=$(sh -c "$HUGE_CMD" | cksum)
timeout -k 5 300 /usr/bin/time -f "maxrss_kb=%M" -o "$T/time.txt" \
	"$SHOAL_CLIENT_BIN" run -q --exec "$HUGE_CMD" --range 0:1 -o "$T/huge.out" 2>"$T/err" ||
	fail "huge stdout: exit $?: $(head -c 1000 "$T/err")"
got_sum=$(cksum <"$T/huge.out")
[ "$got_sum" = "$ref_sum" ] ||
	fail "huge stdout: cksum/size $got_sum, the command run here gives $ref_sum"
rm -f "$T/huge.out"
size_kb=$((HUGE / 1024))
client_kb=$(sed -n 's/^maxrss_kb=//p' "$T/time.txt")
# "Far below": 96 MiB, whatever the output size. The master holds up to 32 MiB of results that
# wait for the disk (it then stops reading the workers) in two write buffers, besides its own
# ~20 MiB.
LIMIT_KB=98304
for who in master e1 e2 client; do
	case $who in
	master) kb=$(proc_kb "$MASTER_PID" VmHWM) ;;
	client) kb=$client_kb ;;
	*) kb=$(proc_kb "${WORKER_PID[$who]}" VmHWM) ;;
	esac
	log "huge stdout: $who peak RSS $kb kB (limit $LIMIT_KB kB, output $size_kb kB)"
	[ -n "$kb" ] || fail "huge stdout: no RSS figure for $who"
	[ "$SANITIZED" = 1 ] || [ "$kb" -lt "$LIMIT_KB" ] ||
		bug "huge stdout: $who peak RSS $kb kB, over $LIMIT_KB kB: the output is buffered, not streamed"
done

# ---- results equal the same command run here: --input, --input-path, --range
step "tr a-z A-Z over --input, --input-path, --range"
refs text "$T/text.txt" "$TEXT_KB"
# shellcheck disable=SC2018,SC2019 # bytes, as the worker's tr sees them
LC_ALL=C tr a-z A-Z <"$T/text.txt" >"$T/text.upper"
for parts in 1 7; do
	run_ok "$T/out" run --exec 'tr a-z A-Z' --input "$T/text.txt" --partitions "$parts"
	same_files "$T/text.upper" "$T/out" "--exec 'tr a-z A-Z' --input FILE --partitions $parts"
	run_ok "$T/out" run --exec 'tr a-z A-Z' --input-path "$T/text.txt" --partitions "$parts"
	same_files "$T/text.upper" "$T/out" "--exec 'tr a-z A-Z' --input-path --partitions $parts"
	run_ok "$T/out" run --exec 'tr 0-9- a-j_' --range -500:100000 --partitions "$parts"
	seq -500 99999 | tr 0-9- a-j_ >"$T/range.ref"
	same_files "$T/range.ref" "$T/out" "--exec 'tr 0-9- a-j_' --range -500:100000 --partitions $parts"
done
# stdin of --input - too
shoal run --exec 'tr a-z A-Z' --input - --partitions 3 <"$T/text.txt" >"$T/out" 2>"$T/err" ||
	fail "--exec --input -: $(cat "$T/err")"
same_files "$T/text.upper" "$T/out" "--exec 'tr a-z A-Z' --input - --partitions 3"

# ---- the child's environment
step "environment"
ENV_CMD='printf "%s %s %s %s %s|%s\n" "$SHOAL_JOB_ID" "$SHOAL_TASK_ID" "$SHOAL_PARTITION" "$SHOAL_ATTEMPT" "$SHOAL_MASTER" "${SHOAL_BROADCAST-unset}"'
id=$(shoal submit --exec "$ENV_CMD" --range 0:70 --partitions 7)
[[ $id =~ ^[0-9]+$ ]] || fail "shoal submit printed '$id', not a job id"
expect_exit 0 shoal wait "$id"
expect_exit 0 shoal result "$id"
: >"$T/env.ref"
for p in 0 1 2 3 4 5 6; do echo "$id $p $p 1 $SHOAL_MASTER|unset" >>"$T/env.ref"; done
same_files "$T/env.ref" "$T/out" "SHOAL_* environment of 7 partitions (job $id)"
# A retry runs as attempt 2: the first attempt fails on purpose.
id=$(shoal submit --exec '[ "$SHOAL_ATTEMPT" -ge 2 ] || exit 5; echo "attempt $SHOAL_ATTEMPT task $SHOAL_TASK_ID"' \
	--range 0:1 --retries 3)
expect_exit 0 shoal wait "$id"
heal
expect_exit 0 shoal result "$id"
[ "$(cat "$T/out")" = "attempt 2 task 0" ] || fail "retried task: '$(cat "$T/out")', expected 'attempt 2 task 0'"
[ "$(shoal status "$id" --json | jq .task_failures)" = 1 ] ||
	fail "retried task: status $(shoal status "$id" --json)"
# SHOAL_BROADCAST: the broadcast file's path, readable by the child
printf 'side input\nline 2\n' >"$T/side.txt"
run_ok "$T/out" run --exec 'cat "$SHOAL_BROADCAST"' --broadcast "$T/side.txt" --range 0:1
same_files "$T/side.txt" "$T/out" "--exec 'cat \$SHOAL_BROADCAST'"

# ---- --file: a script and a data file in the task's working directory
step "--file"
(cd "$ROOT/examples" && run_ok "$T/out" run --exec 'python3 square.py' --file square.py --range 0:10)
printf '%s\n' 0 1 4 9 16 25 36 49 64 81 >"$T/square.ref"
same_files "$T/square.ref" "$T/out" "--exec 'python3 square.py' --file square.py --range 0:10"
# a path elsewhere: the file lands under its base name
run_ok "$T/out" run --exec 'python3 square.py' --file "$ROOT/examples/square.py" --range 0:10 --partitions 3
same_files "$T/square.ref" "$T/out" "--exec 'python3 square.py' --file examples/square.py --partitions 3"
mkdir -p "$T/ship"
cat >"$T/ship/script.sh" <<'EOF'
#!/bin/sh
# Maps each integer on stdin to its name in names.txt (beside this script).
awk 'NR == FNR { name[$1] = $2; next } { print $1, name[$1 % 10] }' names.txt -
EOF
chmod +x "$T/ship/script.sh"
printf '%s\n' '0 zero' '1 one' '2 two' '3 three' '4 four' '5 five' '6 six' '7 seven' '8 eight' \
	'9 nine' >"$T/ship/names.txt"
run_ok "$T/out" run --exec ./script.sh --file "$T/ship/script.sh" --file "$T/ship/names.txt" \
	--range 0:1000 --partitions 4
(cd "$T/ship" && seq 0 999 | ./script.sh) >"$T/script.ref"
same_files "$T/script.ref" "$T/out" "--exec ./script.sh --file script.sh --file names.txt"

# ---- failures: exit status, stderr tail, signals, retries
step "failures"
expect_exit 1 shoal run --exec 'sh -c "echo oops >&2; exit 3"' --range 0:10 --partitions 1
heal
grep -q 'status 3' "$T/err" || fail "exit 3: the error does not name status 3: $(cat "$T/err")"
grep -q oops "$T/err" || fail "exit 3: the error lacks the stderr 'oops': $(cat "$T/err")"
# The tail of a long stderr: its last line is in the error (a Python traceback ends with the
# exception), and the error stays short.
id=$(shoal submit --exec 'seq 1 100000 >&2; echo the-last-words >&2; exit 4' --range 0:1 --retries 1)
expect_exit 1 shoal wait "$id"
heal
err=$(err_of "$id")
[[ $err == *'status 4'* ]] || fail "long stderr: error '${err:0:300}'"
[ "${#err}" -lt 16384 ] || fail "long stderr: the error has ${#err} bytes (not a tail)"
[[ $err == *the-last-words ]] ||
	bug "long stderr: the error lacks the stderr's last line 'the-last-words' (${#err} bytes, ends '$(tail -c 40 <<<"$err" | tr '\n' ' ')')"
expect_exit 1 shoal run --retries 1 --range 0:1 --exec \
	"python3 -c 'import sys; [print(\"noise\", i, file=sys.stderr) for i in range(400)]; raise ValueError(\"the real reason\")'"
heal
grep -q 'ValueError: the real reason' "$T/err" ||
	bug "python traceback: the client's error lacks its last line 'ValueError: the real reason' (ends '$(tail -c 60 "$T/err" | tr '\n' ' ')')"
# death by signal
expect_exit 1 shoal run --exec "kill -9 \$\$" --range 0:10 --partitions 1 --retries 1
heal
grep -qE 'SIGKILL|signal 9' "$T/err" || fail "kill -9: the error does not name the signal: $(cat "$T/err")"
expect_exit 1 shoal run --exec "kill -TERM \$\$" --range 0:10 --partitions 1 --retries 1
heal
grep -qE 'SIGTERM|signal 15' "$T/err" || fail "kill -TERM: the error does not name the signal: $(cat "$T/err")"
# the retry rules: --retries N failed attempts, then the job fails with the task's error
for r in 1 2 3; do
	id=$(shoal submit --exec 'echo "try $SHOAL_ATTEMPT" >&2; exit 3' --range 0:5 --partitions 1 --retries "$r")
	expect_exit 1 shoal wait "$id"
	heal
	st=$(shoal status "$id" --json)
	[ "$(jq -r .state <<<"$st")" = failed ] || fail "--retries $r: $st"
	[ "$(jq .task_failures <<<"$st")" = "$r" ] || fail "--retries $r: failure count: $st"
	[[ $(jq -r .error <<<"$st") == *"status 3"*"try $r"* ]] || fail "--retries $r: error: $st"
done
# partial output before a failure is not a result
expect_exit 1 shoal run --exec 'echo partial; exit 2' --range 0:4 --partitions 1 --retries 1
heal
[ ! -s "$T/out" ] || fail "a failed exec job wrote a result: $(head -c 200 "$T/out")"

# ---- stdin: never read, closed early, drained after closing stdout
step "stdin and stdout closed early"
# numbered lines: any line tells where it comes from
awk -v n=$((BIG_KB * 16)) 'BEGIN { for (i = 1; i <= n; i++)
	printf "%09d the quick brown fox jumps over the lazy dog %d\n", i, i * 7 }' >"$T/big.txt"
run_ok "$T/out" run --exec 'echo hi' --input "$T/big.txt" --partitions 2
printf 'hi\nhi\n' >"$T/hi.ref"
same_files "$T/hi.ref" "$T/out" "--exec 'echo hi' over a $BIG_KB kB --input"
run_ok "$T/out" run --exec 'echo hi' --input-path "$T/big.txt" --partitions 2
same_files "$T/hi.ref" "$T/out" "--exec 'echo hi' over a $BIG_KB kB --input-path"
run_ok "$T/out" run --exec 'true' --input "$T/big.txt" --partitions 1
[ ! -s "$T/out" ] || fail "--exec true printed $(head -c 100 "$T/out")"
run_ok "$T/out" run --exec 'head -n 1' --input "$T/big.txt" --partitions 1
head -n 1 "$T/big.txt" >"$T/head.ref"
same_files "$T/head.ref" "$T/out" "--exec 'head -n 1' --partitions 1"
# several partitions: one line each, each a line of the file, in file order, the first first
run_ok "$T/out" run --exec 'head -n 1' --input-path "$T/big.txt" --partitions 4
[ "$(wc -l <"$T/out")" = 4 ] || fail "head -n 1 over 4 partitions: $(wc -l <"$T/out") lines"
[ "$(head -n 1 "$T/out")" = "$(cat "$T/head.ref")" ] || fail "head -n 1: partition 0's line differs"
awk '{ n = $1 + 0; want = sprintf("%09d the quick brown fox jumps over the lazy dog %d", n, n * 7) }
	$0 != want || n <= last { bad = 1 } { last = n } END { exit bad }' "$T/out" ||
	fail "head -n 1 over 4 partitions: lines not from the file in order: $(head -c 300 "$T/out")"
# stdout closed at once, stdin read to the end, then a clean exit
run_ok "$T/out" run --exec 'echo first; exec 1>&-; wc -c >/dev/null' --input "$T/big.txt" --partitions 1
[ "$(cat "$T/out")" = first ] || fail "stdout closed early, stdin drained: '$(head -c 100 "$T/out")'"

# ---- a slow disk under the master: a huge stdout must not pile up in its memory
if [ "$SANITIZED" = 0 ]; then
	step "slow disk under the master"
	# The shim delays every pwrite of 64 KiB or more by len / 40 MB/s: the spill file is
	# written far slower than the worker streams. A master that stops reading the worker while
	# its spill lags keeps a bounded backlog; one that reads on buffers the difference.
	cat >"$T/slowdisk.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
#include <unistd.h>
static void slow(size_t len)
{
	if (len < 65536)
		return;
	double s = (double)len / 40e6;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (real == NULL)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
	slow(n);
	return real(fd, b, n, off);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off) { return pwrite64(fd, b, n, off); }
EOF
	cc -shared -fPIC -O2 -o "$T/slowdisk.so" "$T/slowdisk.c" -ldl || fail "cannot build the slow-disk shim"
	stop_pid "$MASTER_PID"
	[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
	LD_PRELOAD=$T/slowdisk.so start_master # same port: the workers reconnect
	wait_workers 2
	SLOW=300000000
	SLOW_CMD="head -c $SLOW /dev/zero | tr '\\0' 'a' | fold -w 100"
	ref_sum=$(sh -c "$SLOW_CMD" | cksum)
	run_ok "$T/slow.out" run -q --exec "$SLOW_CMD" --range 0:1
	[ "$(cksum <"$T/slow.out")" = "$ref_sum" ] || fail "slow disk: the result differs"
	rm -f "$T/slow.out"
	kb=$(proc_kb "$MASTER_PID" VmHWM)
	log "slow disk: master peak RSS $kb kB (limit $LIMIT_KB kB, output $((SLOW / 1024)) kB)"
	[ "$kb" -lt "$LIMIT_KB" ] ||
		bug "slow disk (spill written at 40 MB/s): master peak RSS $kb kB for a $((SLOW / 1024)) kB stdout (limit $LIMIT_KB kB): TaskOutput piles up in memory while the spill file lags"
fi

# ---- quarantine: 5 failed attempts in a row keep a worker out for 30 s (while another worker
# can take the work). When the other worker then leaves, a job submitted meanwhile must run on
# the quarantined one once its quarantine ends.
step "quarantine ends"
id=$(shoal submit --exec 'exit 3' --range 0:8 --partitions 8 --retries 5)
qworker() { sed -n 's/.*name=\(e[12]\) event=quarantined.*/\1/p' "$T/master.log" | head -n 1; }
has_quarantined() { [ -n "$(qworker)" ]; }
wait_for 200 "a worker quarantined (master.log event=quarantined)" has_quarantined
q_ns=$(date +%s%N)
qw=$(qworker)
other=e1
[ "$qw" = e2 ] || other=e2
shoal cancel "$id" >/dev/null 2>&1 || true # it may have failed already
stop_pid "${WORKER_PID[$other]}"
[ "$STOP_RC" = 0 ] || fail "worker $other exited $STOP_RC on SIGTERM"
wait_workers 1
log "$qw quarantined, $other stopped; job $id cancelled"
if SHOAL_CMD_TIMEOUT=45 shoal run --exec cat --range 0:4 >"$T/out" 2>"$T/err"; then
	log "a job submitted during the quarantine ran $(elapsed_ms "$q_ns") ms after it began"
	printf '%s\n' 0 1 2 3 >"$T/q.ref"
	same_files "$T/q.ref" "$T/out" "job run after the quarantine"
else
	bug "quarantine: $qw quarantined for 30 s and $other gone, a job (--exec cat --range 0:4) submitted meanwhile was still not run $(elapsed_ms "$q_ns") ms later (the end of a quarantine does not wake the scheduler): $(tail -c 300 "$T/err")"
	# the next submission wakes the scheduler: the rest of the test can go on
	shoal run --op count --range 0:1 >/dev/null 2>&1 || true
fi
start_worker "$other" --slots 2 --allow-exec --cache-dir "$T/cache-$other" --work-dir "$T/work-$other"
wait_workers 2

# ---- --allow-exec: shown per worker; refused by a worker without it
step "--allow-exec refusal"
start_worker plain --slots 2 --cache-dir "$T/cache-plain" --work-dir "$T/work-plain"
wait_workers 3
flags=$(shoal workers --json | jq -r 'sort_by(.name) | map("\(.name)=\(.allow_exec)") | join(" ")')
[ "$flags" = "e1=true e2=true plain=false" ] || fail "shoal workers --json: allow_exec $flags"
expect_exit 0 shoal workers
awk '$2 == "plain" && / no / { p = 1 } $2 == "e1" && / yes / { e = 1 } END { exit !(p && e) }' "$T/out" ||
	fail "shoal workers does not show who allows exec: $(cat "$T/out")"
for w in e1 e2; do
	stop_pid "${WORKER_PID[$w]}"
	[ "$STOP_RC" = 0 ] || fail "worker $w exited $STOP_RC on SIGTERM"
done
wait_workers 1
expect_exit 1 shoal run --exec 'cat' --range 0:10
if ! grep -q 'does not run --exec' "$T/err" || ! grep -q -- '--allow-exec' "$T/err"; then
	fail "a worker without --allow-exec: error $(cat "$T/err")"
fi
grep -q plain "$T/err" || fail "the refusal does not name the worker: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "refused exec job wrote a result"
# the plain worker still runs built-in ops
run_ok "$T/out" run --op sum --range 1:101
[ "$(cat "$T/out")" = 5050 ] || fail "sum on the plain worker: $(cat "$T/out")"

# ---- a mixed cluster: the exec job belongs on the workers that allow exec.
# The master knows each worker's allow_exec (Hello) and shows it; a user of Gearman or Work
# Queue expects tasks to go only to workers able to run them (at the least, a refusal by one
# worker should be retried on another, not fail the job at once).
step "mixed cluster"
start_worker e3 --slots 2 --allow-exec --cache-dir "$T/cache-e3" --work-dir "$T/work-e3"
wait_workers 2
for i in 1 2 3; do
	if ! shoal run --exec 'tr 0-9 a-j' --range 0:1000 --partitions 8 >"$T/out" 2>"$T/err"; then
		bug "mixed cluster (worker plain, worker e3 with --allow-exec), run $i: the exec job failed: $(cat "$T/err")"
		break
	fi
	seq 0 999 | tr 0-9 a-j >"$T/mixed.ref"
	same_files "$T/mixed.ref" "$T/out" "exec job in a mixed cluster"
done
# A failed job removes a partial -o file, but never what is not a plain file (as root, a
# failed `shoal run -o /dev/null` once removed /dev/null itself).
step "-o onto a device"
if mknod "$T/null" c 1 3 2>/dev/null; then
	expect_exit 1 shoal run --exec 'exit 3' --range 0:4 --retries 1 -o "$T/null"
	[ -c "$T/null" ] || bug "a failed 'shoal run -o DEVICE' removed the device node"
	expect_exit 1 shoal run --exec 'exit 3' --range 0:4 --retries 1 -o "$T/partial"
	[ ! -e "$T/partial" ] || bug "a failed 'shoal run -o FILE' left its partial file"
else
	log "mknod is not allowed here: -o onto a device not checked"
fi
step "done"
[ ${#BUGS[@]} = 0 ] || fail "${#BUGS[@]} product bug(s): $(printf '\n  - %s' "${BUGS[@]}")"
