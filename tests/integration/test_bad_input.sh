#!/usr/bin/env bash
# Bad input is refused with the documented exit codes and a message that names the problem:
# usage errors exit 2 before anything is submitted, data errors fail the job (exit 1) naming the
# partition and the offending text, an unreachable master exits 3 within 5 s naming the address.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_master
start_worker w1 --slots 2
start_worker w2 --slots 2
wait_workers 2

# err_has TEXT WHAT: the last expect_exit's stderr contains TEXT.
err_has() { grep -qF -- "$1" "$T/err" || fail "$2: stderr lacks '$1': $(head -c 500 "$T/err")"; }

# A job so that "unchanged" below is not about an empty list.
run_ok "$T/out" run --op count --range 0:10 -q
jobs_before=$(shoal jobs --json)

# ---- usage errors: exit 2, the message names the culprit, nothing reaches the master
expect_exit 2 shoal run --op frobnicate --range 0:10
err_has frobnicate "unknown op"
expect_exit 2 shoal submit --op frobnicate --range 0:10
err_has frobnicate "unknown op (submit)"
expect_exit 2 shoal run --op square --range 0:10 --frobnicate-flag
err_has --frobnicate-flag "unknown flag"
expect_exit 2 shoal frobnicate-command
err_has frobnicate-command "unknown command"
expect_exit 2 shoal run --op square --range 5:1
err_has "5:1" "--range 5:1"
expect_exit 2 shoal run --op square --range a:b
expect_exit 2 shoal run --op square
expect_exit 2 shoal run --op square --range 0:10 --input "$T/x"
expect_exit 2 shoal run --op square --range 0:10 --partitions 0
expect_exit 2 shoal run --op square --range 0:10 --strategy sideways
err_has sideways "unknown strategy"
expect_exit 2 shoal run --op grep --range 0:10
err_has pattern "grep without a pattern"
expect_exit 2 shoal run --op square --range 0:10 --arg colour=blue
err_has colour "unknown --arg"
expect_exit 2 shoal status
expect_exit 2 shoal wait not-a-number
expect_exit 2 shoal --master 127.0.0.1:99999 jobs
err_has 99999 "bad --master port"
expect_exit 2 shoal run --op grep --arg pattern=a --arg pattern=b --range 0:10
err_has pattern "--arg given twice"
expect_exit 2 shoal run --op grep --arg pattern --range 0:10
err_has pattern "--arg without ="

# Unreadable --input: exit 2 with a clear message, and no job submitted.
expect_exit 2 shoal run --op count --input "$T/does-not-exist"
err_has "$T/does-not-exist" "missing input file"
grep -qi "no such file" "$T/err" || fail "missing input: message lacks the reason: $(cat "$T/err")"
mkdir "$T/a-directory"
expect_exit 2 shoal run --op count --input "$T/a-directory"
err_has "$T/a-directory" "directory as input"
expect_exit 2 shoal submit --op count --input "$T/does-not-exist"
if [ "$(id -u)" != 0 ]; then
	echo 1 >"$T/unreadable"
	chmod 000 "$T/unreadable"
	expect_exit 2 shoal run --op count --input "$T/unreadable"
	err_has "$T/unreadable" "unreadable input file"
else
	log "running as root: skipping the chmod 000 case (root reads it anyway)"
fi
expect_exit 2 shoal run --op count --range 0:10 -o "$T/no-such-dir/out"
err_has "$T/no-such-dir/out" "unwritable -o"
[ "$(shoal jobs --json)" = "$jobs_before" ] || fail "a usage error submitted a job: $(shoal jobs --json)"

# ---- data errors: exit 1, the error names the partition and the offending text
seq 1 1000 >"$T/bad-last.txt"
printf '12abc' >>"$T/bad-last.txt" # the last record, so in the last partition
expect_exit 1 shoal run --op sum --input "$T/bad-last.txt" --partitions 7
err_has "partition 6" "bad record in the last partition"
err_has '12abc' "bad record text"
[ ! -s "$T/out" ] || fail "a failed job printed a result: $(head -c 200 "$T/out")"
bad_id=$(shoal jobs --json | jq '.[-1].job_id')
{
	printf 'not a number\n'
	seq 1 1000
} >"$T/bad-first.txt"
for op in sum min max mean square; do
	expect_exit 1 shoal run --op "$op" --input "$T/bad-first.txt" --partitions 3
	err_has "partition 0" "$op: bad first record"
	err_has "not a number" "$op: bad first record text"
done
# Through --input-path too (the worker reads the file itself).
expect_exit 1 shoal run --op max --input-path "$T/bad-last.txt" --partitions 7
err_has "partition 6" "--input-path: bad record in the last partition"
err_has '12abc' "--input-path: bad record text"

# The failed job: status says failed with the error, wait and result exit 1.
st=$(job_json "$bad_id")
[ "$(jq -r .state <<<"$st")" = failed ] || fail "job $bad_id: $st"
jq -r .error <<<"$st" | grep -qF 12abc || fail "job $bad_id's error lacks the record: $st"
expect_exit 1 shoal result "$bad_id"
[ ! -s "$T/out" ] || fail "result of a failed job printed $(wc -c <"$T/out") bytes"
expect_exit 1 shoal wait "$bad_id"
expect_exit 1 shoal result 999999
err_has 999999 "result of an unknown job"

# Exact arithmetic: an overflow is an error, never a wrapped number.
printf '13043817825332782213\n' >"$T/sq-overflow.txt" # isqrt(2^127 - 1) + 1
expect_exit 1 shoal run --op square --input "$T/sq-overflow.txt"
err_has 13043817825332782213 "square overflow"
printf '170141183460469231731687303715884105727\n1\n' >"$T/sum-overflow.txt" # 2^127 - 1, 1
expect_exit 1 shoal run --op sum --input "$T/sum-overflow.txt" --partitions 2
grep -qi overflow "$T/err" || fail "sum overflow: $(cat "$T/err")"
overflow_id=$(shoal jobs --json | jq '.[-1].job_id')
printf '170141183460469231731687303715884105728\n' >"$T/too-wide.txt" # 2^127
expect_exit 1 shoal run --op max --input "$T/too-wide.txt"
err_has 170141183460469231731687303715884105728 "a record wider than 128 bits"
# min of nothing is an error, like Python's min([]).
: >"$T/empty.txt"
expect_exit 1 shoal run --op min --input "$T/empty.txt"

# ---- the master is unreachable: exit 3 within 5 s, the message names the address
port=$(free_port)
t0=$(date +%s%N)
expect_exit 3 shoal --master "127.0.0.1:$port" run --op count --range 0:10
ms=$(elapsed_ms "$t0")
[ "$ms" -lt 5000 ] || fail "unreachable master: exit after $ms ms"
err_has "127.0.0.1:$port" "unreachable master"
SHOAL_MASTER=127.0.0.1:$port expect_exit 3 shoal jobs
err_has "127.0.0.1:$port" "unreachable master (SHOAL_MASTER)"

# A listener that accepts and never answers: exit 3 after the client's handshake timeout
# (a few seconds), still naming the address.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
time.sleep(60)' >"$T/silent.port" &
PIDS+=("$!")
wait_for 50 "silent listener" test -s "$T/silent.port"
sport=$(cat "$T/silent.port")
t0=$(date +%s%N)
expect_exit 3 shoal --master "127.0.0.1:$sport" run --op count --range 0:10
ms=$(elapsed_ms "$t0")
[ "$ms" -lt 8000 ] || fail "silent master: exit after $ms ms"
err_has "127.0.0.1:$sport" "silent master"

# The cluster is fine after all of that.
run_ok "$T/out" run --op sum --range 1:101 -q
[ "$(cat "$T/out")" = 5050 ] || fail "sum 1..100 after the bad inputs: $(cat "$T/out")"

# An overflow while the master folds the partials is in the data, like a bad record: README
# says "bad data fails the job at once" (not retried as a worker's fault).
st=$(job_json "$overflow_id")
[ "$(jq .task_failures <<<"$st")" = 1 ] ||
	fail "sum overflow (job $overflow_id) was retried as if a worker were at fault: $st"

# --input-path that the master cannot use: exit 2 naming the path and the reason.
expect_exit 2 shoal run --op count --input-path "$T/no-such-input"
err_has "$T/no-such-input" "--input-path missing"
grep -qi "no such file" "$T/err" || fail "--input-path missing: $(cat "$T/err")"
expect_exit 2 shoal run --op count --input-path "$T/a-directory"
err_has "$T/a-directory" "--input-path directory"
# (master/jobs.c prints strerror(errno) whenever errno is non-zero, even when stat() succeeded
# and the path is merely not a regular file: a stale errno then gives a wrong reason.)
grep -qiE "not a regular file|is a directory" "$T/err" ||
	fail "--input-path of a directory: the reason is wrong: $(cat "$T/err")"
