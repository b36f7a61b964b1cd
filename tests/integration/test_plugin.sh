#!/usr/bin/env bash
# C plugins (--plugin LIB.so, common/shoal_plugin.h) end to end:
#  - the example histogram plugin (examples/plugins/histogram.c) over generated integers equals
#    a python reference: with a master started with --allow-exec the partials are combined in
#    the master (one sorted histogram, whatever the partitioning, --input and --range); without
#    it the result is the partials concatenated in partition order (one increasing run of
#    buckets per partition, summing to the reference);
#  - a plugin without combine: partials concatenated in partition order, even with a master
#    that combines;
#  - refusals, each naming the shipped file and the problem: no shoal_plugin_v1 symbol, a wrong
#    ABI version, a file that is not a shared object; a map error reaches the user;
#  - a worker without --allow-exec refuses plugins, saying how to allow them.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

START_NS=$(date +%s%N)
ROOT=$(cd "$TESTS_DIR/../.." && pwd)
SANITIZED=${SHOAL_SANITIZED:-0}
if ldd "$SHOAL_MASTER_BIN" 2>/dev/null | grep -q libasan; then SANITIZED=1; fi
N=300000
[ "$SANITIZED" = 0 ] || N=60000
step() { log "$* ($(elapsed_ms "$START_NS") ms)"; }

HIST=$SHOAL_BUILD/examples/plugins/histogram.so
[ -f "$HIST" ] || fail "missing $HIST (ninja -C \$SHOAL_BUILD builds it)"

# ---- plugins built here from sources written here
mkdir -p "$T/plugins"
# cc_plugin NAME: builds $T/plugins/NAME.so from the C source on stdin.
cc_plugin() {
	cat >"$T/plugins/$1.c"
	cc -shared -fPIC -O1 -Wall -I"$ROOT/common" -o "$T/plugins/$1.so" "$T/plugins/$1.c" ||
		fail "cannot build plugin $1"
}
cc_plugin nosym <<'EOF'
/* Exports a function, but not shoal_plugin_v1. */
int shoal_plugin_v2(void) { return 1; }
EOF
cc_plugin badabi <<'EOF'
#include "shoal_plugin.h"
static int m(const uint8_t *d, size_t n, const struct shoal_plugin_args *a,
             const struct shoal_plugin_out *o, char *err, size_t errlen)
{
	(void)a; (void)err; (void)errlen;
	return o->write(o->ctx, d, n);
}
static const struct shoal_plugin p = {.abi_version = 99, .name = "badabi", .map = m};
const struct shoal_plugin *shoal_plugin_v1(void) { return &p; }
EOF
cc_plugin upper <<'EOF'
/* map only (no combine): each partition upper-cased, a partition marker first. */
#include <stdio.h>
#include <stdlib.h>
#include "shoal_plugin.h"
static int m(const uint8_t *d, size_t n, const struct shoal_plugin_args *a,
             const struct shoal_plugin_out *o, char *err, size_t errlen)
{
	(void)a;
	uint8_t *u = malloc(n + 1);
	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		u[i] = d[i] >= 'a' && d[i] <= 'z' ? (uint8_t)(d[i] - 32) : d[i];
	int rc = o->write(o->ctx, "--\n", 3) < 0 || o->write(o->ctx, u, n) < 0 ? -1 : 0;
	free(u);
	return rc;
}
static const struct shoal_plugin p = {.abi_version = SHOAL_PLUGIN_ABI_VERSION, .name = "upper", .map = m};
const struct shoal_plugin *shoal_plugin_v1(void) { return &p; }
EOF
echo 'this is not a shared object' >"$T/plugins/junk.so"

# ---- data and references
python3 - "$T/ints.txt" "$N" <<'EOF'
import random, sys
rng = random.Random(42)
vals = [rng.randint(-1000, 1000) if rng.random() < 0.8 else rng.randint(-10**12, 10**12)
        for _ in range(int(sys.argv[2]))]
vals += [0, -1, 1, 6, 7, -7, -8, 2**63 - 1, -(2**63) + 7]  # bucket edges, int64 limits
rng.shuffle(vals)
open(sys.argv[1], "w").write("".join("%d\n" % v for v in vals))
EOF
# hist_ref FILE|range:LO:HI WIDTH: START<TAB>COUNT per bucket (floor(x / W) * W), increasing
hist_ref() {
	python3 - "$1" "$2" <<'EOF'
import collections, sys
spec, w = sys.argv[1], int(sys.argv[2])
if spec.startswith("range:"):
    _, lo, hi = spec.split(":")
    xs = range(int(lo), int(hi))
else:
    xs = (int(l) for l in open(spec))
c = collections.Counter(x // w * w for x in xs)
sys.stdout.write("".join("%d\t%d\n" % (b, c[b]) for b in sorted(c)))
EOF
}
hist_ref "$T/ints.txt" 7 >"$T/hist7.ref"
hist_ref "$T/ints.txt" 1 >"$T/hist1.ref"
hist_ref range:-5000:100000 10 >"$T/range10.ref"

# check_concat OUT REF PARTS WHAT: OUT is PARTS increasing runs of START<TAB>COUNT (one per
# partition, in partition order) whose counts sum per bucket to REF. A mismatch says what
# differs (records per run, the first differing buckets, the job's own record count) and keeps
# OUT and REF in $T (SHOAL_KEEP=1 keeps $T), so that a failure seen once tells whether records
# were lost, doubled or changed, and in which partition; a check that cannot run says so.
check_concat() {
	local runs why rc=0
	runs=$(awk -F'\t' 'NF != 2 || $2 !~ /^[0-9]+$/ { print "bad line " NR ": " $0; exit 1 }
		NR == 1 || $1 + 0 <= last { r++ } { last = $1 + 0 } END { print r }' "$1") ||
		fail "$4: $runs"
	[ "$runs" = "$3" ] || fail "$4: $runs increasing runs of buckets, expected one per partition ($3)"
	why=$(python3 - "$1" "$2" 2>&1 <<'PY'
import collections, sys
runs, c, last = [], collections.Counter(), None
for line in open(sys.argv[1]):
    b, n = (int(f) for f in line.split("\t"))
    if last is None or b <= last:
        runs.append(0)
    runs[-1] += n
    last = b
    c[b] += n
want = {int(b): int(n) for b, n in (l.split("\t") for l in open(sys.argv[2]))}
if dict(c) != want:
    diff = [(b, want.get(b, 0), c.get(b, 0)) for b in sorted(set(c) | set(want))
            if want.get(b, 0) != c.get(b, 0)]
    print("%d records in the partials (per run: %s), %d in the reference; %d buckets "
          "differ, first (bucket, reference, partials): %s"
          % (sum(c.values()), runs, sum(want.values()), len(diff), diff[:8]))
    sys.exit(3)
PY
	) || rc=$?
	[ "$rc" = 0 ] && return 0
	cp "$1" "$T/concat-fail.out" 2>/dev/null || true
	cp "$2" "$T/concat-fail.ref" 2>/dev/null || true
	local job
	job=$(shoal jobs --json 2>&1 | jq -c 'max_by(.job_id) |
		{job_id, records, tasks_done, tasks_dispatched, task_failures}' 2>&1 || true)
	job+=" (master log: $(grep -cE 'event=(speculate|backup_won|worker_gone|task_failed)' \
		"$T/master.log" || true) speculation/failure events)"
	[ "$rc" = 3 ] || fail "$4: the sum check could not run (exit $rc): $(tail -n 3 <<<"$why"); last job: $job"
	fail "$4: the partials do not sum to the reference: $why; last job: $job"
}

# The master quarantines a worker for 30 s after 5 failed attempts in a row (a58d3a6), user
# commands failing on purpose included. heal: one successful task on each worker (round-robin
# over 4 tasks), which resets that count; run after every job that fails on purpose, so that
# no worker reaches 5 (each such job here fails 4 attempts at most: --partitions 1, --retries).
heal() { shoal run -q --plugin "$HIST" --range 0:4 --partitions 4 --strategy round-robin >/dev/null ||
	fail "heal: a histogram job failed"; }

# ---- a master without --allow-exec: partials concatenated in partition order
step "master without --allow-exec: partials concatenated"
start_master
start_worker p1 --slots 2 --allow-exec --cache-dir "$T/cache-p1" --work-dir "$T/work-p1"
start_worker p2 --slots 2 --allow-exec --cache-dir "$T/cache-p2" --work-dir "$T/work-p2"
wait_workers 2
for parts in 1 5; do
	run_ok "$T/out" run --plugin "$HIST" --arg width=7 --input "$T/ints.txt" --partitions "$parts"
	check_concat "$T/out" "$T/hist7.ref" "$parts" "histogram width=7, $parts partitions, no combine"
done
run_ok "$T/out" run --plugin "$HIST" --arg width=7 --input "$T/ints.txt" --partitions 1
same_files "$T/hist7.ref" "$T/out" "histogram width=7, one partition"

# a plugin without combine
seq 1 20000 | awk '{ print "line " $1 " of the text, some words" }' >"$T/text.txt"
run_ok "$T/out" run --plugin "$T/plugins/upper.so" --input "$T/text.txt" --partitions 4
[ "$(grep -c '^--$' "$T/out")" = 4 ] || fail "map-only plugin: $(grep -c '^--$' "$T/out") partition markers, expected 4"
# shellcheck disable=SC2018,SC2019 # ASCII bytes, as the plugin maps them
grep -v '^--$' "$T/out" | cmp -s - <(LC_ALL=C tr a-z A-Z <"$T/text.txt") ||
	fail "map-only plugin: the partials are not the partitions upper-cased in partition order"

# ---- refusals: the error names the shipped file and the problem
step "refusals"
expect_exit 1 shoal run --plugin "$T/plugins/nosym.so" --range 0:100
if ! grep -q 'nosym.so' "$T/err" || ! grep -q 'shoal_plugin_v1' "$T/err"; then
	fail "plugin without the symbol: error $(cat "$T/err")"
fi
expect_exit 1 shoal run --plugin "$T/plugins/badabi.so" --range 0:100
if ! grep -q 'badabi.so' "$T/err" || ! grep -qi 'ABI version 99' "$T/err"; then
	fail "plugin with ABI version 99: error $(cat "$T/err")"
fi
expect_exit 1 shoal run --plugin "$T/plugins/junk.so" --range 0:100
if ! grep -q 'junk.so' "$T/err" || ! grep -qi 'cannot load' "$T/err"; then
	fail "a text file as plugin: error $(cat "$T/err")"
fi
# the plugin's own error (map returns -1 with a reason)
printf '1\n2\nthree\n4\n' >"$T/bad.txt"
expect_exit 1 shoal run --plugin "$HIST" --input "$T/bad.txt" --retries 2
heal
grep -q 'three' "$T/err" || fail "histogram over a non-integer: error $(cat "$T/err")"
expect_exit 1 shoal run --plugin "$HIST" --arg width=0 --range 0:10 --partitions 1 --retries 2
heal
grep -q 'width' "$T/err" || fail "histogram width=0: error $(cat "$T/err")"
# the cluster still works after the refusals
run_ok "$T/out" run --plugin "$HIST" --arg width=10 --range -5000:100000 --partitions 1
same_files "$T/range10.ref" "$T/out" "histogram over a range after the refusals"

# ---- a master with --allow-exec: the partials are combined there
step "master with --allow-exec: combined"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
mv "$T/master.log" "$T/master-1.log"
start_master --allow-exec # the same port: the workers reconnect
wait_workers 2
for parts in 1 5 16; do
	run_ok "$T/out" run --plugin "$HIST" --arg width=7 --input "$T/ints.txt" --partitions "$parts"
	same_files "$T/hist7.ref" "$T/out" "histogram width=7 combined, $parts partitions"
done
run_ok "$T/out" run --plugin "$HIST" --input "$T/ints.txt" --partitions 3
same_files "$T/hist1.ref" "$T/out" "histogram (default width 1) combined, 3 partitions"
run_ok "$T/out" run --plugin "$HIST" --arg width=10 --range -5000:100000 --partitions 7
same_files "$T/range10.ref" "$T/out" "histogram width=10 of a range combined, 7 partitions"
run_ok "$T/out" run --plugin "$HIST" --arg width=7 --input-path "$T/ints.txt" --partitions 4
same_files "$T/hist7.ref" "$T/out" "histogram width=7 combined, --input-path"
# no combine in the plugin: concatenated even here
run_ok "$T/out" run --plugin "$T/plugins/upper.so" --input "$T/text.txt" --partitions 3
[ "$(grep -c '^--$' "$T/out")" = 3 ] || fail "map-only plugin, combining master: $(grep -c '^--$' "$T/out") markers"
expect_exit 1 shoal run --plugin "$T/plugins/badabi.so" --range 0:100
grep -q 'badabi.so' "$T/err" || fail "wrong ABI with a combining master: error $(cat "$T/err")"

# ---- a worker without --allow-exec refuses plugins
step "worker without --allow-exec"
start_worker plain --slots 2 --cache-dir "$T/cache-plain"
for w in p1 p2; do
	stop_pid "${WORKER_PID[$w]}"
	[ "$STOP_RC" = 0 ] || fail "worker $w exited $STOP_RC on SIGTERM"
done
wait_workers 1
expect_exit 1 shoal run --plugin "$HIST" --range 0:100
if ! grep -q -- '--allow-exec' "$T/err" || ! grep -q plain "$T/err"; then
	fail "a worker without --allow-exec: error $(cat "$T/err")"
fi
[ ! -s "$T/out" ] || fail "a refused plugin job wrote a result"
step "done"
