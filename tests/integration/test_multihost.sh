#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# Many hosts, made with network namespaces: a bridge in a hub namespace, the master on
# 10.77.1.1, three workers on 10.77.1.11-13 (each with a hostname of its own, node-w1..3) and
# the client on 10.77.1.100, each in a namespace of its own with its own address, plugged into
# the bridge by a veth pair. Checks:
#  - the workers register across the bridge; the master logs and `shoal workers` shows each
#    one's hostname, the address it connects from and the address it advertises;
#  - real jobs from the client (a wordcount of a file uploaded from the client's host, a square
#    over a range) give the reference results, with tasks on all three workers;
#  - worker w2's link is cut while it runs tasks: the master declares it dead, its tasks run on
#    w1 and w3 and the job's result is still the reference; once the link is restored w2
#    registers again and takes work.
# Everything is created by the test and removed at its end. Skipped (exit 77) where network
# namespaces cannot be created.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/netns.sh
source "$(dirname "$0")/netns.sh"

netns_require
netns_hub hub
netns_add m
netns_attach hub m 10.77.1.1/24
netns_add c
netns_attach hub c 10.77.1.100/24
for i in 1 2 3; do
	netns_add "w$i"
	netns_attach hub "w$i" "10.77.1.1$i/24"
done
netns_client c

registrations() { grep -c "event=worker_registered .*name=$1 " "$T/master.log" || true; }
more_than() {
	local n=$1
	shift
	[ "$("$@")" -gt "$n" ]
}
running_on() { shoal workers --json | jq --arg n "$1" '[.[] | select(.name == $n) | .running] | add // 0'; }
done_on() { shoal workers --json | jq --arg n "$1" '[.[] | select(.name == $n) | .tasks_done] | add // 0'; }

netns_start_master m 10.77.1.1 --heartbeat-timeout 3
for i in 1 2 3; do
	netns_start_worker "w$i" "w$i" --slots 2 --allow-exec --cache-dir "$T/cache-w$i"
done
wait_workers 3

# ---- who is who: hostname, the address the master sees, the address advertised
shoal workers --json >"$T/workers.json"
shoal workers >"$T/workers.txt"
for i in 1 2 3; do
	w=$(jq -c --arg n "w$i" '.[] | select(.name == $n)' "$T/workers.json")
	[ "$(jq -r .host <<<"$w")" = "node-w$i" ] || fail "worker w$i's host: $w"
	[[ "$(jq -r .address <<<"$w")" == "10.77.1.1$i:"* ]] || fail "the master sees w$i at: $w"
	[ "$(jq -r .advertise <<<"$w")" = "10.77.1.1$i" ] || fail "worker w$i advertises: $w"
	grep -qE "peer=10\.77\.1\.1$i:[0-9]+ event=worker_registered worker=[0-9]+ name=w$i host=node-w$i advertise=10\.77\.1\.1$i " \
		"$T/master.log" || fail "the master's log lacks w$i's registration with its host and addresses"
	grep -qE "^ *[0-9]+ +w$i +node-w$i +10\.77\.1\.1$i:[0-9]+ +10\.77\.1\.1$i " "$T/workers.txt" ||
		fail "shoal workers' table row for w$i: $(cat "$T/workers.txt")"
done
log "workers: $(jq -c '[.[] | {name, host, address, advertise}]' "$T/workers.json")"

# ---- real jobs from the client's host, spread over the three workers
refs bigtext "$T/book.txt" 4 "$T/wordcount.ref"
run_ok "$T/wordcount.out" run --op wordcount --input "$T/book.txt" --partitions 30 \
	--strategy round-robin -q
same_files "$T/wordcount.ref" "$T/wordcount.out" "wordcount across the hosts"
N=3000
seq 0 $((N - 1)) | awk '{ print $1 * $1 }' >"$T/square.ref"
run_ok "$T/square.out" run --op square --range "0:$N" --partitions 30 --strategy round-robin -q
same_files "$T/square.ref" "$T/square.out" "square across the hosts"
for i in 1 2 3; do
	[ "$(done_on "w$i")" -gt 0 ] || fail "worker w$i ran no task: $(shoal workers --json)"
done

# ---- cut w2's link while it runs tasks; restore it
SLOW='sleep 0.2; while read -r x; do echo $((x * x)); done'
id=$(shoal submit --exec "$SLOW" --range "0:$N" --partitions 90 --strategy round-robin)
wait_for 300 "worker w2 runs tasks of job $id" more_than 0 running_on w2
regs=$(registrations w2)
netns_cut w2 eth0
log "cut worker w2's link while it held $(running_on w2) tasks"
wait_for 300 "the master declares w2 dead" grep -q "event=worker_gone .*name=w2 " "$T/master.log"
line=$(grep "event=worker_gone .*name=w2 " "$T/master.log" | tail -n 1)
log "$line"
requeued=$(sed -n 's/.*tasks_requeued=\([0-9]*\).*/\1/p' <<<"$line")
[ "${requeued:-0}" -gt 0 ] || fail "worker w2 held no task when it was declared dead: $line"
expect_exit 0 shoal wait "$id"
run_ok "$T/square2.out" result "$id"
same_files "$T/square.ref" "$T/square2.out" "square with w2 cut off"
[ "$(shoal workers --json | jq -r '[.[].name] | sort | join(",")')" = w1,w3 ] ||
	fail "workers while w2 is cut off: $(shoal workers --json)"
netns_heal w2 eth0
wait_for 300 "worker w2 registers again" more_than "$regs" registrations w2
wait_workers 3
w2_before=$(done_on w2)
run_ok "$T/out" run --op sum --range 0:100000 --partitions 30 --strategy round-robin -q
[ "$(cat "$T/out")" = 4999950000 ] || fail "sum after w2 came back: $(cat "$T/out")"
[ "$(done_on w2)" -gt "$w2_before" ] || fail "worker w2 got no work after it came back: $(shoal workers --json)"

for i in 1 2 3; do
	stop_pid "${WORKER_PID[w$i]}"
	[ "$STOP_RC" = 0 ] || fail "worker w$i exited with status $STOP_RC on SIGTERM"
done
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "the master exited with status $STOP_RC on SIGTERM"
log "ok"
