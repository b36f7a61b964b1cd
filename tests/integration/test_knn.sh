#!/usr/bin/env bash
# The knn op (--op knn --broadcast TRAIN.csv --input QUERIES.csv) end to end, on workers without
# --allow-exec (a built-in op needs none):
#  - iris (examples/data, k=3, labeled=1): predictions equal a brute-force python reference
#    computed here (Euclidean distance, majority vote, a vote tie to the tied label with the
#    nearest member, a distance tie to the earlier training row), whatever the partitioning
#    (1, 3, 7 partitions); the client prints `accuracy: C/N = X` on stderr, and C/N matches;
#  - broadcast cache: the training file crosses the network once per worker (counted in the
#    workers' info-level `cache: stored sha256=...` lines and the master's debug-level blob
#    `event=send` lines); later jobs with the same file hit the cache (`prep: cache_hits`); the
#    master stores the client's upload once;
#  - random 2,000 training rows x 500 queries x 8 features: small integer features (many ties
#    in distance and in votes) with k = 1, 3, 4, 7, and decimal features with k = 5, equal the
#    reference, for 1 and 5 partitions.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

START_NS=$(date +%s%N)
ROOT=$(cd "$TESTS_DIR/../.." && pwd)
DATA=$ROOT/examples/data
step() { log "$* ($(elapsed_ms "$START_NS") ms)"; }

cat >"$T/knn.py" <<'EOF'
"""knn.py gen-int|gen-dec PREFIX NTRAIN NQUERY D SEED: writes PREFIX.train.csv (header, label
last), PREFIX.queries.csv (no header, no label) and PREFIX.labeled.csv (the same queries with a
header and a label last).
knn.py ref TRAIN QUERIES K [K...]: for each K, writes the predictions (one label per line) to
QUERIES.kK.ref. Rows are CSV; a first line whose first field is not a number is a header."""
import collections, random, sys


def rows(path):
    out = []
    with open(path) as f:
        for i, line in enumerate(f):
            fields = line.rstrip("\r\n").split(",")
            if i == 0:
                try:
                    float(fields[0])
                except ValueError:
                    continue  # header
            out.append(fields)
    return out


def ref(train_path, query_path, ks, labeled):
    train = [([float(v) for v in r[:-1]], r[-1]) for r in rows(train_path)]
    d = len(train[0][0])
    kmax = max(ks)
    preds = {k: [] for k in ks}
    for r in rows(query_path):
        q = [float(v) for v in r[:d]]
        dist = []
        for i, (t, lab) in enumerate(train):
            s = 0.0
            for a, b in zip(q, t):
                e = a - b
                s += e * e
            dist.append((s, i, lab))
        near = sorted(dist)[:kmax]  # equal distances: the earlier row first
        for k in ks:
            nk = near[:k]
            votes = collections.Counter(lab for _, _, lab in nk)
            best = max(votes.values())
            # a tie in votes: the label of the nearest among the tied
            preds[k].append(next(lab for _, _, lab in nk if votes[lab] == best))
    for k in ks:
        with open("%s.k%d.ref" % (query_path, k), "w") as f:
            f.write("".join(p + "\n" for p in preds[k]))


def gen(kind, prefix, ntrain, nquery, d, seed):
    rng = random.Random(seed)
    labels = ["red", "green", "blue", "cyan"]

    def feat():
        if kind == "int":
            return str(rng.randint(0, 3))
        return "%.3f" % rng.uniform(-50, 50)

    def row():
        return [feat() for _ in range(d)]

    with open(prefix + ".train.csv", "w") as f:
        f.write(",".join("f%d" % j for j in range(d)) + ",label\n")
        for _ in range(ntrain):
            f.write(",".join(row() + [rng.choice(labels)]) + "\n")
    qs = [row() for _ in range(nquery)]
    with open(prefix + ".queries.csv", "w") as f:
        f.write("".join(",".join(q) + "\n" for q in qs))
    with open(prefix + ".labeled.csv", "w") as f:
        f.write(",".join("f%d" % j for j in range(d)) + ",label\n")
        f.write("".join(",".join(q + [rng.choice(labels)]) + "\n" for q in qs))


a = sys.argv[1:]
if a[0].startswith("gen-"):
    gen(a[0][4:], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
elif a[0] == "ref":
    ref(a[1], a[2], [int(k) for k in a[3:]], False)
else:
    sys.exit(__doc__)
EOF

# accuracy_ref QUERIES PREDICTIONS: "C/N" (the label is the last field of each query row).
accuracy_ref() {
	paste -d, <(python3 -c 'import sys
lines = open(sys.argv[1]).read().splitlines()
first = lines[0].split(",")[0]
try:
    float(first)
except ValueError:
    lines = lines[1:]
print("\n".join(l.split(",")[-1] for l in lines))' "$1") "$2" |
		awk -F, '$1 == $2 { c++ } END { printf "%d/%d\n", c, NR }'
}

# check_accuracy ERRFILE C/N WHAT: the client's `accuracy: C/N = X` line, X = C/N to 1e-4.
check_accuracy() {
	local line
	line=$(grep '^accuracy: ' "$1") || fail "$3: no accuracy line on stderr: $(cat "$1")"
	[ "$(wc -l <<<"$line")" = 1 ] || fail "$3: several accuracy lines: $line"
	awk -v want="$2" '{ split($2, cn, "/"); split(want, w, "/") }
		$2 != want || $3 != "=" || ($4 - w[1] / w[2]) > 0.00005 || (w[1] / w[2] - $4) > 0.00005 { exit 1 }' \
		<<<"$line" || fail "$3: '$line', expected accuracy: $2 = $(awk -v w="$2" 'BEGIN { split(w, a, "/"); printf "%.4f", a[1] / a[2] }')"
}

# The master logs at debug level: its blob sends are counted below.
start_master --log-level debug
start_worker k1 --slots 2 --cache-dir "$T/cache-k1"
start_worker k2 --slots 2 --cache-dir "$T/cache-k2"
wait_workers 2

# ---- iris
step "iris, k=3"
cp "$DATA/iris_train.csv" "$DATA/iris_test.csv" "$T/"
python3 "$T/knn.py" ref "$T/iris_train.csv" "$T/iris_test.csv" 3 1 5
want=$(accuracy_ref "$T/iris_test.csv" "$T/iris_test.csv.k3.ref")
log "iris: reference accuracy $want"
for parts in 1 3 7; do
	expect_exit 0 shoal run --op knn --arg k=3 --arg labeled=1 --broadcast "$DATA/iris_train.csv" \
		--input "$DATA/iris_test.csv" --partitions "$parts"
	same_files "$T/iris_test.csv.k3.ref" "$T/out" "iris knn k=3, $parts partitions"
	check_accuracy "$T/err" "$want" "iris knn k=3, $parts partitions"
done
for k in 1 5; do
	expect_exit 0 shoal run --op knn --arg k=$k --arg labeled=1 --broadcast "$DATA/iris_train.csv" \
		--input "$DATA/iris_test.csv" --partitions 4
	same_files "$T/iris_test.csv.k$k.ref" "$T/out" "iris knn k=$k"
	check_accuracy "$T/err" "$(accuracy_ref "$T/iris_test.csv" "$T/iris_test.csv.k$k.ref")" "iris knn k=$k"
done
# the default k is 3
expect_exit 0 shoal run --op knn --arg labeled=1 --broadcast "$DATA/iris_train.csv" --input "$DATA/iris_test.csv"
same_files "$T/iris_test.csv.k3.ref" "$T/out" "iris knn, default k"
# unlabeled queries (the label column cut off): same predictions, no accuracy line
cut -d, -f1-4 "$DATA/iris_test.csv" >"$T/iris_unlabeled.csv"
expect_exit 0 shoal run --op knn --arg k=3 --broadcast "$DATA/iris_train.csv" --input "$T/iris_unlabeled.csv" --partitions 3
same_files "$T/iris_test.csv.k3.ref" "$T/out" "iris knn k=3, unlabeled queries"
! grep -q accuracy "$T/err" || fail "unlabeled queries: an accuracy line: $(cat "$T/err")"

# ---- broadcast cache: iris_train.csv crossed the network once per worker
step "broadcast cache"
sha=$(sha256sum "$DATA/iris_train.csv" | cut -d' ' -f1)
# stores WORKER: the worker's fetches of the training file (info level)
stores() { grep -c "cache: stored sha256=$sha " "$T/worker-$1.log" || true; }
# sends: the master's blob sends of the training file (debug level)
sends() { grep -c "blob=${sha:0:12} .*event=send" "$T/master.log" || true; }
s1=$(stores k1) s2=$(stores k2) n1=$(sends)
log "after 7 iris jobs: fetches k1=$s1 k2=$s2, master sends $n1"
if [ "$s1" -gt 1 ] || [ "$s2" -gt 1 ]; then
	fail "the training file was fetched more than once by a worker: k1=$s1 k2=$s2"
fi
[ $((s1 + s2)) -ge 1 ] || fail "no worker logged fetching the training file (cache: stored sha256=$sha)"
[ "$n1" = $((s1 + s2)) ] || fail "the master sent the training file $n1 times, the workers stored it $((s1 + s2)) times"
ids=()
for _ in 1 2 3; do
	id=$(shoal submit --op knn --arg k=3 --arg labeled=1 --broadcast "$DATA/iris_train.csv" \
		--input "$DATA/iris_test.csv" --partitions 8)
	expect_exit 0 shoal wait "$id"
	expect_exit 0 shoal result "$id"
	same_files "$T/iris_test.csv.k3.ref" "$T/out" "iris knn, job $id (cached broadcast)"
	ids+=("$id")
done
if [ "$(stores k1)" -gt 1 ] || [ "$(stores k2)" -gt 1 ]; then
	fail "a worker fetched the training file twice: k1 $s1 -> $(stores k1), k2 $s2 -> $(stores k2)"
fi
[ "$(sends)" = $(($(stores k1) + $(stores k2))) ] ||
	fail "master blob sends $(sends) != worker fetches $(($(stores k1) + $(stores k2)))"
hits=0
for id in "${ids[@]}"; do
	h=$(cat "$T"/worker-k?.log | grep -c "prep: cache_hits job=$id " || true)
	hits=$((hits + h))
done
log "after 3 more jobs: fetches k1=$(stores k1) k2=$(stores k2), master sends $(sends), cache_hits lines $hits"
[ "$hits" -ge 3 ] || fail "the jobs ${ids[*]} logged $hits cache_hits lines, expected one per job at least"
up=$(grep -c "blob=${sha:0:12} .*event=stored" "$T/master.log" || true)
[ "$up" = 1 ] || fail "the master stored the client's training file $up times (expected once)"

# ---- random data: 2,000 training rows x 500 queries x 8 features
step "random 2000 x 500 x 8, integer features (ties)"
python3 "$T/knn.py" gen-int "$T/int" 2000 500 8 7
python3 "$T/knn.py" ref "$T/int.train.csv" "$T/int.queries.csv" 1 3 4 7
step "reference computed"
for k in 1 3 4 7; do
	for parts in 1 5; do
		run_ok "$T/out" run --op knn --arg k=$k --broadcast "$T/int.train.csv" \
			--input "$T/int.queries.csv" --partitions "$parts"
		same_files "$T/int.queries.csv.k$k.ref" "$T/out" "random integer features, k=$k, $parts partitions"
	done
done
# labeled queries: the same predictions, and the accuracy line
expect_exit 0 shoal run --op knn --arg k=4 --arg labeled=1 --broadcast "$T/int.train.csv" \
	--input "$T/int.labeled.csv" --partitions 3
same_files "$T/int.queries.csv.k4.ref" "$T/out" "random integer features, labeled queries, k=4"
check_accuracy "$T/err" "$(accuracy_ref "$T/int.labeled.csv" "$T/int.queries.csv.k4.ref")" "random labeled queries"

step "random 2000 x 500 x 8, decimal features"
python3 "$T/knn.py" gen-dec "$T/dec" 2000 500 8 11
python3 "$T/knn.py" ref "$T/dec.train.csv" "$T/dec.queries.csv" 5
for parts in 1 5; do
	run_ok "$T/out" run --op knn --arg k=5 --broadcast "$T/dec.train.csv" --input "$T/dec.queries.csv" \
		--partitions "$parts"
	same_files "$T/dec.queries.csv.k5.ref" "$T/out" "random decimal features, k=5, $parts partitions"
done
step "done"
