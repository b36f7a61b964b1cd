#!/usr/bin/env bash
# Quick start: installs dependencies, builds shoal, starts a local cluster (one master and two
# workers on 127.0.0.1), runs the examples through the `shoal` client, and stops the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/install-deps.sh
[ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null

state=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$state"
}
trap cleanup EXIT

# Port 0: the master picks a free port and logs it.
build/master/shoal-master --listen 127.0.0.1:0 --state-dir "$state/master" 2>"$state/master.log" &
pids+=($!)
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*event=listening address=127.0.0.1:\([0-9]*\).*/\1/p' "$state/master.log")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat "$state/master.log" >&2; echo "master did not start" >&2; exit 1; }
export SHOAL_MASTER=127.0.0.1:$port
for i in 1 2; do
	build/worker/shoal-worker --slots 2 --name "demo-worker-$i" --allow-exec \
		--cache-dir "$state/cache$i" --work-dir "$state/work$i" 2>"$state/worker$i.log" &
	pids+=($!)
done
for _ in $(seq 100); do
	[ "$(build/client/shoal workers --json | jq length)" = 2 ] && break
	sleep 0.05
done

echo "== cluster: master on $SHOAL_MASTER"
build/client/shoal workers
echo
echo "== shoal run --op square --range 0:10"
build/client/shoal run --op square --range 0:10
echo
echo "== shoal run --op wordcount --input examples/data/alice.txt (most frequent words)"
build/client/shoal run --op wordcount --input examples/data/alice.txt | sort -t$'\t' -k2,2nr -k1,1 | head -10
echo
echo "== shoal run --op sum --range 1:1000001"
build/client/shoal run --op sum --range 1:1000001
echo
echo "== k-nearest neighbours (k=3) on iris: 120 training rows broadcast, 30 test rows partitioned"
build/client/shoal run --op knn --arg k=3 --arg labeled=1 --broadcast examples/data/iris_train.csv \
	--input examples/data/iris_test.csv --partitions 3 | sort | uniq -c
echo
echo "== the seed's Python map, as a streaming command: shoal run --exec 'python3 square.py' --file square.py --range 0:10"
(cd examples && ../build/client/shoal run --exec 'python3 square.py' --file square.py --range 0:10 | tr '\n' ' ')
echo
echo
build/client/shoal jobs
