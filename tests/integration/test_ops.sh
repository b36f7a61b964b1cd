#!/usr/bin/env bash
# Every built-in op over generated data equals a reference computed by python3 or by the
# standard tools, whatever the input kind (--input FILE, --input -, --input-path), the number of
# partitions (1, 7, 64), the number of workers (1, 2, 3) and the strategy (round-robin, dynamic).
# Input kinds: file (--input FILE), stdin (--input - redirected from the file: its size is
# known), pipe (--input - from a pipe: size unknown, so partitioned with --partition-size
# SIZE/N), path (--input-path).
#
# Matrix: with 2 workers, every (op, data) x every partition count x every input kind, the
# strategy alternating; with 1 and with 3 workers, every (op, data) with --input FILE over
# 7 and 64 partitions, both strategies. Then: square --range 0:1000000, folds and squares at
# the ends of int64, grep patterns that are regex or shell metacharacters (fixed strings),
# splits that fall exactly on line starts, 12 concurrent clients, empty inputs, and the job
# listing after a few hundred jobs.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_ts=$(date +%s%N)
D=$T/data
R=$T/ref
mkdir -p "$D" "$R"

# ---- data and references (python3 and coreutils, never shoal)
refs ints "$D/ints.txt" 20000
refs text "$D/text.txt" 1536
PATTERN=lorem
for op in square sum count min max mean; do refs ref "$op" "$D/ints.txt" >"$R/$op.ints"; done
refs ref count "$D/text.txt" >"$R/count.text"
refs ref wordcount "$D/text.txt" >"$R/wordcount.text"
LC_ALL=C sort "$D/text.txt" >"$R/sort.text"
LC_ALL=C grep -a -F -- "$PATTERN" "$D/text.txt" >"$R/grep.text"
LC_ALL=C sort "$D/ints.txt" >"$R/sort.ints"
LC_ALL=C grep -a -F -- "99" "$D/ints.txt" >"$R/grep.ints"

# Sanity of the references themselves: the table's total equals `wc -w`, the data has what the
# test promises.
wc_w=$(LC_ALL=C wc -w <"$D/text.txt")
table_total=$(awk -F'\t' '{ s += $NF } END { print s }' "$R/wordcount.text")
[ "$wc_w" = "$table_total" ] || fail "reference wordcount total $table_total != wc -w $wc_w"
grep -q -- '-3037000499' "$D/ints.txt" || fail "data lacks -3037000499"
grep -q -- '4611686018427387904' "$D/ints.txt" || fail "data lacks 2^62"
grep -q -- '9223372036854775808' "$D/ints.txt" || fail "data lacks values beyond int64"
[ "$(tail -c 1 "$D/text.txt" | od -An -c | tr -d ' ')" != '\n' ] || fail "text ends in a newline"
grep -q $'\r$' "$D/text.txt" || fail "text lacks CRLF lines"
grep -q '^$' "$D/text.txt" || fail "text lacks empty lines"
[ "$(awk '{ if (length > m) m = length } END { print m }' "$D/text.txt")" -gt 30000 ] ||
	fail "text lacks long lines"
log "data: ints $(wc -c <"$D/ints.txt") bytes, text $(wc -c <"$D/text.txt") bytes, $wc_w words"

# (op, data) cases: OP:DATA, the reference is $R/OP.DATA.
CASES=(square:ints sum:ints count:ints min:ints max:ints mean:ints sort:ints grep:ints
	count:text wordcount:text sort:text grep:text)

runs=0
# check KIND PARTS STRATEGY OP DATA: one run, compared with its reference.
check() {
	local kind=$1 parts=$2 strat=$3 op=$4 data=$5
	local what="$op over $data, --input $kind, $parts partitions, $strat, $NWORKERS workers"
	local args=(run --op "$op" --partitions "$parts" --strategy "$strat" -q)
	if [ "$op" = grep ]; then
		if [ "$data" = ints ]; then args+=(--arg pattern=99); else args+=(--arg "pattern=$PATTERN"); fi
	fi
	local out=$T/out.$op.$data rc=0 size id
	case $kind in
	file) shoal "${args[@]}" --input "$D/$data.txt" >"$out" 2>"$T/err" || rc=$? ;;
	stdin) shoal "${args[@]}" --input - <"$D/$data.txt" >"$out" 2>"$T/err" || rc=$? ;;
	pipe)
		size=$(stat -c %s "$D/$data.txt")
		args=("${args[@]/--partitions/--partition-size}")
		args[4]=$((size / parts + 1))
		args[0]=submit # to learn the job id
		# shellcheck disable=SC2002 # a pipe on purpose: stdin of unknown size
		id=$(cat "$D/$data.txt" | shoal "${args[@]}" --input - 2>"$T/err") || rc=$?
		[ "$rc" != 0 ] || shoal wait "$id" >/dev/null 2>>"$T/err" || rc=$?
		[ "$rc" != 0 ] || shoal result "$id" >"$out" 2>>"$T/err" || rc=$?
		if [ "$rc" = 0 ] && [ "$parts" -gt 1 ]; then
			[ "$(job_json "$id" | jq .tasks_total)" -gt 1 ] ||
				fail "$what: --partition-size $size/$parts gave one task"
		fi
		;;
	path) shoal "${args[@]}" --input-path "$D/$data.txt" >"$out" 2>"$T/err" || rc=$? ;;
	esac
	[ "$rc" = 0 ] || fail "$what: exit $rc: $(head -c 1000 "$T/err")"
	same_files "$R/$op.$data" "$out" "$what"
	runs=$((runs + 1))
}

STRATS=(round-robin dynamic)

# ---- 1 worker
start_master
start_worker w1 --slots 2
NWORKERS=1
wait_workers 1
i=0
for c in "${CASES[@]}"; do
	for parts in 7 64; do
		check file "$parts" "${STRATS[i % 2]}" "${c%%:*}" "${c#*:}"
		i=$((i + 1))
	done
done
log "1 worker: $runs runs ok"

# ---- 2 workers: the full matrix
start_worker w2 --slots 2
NWORKERS=2
wait_workers 2
i=0
for c in "${CASES[@]}"; do
	for parts in 1 7 64; do
		for kind in file stdin pipe path; do
			check "$kind" "$parts" "${STRATS[i % 2]}" "${c%%:*}" "${c#*:}"
			i=$((i + 1))
		done
	done
done
log "2 workers: $runs runs ok"

# ---- 3 workers
start_worker w3 --slots 2
NWORKERS=3
wait_workers 3
i=1
for c in "${CASES[@]}"; do
	for parts in 7 64; do
		check file "$parts" "${STRATS[i % 2]}" "${c%%:*}" "${c#*:}"
		i=$((i + 1))
	done
done
# All three workers took part (tasks_done > 0 for each).
busy=$(shoal workers --json | jq '[.[] | select(.tasks_done > 0)] | length')
[ "$busy" = 3 ] || fail "only $busy of 3 workers ran tasks"
log "3 workers: $runs runs ok"

# ---- ranges: square 0:1000000 exactly as Python prints it, and the folds over a range with
# negative numbers.
refs ref square range:0:1000000 >"$R/square.range"
for parts in 1 7 64; do
	for strat in "${STRATS[@]}"; do
		run_ok "$T/out" run --op square --range 0:1000000 --partitions "$parts" --strategy "$strat" -q
		same_files "$R/square.range" "$T/out" "square --range 0:1000000, $parts partitions, $strat"
	done
done
for op in sum count min max mean square; do
	refs ref "$op" range:-3037000600:-3036999000 >"$R/$op.nrange"
	run_ok "$T/out" run --op "$op" --range -3037000600:-3036999000 --partitions 7 -q
	same_files "$R/$op.nrange" "$T/out" "$op --range -3037000600:-3036999000"
done

# The extremes of int64: folds over the whole range (2^64 - 1 integers), squares at both ends.
I64_MIN=-9223372036854775808
I64_MAX=9223372036854775807
for op in count sum min max mean; do
	refs ref "$op" "range:$I64_MIN:$I64_MAX" >"$R/$op.full"
	run_ok "$T/out" run --op "$op" --range "$I64_MIN:$I64_MAX" --partitions 7 -q
	same_files "$R/$op.full" "$T/out" "$op over the whole int64 range"
done
for r in "$I64_MIN:$((I64_MIN + 5))" "$((I64_MAX - 5)):$I64_MAX"; do
	refs ref square "range:$r" >"$R/square.edge"
	run_ok "$T/out" run --op square --range "$r" --partitions 3 -q
	same_files "$R/square.edge" "$T/out" "square --range $r"
done

# grep patterns are fixed bytes, like grep -F: regex and shell metacharacters, blanks, UTF-8.
for pat in . '[' '*' 'a b' $'\t' "it's" '$' 'caf'$'\xc3\xa9' "\\" '-x'; do
	LC_ALL=C grep -a -F -- "$pat" "$D/text.txt" >"$R/grep.pat" || true
	run_ok "$T/out" run --op grep --arg "pattern=$pat" --input-path "$D/text.txt" --partitions 7 -q
	same_files "$R/grep.pat" "$T/out" "grep -F '$pat'"
done

# ---- split boundaries exactly on line starts (the classic off-by-one of line-aligned splits):
# fixed-width records of 10 bytes, partition sizes that divide them exactly, and one byte off.
seq -f '%09g' 1 3000 >"$D/fixed.txt"
for op in count sum square; do refs ref "$op" "$D/fixed.txt" >"$R/$op.fixed"; done
for psize in 10 1000 999 1001 7; do
	for op in count sum square; do
		run_ok "$T/out" run --op "$op" --input-path "$D/fixed.txt" --partition-size "$psize" -q
		same_files "$R/$op.fixed" "$T/out" "$op --input-path, 10-byte lines, --partition-size $psize"
	done
	run_ok "$T/out" run --op sum --input "$D/fixed.txt" --partition-size "$psize" -q
	same_files "$R/sum.fixed" "$T/out" "sum --input FILE, 10-byte lines, --partition-size $psize"
done

# ---- concurrent clients: 12 jobs at once, each result equal to its reference
pids=()
n=0
for c in "${CASES[@]}"; do
	op=${c%%:*} data=${c#*:}
	args=(run --op "$op" --partitions 16 -q --input "$D/$data.txt")
	[ "$op" != grep ] || args+=(--arg "pattern=$([ "$data" = ints ] && echo 99 || echo "$PATTERN")")
	shoal "${args[@]}" >"$T/conc.$n.out" 2>"$T/conc.$n.err" &
	pids+=("$!")
	echo "$op.$data" >"$T/conc.$n.ref"
	n=$((n + 1))
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || fail "concurrent job $i ($(cat "$T/conc.$i.ref")): $(cat "$T/conc.$i.err")"
	same_files "$R/$(cat "$T/conc.$i.ref")" "$T/conc.$i.out" "concurrent $(cat "$T/conc.$i.ref")"
done

# ---- empty input: count and sum are 0, the ordered and merged ops are empty.
: >"$D/empty.txt"
for op in count sum; do
	run_ok "$T/out" run --op "$op" --input "$D/empty.txt" -q
	[ "$(cat "$T/out")" = 0 ] || fail "$op of an empty file: '$(cat "$T/out")', expected 0"
done
for op in square wordcount sort; do
	run_ok "$T/out" run --op "$op" --input "$D/empty.txt" -q
	[ ! -s "$T/out" ] || fail "$op of an empty file printed $(wc -c <"$T/out") bytes"
done

log "ops: $runs matrix runs ok in $(elapsed_ms "$start_ts") ms"

# Piped stdin (size unknown): --partitions N is honoured (the master spools the upload and
# cuts it once it is complete) or refused as a usage error, never silently ignored.
rc=0
# shellcheck disable=SC2002 # a pipe on purpose
id=$(cat "$D/text.txt" | shoal submit --op count --input - --partitions 7 2>"$T/err") || rc=$?
if [ "$rc" = 0 ]; then
	expect_exit 0 shoal wait "$id"
	run_ok "$T/out" result "$id"
	same_files "$R/count.text" "$T/out" "count of piped stdin with --partitions 7"
	tasks=$(job_json "$id" | jq .tasks_total)
	[ "$tasks" -gt 1 ] ||
		fail "piped stdin with --partitions 7 ran as $tasks task(s): --partitions was ignored silently"
else
	[ "$rc" = 2 ] || fail "piped stdin with --partitions 7: exit $rc: $(cat "$T/err")"
fi

# The master has run a few hundred jobs by now: `shoal jobs` lists every one of them.
last=$(shoal submit --op count --range 0:1)
expect_exit 0 shoal wait "$last"
expect_exit 0 shoal jobs --json
[ "$(jq length "$T/out")" = "$last" ] || fail "jobs --json lists $(jq length "$T/out") of $last jobs"
expect_exit 0 shoal jobs
[ "$(grep -c succeeded "$T/out")" -ge "$last" ] || fail "shoal jobs (table) lists too few jobs"
