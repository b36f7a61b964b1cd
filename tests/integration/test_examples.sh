#!/usr/bin/env bash
# The commands examples/demo.sh runs (README's quick start), against a test cluster started the
# way the demo starts it (workers find the master through SHOAL_MASTER), with their outputs
# checked: square 0:10 prints 0 1 4 ... 81, the wordcount of alice.txt equals the reference,
# the sum of 1..1,000,000 is 500000500000, knn on iris equals a python kNN, the seed's
# square.py run with --exec prints 0 1 4 ... 81.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$TESTS_DIR/../.." && pwd)
ALICE=$ROOT/examples/data/alice.txt
[ -s "$ALICE" ] || fail "missing $ALICE"
grep -q 'shoal run --op square --range 0:10' "$ROOT/examples/demo.sh" ||
	fail "examples/demo.sh no longer runs the square example: update this test"

start_master
# As the demo does: no --master, the workers read SHOAL_MASTER.
for i in 1 2; do
	"$SHOAL_WORKER_BIN" --slots 2 --name "demo-worker-$i" --allow-exec --cache-dir "$T/cache$i" \
		--work-dir "$T/work$i" 2>>"$T/worker-demo-$i.log" &
	PIDS+=("$!")
	DAEMON[$!]="shoal-worker demo-worker-$i"
done
wait_workers 2
expect_exit 0 shoal workers
for i in 1 2; do grep -q "demo-worker-$i" "$T/out" || fail "shoal workers: $(cat "$T/out")"; done

# shoal run --op square --range 0:10: 0 1 4 ... 81, one per line, nothing else
expect_exit 0 shoal run --op square --range 0:10
printf '%s\n' 0 1 4 9 16 25 36 49 64 81 >"$T/square.ref"
same_files "$T/square.ref" "$T/out" "shoal run --op square --range 0:10"
[ ! -s "$T/err" ] || fail "square printed on stderr (not a terminal: no progress expected): $(cat "$T/err")"

# shoal run --op wordcount --input examples/data/alice.txt (and the demo's top-10 pipeline)
expect_exit 0 shoal run --op wordcount --input "$ALICE"
refs ref wordcount "$ALICE" >"$T/wordcount.ref"
same_files "$T/wordcount.ref" "$T/out" "wordcount of alice.txt"
total=$(awk -F'\t' '{ s += $2 } END { print s }' "$T/out")
[ "$total" = "$(LC_ALL=C wc -w <"$ALICE")" ] || fail "wordcount total $total != wc -w"
top=$(sort -t$'\t' -k2,2nr -k1,1 "$T/out" | sed -n '1,10p' | wc -l) # sed reads it all: no SIGPIPE
[ "$top" = 10 ] || fail "the demo's top-10 pipeline gave $top lines"

# shoal run --op sum --range 1:1000001
expect_exit 0 shoal run --op sum --range 1:1000001
[ "$(cat "$T/out")" = 500000500000 ] || fail "sum 1..1000000: $(cat "$T/out")"

# k-nearest neighbours (k=3) on iris: 120 training rows broadcast, 30 labeled test rows
DATA=$ROOT/examples/data
expect_exit 0 shoal run --op knn --arg k=3 --arg labeled=1 --broadcast "$DATA/iris_train.csv" \
	--input "$DATA/iris_test.csv" --partitions 3
refs knn "$DATA/iris_train.csv" "$DATA/iris_test.csv" 3 >"$T/knn.ref"
same_files "$T/knn.ref" "$T/out" "knn k=3 on iris"
right=$(paste -d, <(tail -n +2 "$DATA/iris_test.csv" | awk -F, '{ print $NF }') "$T/knn.ref" |
	awk -F, '$1 == $2' | wc -l)
grep -q "$right/30" "$T/err" || fail "knn accuracy line: $(cat "$T/err"), expected $right/30"

# The seed's python map as a streaming command, run where the demo runs it (examples/)
(cd "$ROOT/examples" && expect_exit 0 shoal run --exec 'python3 square.py' --file square.py --range 0:10)
same_files "$T/square.ref" "$T/out" "--exec 'python3 square.py' --range 0:10"

# shoal jobs: the five jobs, all succeeded
expect_exit 0 shoal jobs
[ "$(grep -c succeeded "$T/out")" = 5 ] || fail "shoal jobs: $(cat "$T/out")"
for op in square wordcount sum knn; do grep -q "$op" "$T/out" || fail "shoal jobs lacks $op"; done
