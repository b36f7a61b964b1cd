#!/usr/bin/env bash
# Barriers between jobs: --after ID and --input job:ID.
#   - a job submitted --after a running job stays queued (showing what it waits for), starts
#     only once that job has succeeded, and then runs (range input and uploaded input);
#   - --after a job that fails (while waiting, or already failed) or is cancelled fails with
#     an error naming that job; so does --input job:ID of a failed job;
#   - --after / --input job: naming no job is a usage error (exit 2);
#   - a pipeline grep -> wordcount -> sort, each stage reading the previous one's result with
#     --input job:ID (partitioned afresh), all submitted at once, equals the shell pipeline
#     grep -F | tr | sort | uniq -c; and a branch from the wordcount stage through an --exec
#     stage (count first) into a sort equals awk | sort.
# Checks that fail are collected and reported together at the end, so that one broken
# behaviour does not hide the others.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

PROBLEMS=()
problem() {
	echo "PROBLEM: $*" >&2
	PROBLEMS+=("$*")
}

start_master
start_worker a --slots 2 --allow-exec --cache-dir "$T/cache-a"
start_worker b --slots 2 --allow-exec --cache-dir "$T/cache-b"
wait_workers 2

# submit ARGS...: prints the job id (fails the test if submit fails).
submit() {
	local id
	id=$(shoal submit "$@") || fail "submit $* failed"
	[[ "$id" =~ ^[0-9]+$ ]] || fail "submit $* printed '$id'"
	echo "$id"
}

# field ID JQ: a field of `shoal status ID --json`.
field() { job_json "$1" | jq -r "$2"; }

# wait_state ID STATE TRIES: waits (TRIES x 0.1 s) until job ID is in STATE; 0 or 1.
wait_state() {
	local s=
	for _ in $(seq "$3"); do
		s=$(field "$1" .state)
		[ "$s" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- --after a running job: waits, then runs
printf 'a b\nb c\n' >"$T/small.txt"
# A runs until the test releases it (bounded: 60 s), so that however slow the machine is, B
# and C are checked while A still runs.
A=$(submit --exec "i=0; while [ ! -e '$T/release-a' ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done; cat" \
	--range 0:2 --partitions 2 --name A)
wait_state "$A" running 50 || fail "job $A never ran: $(job_json "$A")"
B=$(submit --op sum --range 0:100 --after "$A" --name B)
C=$(submit --op wordcount --input "$T/small.txt" --after "$A" --name C)
sleep 0.3 # C's upload is done
for id in "$B" "$C"; do
	st=$(job_json "$id")
	[ "$(jq -r .after <<<"$st")" = "$A" ] || problem "job $id --after $A: status says after=$(jq -r .after <<<"$st")"
	[ "$(jq -r .started_ms <<<"$st")" = null ] || problem "job $id started while job $A runs: $st"
	# A job that waits for another is queued (it is neither uploading nor in an unknown state).
	[ "$(jq -r .state <<<"$st")" = queued ] ||
		problem "job $id (--after running job $A, input $([ "$id" = "$B" ] && echo range || echo uploaded)) is in state '$(jq -r .state <<<"$st")' while it waits, expected 'queued'"
done
[ "$(field "$A" .state)" = running ] || fail "job $A ended too soon for this test: $(job_json "$A")"
touch "$T/release-a"
expect_exit 0 shoal wait "$B"
expect_exit 0 shoal wait "$C"
[ "$(shoal result "$B")" = 4950 ] || problem "job $B result: $(shoal result "$B")"
[ "$(shoal result "$C")" = "$(printf 'a\t1\nb\t2\nc\t1')" ] || problem "job $C result: $(shoal result "$C")"
a_fin=$(field "$A" .finished_ms)
for id in "$B" "$C"; do
	s=$(field "$id" .started_ms)
	{ [ "$s" != null ] && [ "$s" -ge "$a_fin" ]; } || problem "job $id started at $s, before job $A finished at $a_fin"
done
log "--after: jobs $B and $C started after job $A finished"

# ---- --after a job that fails while the dependant waits
F=$(submit --exec 'sleep 1; exit 3' --range 0:1 --retries 1 --name F)
G=$(submit --op sum --range 0:10 --after "$F" --name G)
I=$(submit --op wordcount --input "job:$F" --name I)
expect_exit 1 shoal wait "$F"
for id in "$G" "$I"; do
	if wait_state "$id" failed 50; then
		expect_exit 1 shoal wait "$id"
		grep -q "job $F, which this job waits for, failed" "$T/err" ||
			problem "job $id (waits for failed job $F): unclear error: $(cat "$T/err")"
	else
		problem "job $id waits for job $F, which failed, but is '$(field "$id" .state)' 5 s later"
		shoal cancel "$id" >/dev/null || true
	fi
done

# ---- --after / --input job: a job that has already failed: the new job fails at once. One
# at a time: submitting a chained job re-examines every waiting job, which would hide a job
# that nothing else re-examines.
for how in "--range 0:10 --after $F" "--input job:$F"; do
	# shellcheck disable=SC2086 # words by design
	id=$(submit --op sum $how --name "after-failed")
	if wait_state "$id" failed 50; then
		expect_exit 1 shoal wait "$id"
		grep -q "job $F, which this job waits for, failed" "$T/err" ||
			problem "job $id (after failed job $F): unclear error: $(cat "$T/err")"
	else
		problem "job $id ($how) was submitted after job $F had failed, but is '$(field "$id" .state)' 5 s later instead of failed"
		shoal cancel "$id" >/dev/null || true
	fi
done

# ---- --after a cancelled job
K=$(submit --exec 'sleep 30; cat' --range 0:1 --name K)
L=$(submit --op sum --range 0:10 --after "$K" --name L)
wait_state "$K" running 50 || fail "job $K never ran"
expect_exit 0 shoal cancel "$K"
if wait_state "$L" failed 50; then
	expect_exit 1 shoal wait "$L"
	grep -q "job $K, which this job waits for, cancelled" "$T/err" ||
		problem "job $L (after cancelled job $K): unclear error: $(cat "$T/err")"
else
	problem "job $L waits for cancelled job $K but is '$(field "$L" .state)'"
fi

# ---- unknown jobs and bad IDs: usage errors
expect_exit 2 shoal submit --op sum --range 0:10 --after 9999
grep -q "no job 9999 to run after" "$T/err" || problem "--after 9999: $(cat "$T/err")"
expect_exit 2 shoal submit --op sum --input job:9999
grep -q "no job 9999 to read the result of" "$T/err" || problem "--input job:9999: $(cat "$T/err")"
expect_exit 2 shoal submit --op sum --range 0:10 --after 0
expect_exit 2 shoal submit --op sum --input job:x
expect_exit 2 shoal submit --op sum --range 0:10 --after x

# ---- pipeline: grep -> wordcount -> sort, and wordcount -> exec -> sort
python3 - "$T/text.txt" <<'EOF'
import random, sys
rnd = random.Random(7)
vocab = ["ab", "abc", "cab", "dab", "xyz", "zz", "b", "a", "aab", "ba", "lorem", "ipsum"] + \
    ["w%d" % i for i in range(300)]
with open(sys.argv[1], "w") as f:
    for i in range(20000):
        f.write(" ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 12))) + "\n")
EOF
cat >"$T/swap.awk" <<'EOF'
BEGIN { FS = "\t" }
{ printf "%08d\t%s\n", $2, $1 }
EOF
S1=$(submit --op grep --arg pattern=ab --input "$T/text.txt" --partitions 4 --name grep)
S2=$(submit --op wordcount --input "job:$S1" --partitions 3 --name wordcount)
S3=$(submit --op sort --input "job:$S2" --partitions 2 --name sort)
S4=$(submit --exec 'awk -f swap.awk' --file "$T/swap.awk" --input "job:$S2" --partitions 3 --name swap)
S5=$(submit --op sort --input "job:$S4" --name sort2)
for id in "$S1" "$S2" "$S3" "$S4" "$S5"; do expect_exit 0 shoal wait "$id"; done
[ "$(field "$S3" .after)" = "$S2" ] || problem "job $S3 reads job $S2: status after=$(field "$S3" .after)"

grep -F ab "$T/text.txt" >"$T/s1.ref"
tr -s ' ' '\n' <"$T/s1.ref" | grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{ print $2 "\t" $1 }' >"$T/s2.ref"
LC_ALL=C sort "$T/s2.ref" >"$T/s3.ref"
awk -f "$T/swap.awk" "$T/s2.ref" | LC_ALL=C sort >"$T/s5.ref"
n=1
for id in "$S1" "$S2" "$S3" "$S5"; do
	[ $n = 4 ] && n=5
	run_ok "$T/s$n.out" result "$id"
	cmp -s "$T/s$n.ref" "$T/s$n.out" || problem "pipeline stage $n (job $id) differs from the shell pipeline ($(wc -l <"$T/s$n.ref") vs $(wc -l <"$T/s$n.out") lines)"
	n=$((n + 1))
done
log "pipeline: grep $(wc -l <"$T/s1.ref") lines -> wordcount $(wc -l <"$T/s2.ref") words -> sort; swap -> sort"

for p in "${PROBLEMS[@]}"; do echo "FAIL: $p" >&2; done
[ ${#PROBLEMS[@]} -eq 0 ] || fail "${#PROBLEMS[@]} problem(s), listed above"
