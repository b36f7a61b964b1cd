#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec/--reduce-exec commands are awk's and sh's
# --exec + --reduce-exec (a map stage and a reduce stage of user commands):
#  - word count as two one-liners (awk map + awk reduce over plain text, python3 map + awk reduce
#    over text with every kind of blank) with --reducers 1 and 4 (and 1 and 5 map partitions)
#    equals the built-in wordcount after LC_ALL=C sort; with one reducer it equals it as is; with
#    4 the output is at most 4 runs, each in key order (reducers concatenated in reducer order);
#  - grouping: a reduce command that fails if a key comes back after another key, or if keys go
#    down bytewise, sees every map line (counted) and every key in one reducer only;
#  - keys: the text before the first TAB (values keep their TABs), a line without TAB is all
#    key, an empty key; more reducers than keys;
#  - keys holding bytes below TAB (\x01, Hive's field separator): still grouped and in bytewise
#    key order;
#  - a failing reduce command fails the job with its status and stderr.
# Checks of product bugs found while writing this test are collected with `bug` and reported
# together at the end (the test still fails).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

BUGS=()
bug() {
	echo "FAIL (continuing): $*" >&2
	BUGS+=("$*")
}
START_NS=$(date +%s%N)
SANITIZED=${SHOAL_SANITIZED:-0}
if ldd "$SHOAL_MASTER_BIN" 2>/dev/null | grep -q libasan; then SANITIZED=1; fi
TEXT_KB=512 BIG_MB=2
if [ "$SANITIZED" = 1 ]; then TEXT_KB=128 BIG_MB=1; fi
step() { log "$* ($(elapsed_ms "$START_NS") ms)"; }

start_master
start_worker r1 --slots 2 --allow-exec --cache-dir "$T/cache-r1" --work-dir "$T/work-r1"
start_worker r2 --slots 2 --allow-exec --cache-dir "$T/cache-r2" --work-dir "$T/work-r2"
wait_workers 2

# The master quarantines a worker for 30 s after 5 failed attempts in a row (a58d3a6), user
# commands failing on purpose included. heal: one successful task on each worker (round-robin
# over 4 tasks), which resets that count; run after every job that fails on purpose, so that
# no worker reaches 5 (each such job here fails 4 attempts at most: --partitions 1, --retries).
heal() { shoal run -q --exec cat --range 0:4 --partitions 4 --strategy round-robin >/dev/null ||
	fail "heal: a plain exec job failed"; }

# The one-liners. Map: WORD<TAB>1 per word. Reduce: the sum of each run of equal keys.
AWK_MAP='awk '"'"'{ for (i = 1; i <= NF; i++) print $i "\t1" }'"'"
PY_MAP='python3 -c "import sys
for l in sys.stdin.buffer:
    for w in l.split(): sys.stdout.buffer.write(w + b\"\t1\n\")"'
AWK_REDUCE='LC_ALL=C awk -F"\t" '"'"'NR > 1 && $1 != k { print k "\t" n; n = 0 } { k = $1; n += $2 } END { if (NR) print k "\t" n }'"'"

# runs FILE: the number of maximal runs of lines whose keys (text before the first TAB) do not go
# down bytewise.
runs() { LC_ALL=C awk -F'\t' 'NR == 1 || ($1 "") < (k "") { r++ } { k = $1 } END { print r + 0 }' "$1"; }

# wordcount_case NAME MAP FILE
wordcount_case() {
	local name=$1 map=$2 file=$3 parts reducers n
	run_ok "$T/wc.ref" run --op wordcount --input "$file"
	for parts in 1 5; do
		for reducers in 1 4; do
			run_ok "$T/out" run --exec "$map" --reduce-exec "$AWK_REDUCE" --reducers "$reducers" \
				--input "$file" --partitions "$parts"
			LC_ALL=C sort "$T/out" >"$T/out.sorted"
			same_files "$T/wc.ref" "$T/out.sorted" \
				"$name word count, $parts map partitions, $reducers reducers (sorted)"
			n=$(runs "$T/out")
			[ "$n" -le "$reducers" ] ||
				fail "$name word count, $reducers reducers: $n runs in key order (each reducer's output should be one)"
			if [ "$reducers" = 1 ]; then
				same_files "$T/wc.ref" "$T/out" "$name word count, one reducer (as is)"
			fi
		done
	done
	log "$name: $(wc -l <"$T/wc.ref") words, $(runs "$T/out") runs with 4 reducers"
}

step "word count: awk map + awk reduce"
refs bigtext "$T/plain.txt" "$BIG_MB"
wordcount_case "awk+awk" "$AWK_MAP" "$T/plain.txt"

step "word count: python3 map + awk reduce"
refs text "$T/text.txt" "$TEXT_KB"
wordcount_case "python3+awk" "$PY_MAP" "$T/text.txt"

# ---- grouping: each key's lines arrive together, keys in bytewise order, each in one reducer
step "grouping"
GROUP_REDUCE='LC_ALL=C awk -F"\t" '"'"'
	NR > 1 && $1 != k { if ($1 in seen) { print "key " $1 " came back" > "/dev/stderr"; exit 9 }
	                    if (($1 "") < (k "")) { print "key " $1 " after " k > "/dev/stderr"; exit 8 }
	                    seen[k] = 1; keys++ }
	{ k = $1 } END { if (NR) keys++; print "lines", NR + 0, "keys", keys + 0 }'"'"
total_lines=$(python3 -c 'import sys; print(len(open(sys.argv[1], "rb").read().split()))' "$T/text.txt")
distinct=$(wc -l <"$T/wc.ref")
for reducers in 1 3 4; do
	run_ok "$T/out" run --exec "$PY_MAP" --reduce-exec "$GROUP_REDUCE" --reducers "$reducers" \
		--input "$T/text.txt" --partitions 6
	[ "$(wc -l <"$T/out")" = "$reducers" ] || fail "grouping, $reducers reducers: $(cat "$T/out")"
	sums=$(awk '{ l += $2; k += $4 } END { print l, k }' "$T/out")
	[ "$sums" = "$total_lines $distinct" ] ||
		fail "grouping, $reducers reducers: lines and keys seen '$sums', expected '$total_lines $distinct': $(cat "$T/out")"
done

# ---- keys: before the first TAB; no TAB: the whole line; empty key; values keep their TABs
step "keys"
python3 - "$T/keys.txt" <<'EOF'
import random, sys
rng = random.Random(5)
keys = [b"a", b"b", b"a-", b"ab", b"", b"B", b"\xc3\xa9", b"z" * 300, b"k k", b"9", b"10"]
lines = []
for i in range(3000):
    k = rng.choice(keys)
    r = rng.random()
    if r < 0.1:
        lines.append(k)                                  # no TAB: all key
    elif r < 0.2:
        lines.append(k + b"\t" + b"v%d\tw%d" % (i, i))  # a value with a TAB
    else:
        lines.append(k + b"\t" + b"v%d" % i)
open(sys.argv[1], "wb").write(b"".join(l + b"\n" for l in lines))
EOF
for reducers in 1 4 20; do
	run_ok "$T/out" run --exec cat --reduce-exec cat --reducers "$reducers" --input "$T/keys.txt" --partitions 4
	LC_ALL=C sort "$T/keys.txt" >"$T/keys.ref"
	LC_ALL=C sort "$T/out" >"$T/out.sorted"
	same_files "$T/keys.ref" "$T/out.sorted" "identity map and reduce, $reducers reducers (sorted)"
	n=$(runs "$T/out")
	[ "$n" -le "$reducers" ] || fail "identity, $reducers reducers: $n runs in key order"
	# each key in one reducer: the keys of consecutive runs do not repeat
	dup=$(LC_ALL=C awk -F'\t' 'NR > 1 && $1 != k { if ($1 in seen) print $1; seen[k] = 1 } { k = $1 }' "$T/out" | head -3)
	[ -z "$dup" ] || fail "identity, $reducers reducers: keys in more than one run: $dup"
done

# ---- keys with bytes below TAB: grouping and order are by key, not by whole line
# Key "a" has a line without TAB ("a") and one with ("a<TAB>v2"); key "a<01>" sorts after "a"
# bytewise. By key: a, a<TAB>v2, a<01><TAB>v1, b. Sorting whole lines instead puts a<01><TAB>v1
# between the two lines of key "a" (0x01 < TAB), so a reducer sees "a" twice.
step "keys with bytes below TAB"
printf 'a\tv2\na\001\tv1\na\nb\n' >"$T/ctl.txt"
printf 'a\na\na\001\nb\n' >"$T/ctl.ref" # the keys in order (the order within a key is free)
for reducers in 1 2; do
	if ! shoal run --exec cat --reduce-exec "$GROUP_REDUCE" --reducers "$reducers" --input "$T/ctl.txt" \
		--retries 2 >"$T/out" 2>"$T/err"; then
		heal
		bug "keys a, a<01>, b, $reducers reducers: the grouping reducer failed: $(cat "$T/err")"
	elif [ "$(awk '{ k += $4 } END { print k }' "$T/out")" != 3 ]; then
		bug "keys a, a<01>, b, $reducers reducers: $(cat "$T/out")"
	fi
done
if shoal run --exec cat --reduce-exec cat --reducers 1 --input "$T/ctl.txt" >"$T/out" 2>"$T/err"; then
	cut -f1 "$T/out" >"$T/out.keys"
	cmp -s "$T/ctl.ref" "$T/out.keys" || bug "keys a (a line without TAB and a<TAB>v2), a<01>, b through one reducer: got $(od -An -c "$T/out" | tr -s ' \n' ' '), expected keys $(od -An -c "$T/ctl.ref" | tr -s ' \n' ' ')"
else
	bug "keys a, a<01>, b: the job failed: $(cat "$T/err")"
fi

# ---- a failing reduce command
step "failing reducer"
expect_exit 1 shoal run --exec cat --reduce-exec 'cat >/dev/null; echo reducer-broke >&2; exit 6' \
	--reducers 2 --input "$T/keys.txt" --retries 1
heal
if ! grep -q 'status 6' "$T/err" || ! grep -q reducer-broke "$T/err"; then
	fail "failing reducer: error $(cat "$T/err")"
fi
[ ! -s "$T/out" ] || fail "failing reducer: a result was written"
step "done"
[ ${#BUGS[@]} = 0 ] || fail "${#BUGS[@]} product bug(s): $(printf '\n  - %s' "${BUGS[@]}")"
