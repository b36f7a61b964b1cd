#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# A network partition between the master and one worker, made with network namespaces: the
# master (with worker a and the client) in namespace m, worker b in namespace w, joined by a
# veth pair (10.77.2.1/24 - 10.77.2.2/24). While b runs tasks of a job, b's end of the link
# goes down:
#  - the master declares b dead once its heartbeats stop (no disconnect is seen: the cut
#    sends no FIN or RST), and b's tasks run again on a; the job's result equals the reference;
#  - b, whose heartbeats go unacknowledged, gives up on the connection by itself while the cut
#    lasts (TCP_USER_TIMEOUT) and drops its tasks (its commands are killed);
#  - once the link is up again b registers again and takes work.
# Skipped (exit 77) where network namespaces cannot be created.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/netns.sh
source "$(dirname "$0")/netns.sh"

netns_require
netns_add m
netns_add w
netns_link m veth-m 10.77.2.1/24 w veth-w 10.77.2.2/24
netns_client m

N=600
PARTS=120
seq 0 $((N - 1)) | awk '{ print $1 * $1 }' >"$T/square.ref"
SLOW='echo $$ >>"'"$T"'/pids-$SHOAL_WORKER_NAME"; sleep 0.2; while read -r x; do echo $((x * x)); done'

# registrations NAME: how many times worker NAME has registered with the master.
registrations() { grep -c "event=worker_registered .*name=$1 " "$T/master.log" || true; }
more_than() {
	local n=$1
	shift
	[ "$("$@")" -gt "$n" ]
}
running_on() { shoal workers --json | jq --arg n "$1" '[.[] | select(.name == $n) | .running] | add // 0'; }
lost_count() { grep -c "lost master=.*reconnecting" "$T/worker-b.log" || true; }

netns_start_master m 10.77.2.1 --heartbeat-timeout 3
netns_start_worker m a --slots 2 --allow-exec --cache-dir "$T/cache-a"
netns_start_worker w b --slots 2 --allow-exec --cache-dir "$T/cache-b"
wait_workers 2
b_info=$(shoal workers --json | jq -c '.[] | select(.name == "b")')
[[ "$(jq -r .address <<<"$b_info")" == 10.77.2.2:* ]] || fail "the master sees worker b at: $b_info"
[ "$(jq -r .advertise <<<"$b_info")" = 10.77.2.2 ] || fail "worker b advertises: $b_info"
[ "$(jq -r .host <<<"$b_info")" = node-b ] || fail "worker b's host: $b_info"

# ---- cut b's link while it holds tasks of a job
id=$(shoal submit --exec "SHOAL_WORKER_NAME=\$(hostname); $SLOW" --range "0:$N" \
	--partitions "$PARTS" --strategy round-robin)
wait_for 300 "worker b runs tasks of job $id" more_than 0 running_on b
lost_before=$(lost_count)
cut_ns=$(date +%s%N)
netns_cut w veth-w
log "cut worker b's link while it held $(running_on b) tasks"
wait_for 300 "the master declares worker b dead" grep -q "event=worker_gone .*name=b " "$T/master.log"
line=$(grep "event=worker_gone .*name=b " "$T/master.log" | tail -n 1)
log "worker b declared dead $(elapsed_ms "$cut_ns") ms after the cut: $line"
grep -q 'reason="no heartbeat' <<<"$line" || fail "the master's reason for dropping b: $line"
requeued=$(sed -n 's/.*tasks_requeued=\([0-9]*\).*/\1/p' <<<"$line")
[ "${requeued:-0}" -gt 0 ] || fail "worker b held no task when it was declared dead: $line"
expect_exit 0 shoal wait "$id"
run_ok "$T/square.out" result "$id"
same_files "$T/square.ref" "$T/square.out" "square with worker b cut off"

# b notices by itself, while the link is still down, and kills its tasks' commands.
wait_for 300 "worker b gives up on its connection during the cut" more_than "$lost_before" lost_count
line=$(grep "lost master" "$T/worker-b.log" | tail -n 1)
log "worker b gave up on its connection $(($(date -u -d "${line%% *}" +%s%3N) - cut_ns / 1000000)) ms after the cut: $line"
while read -r pid; do
	wait_for 100 "worker b's command $pid is stopped" eval "! alive $pid"
done <"$T/pids-node-b"

# ---- the cut heals: b registers again and takes work
regs=$(registrations b)
heal_ns=$(date +%s%N)
netns_heal w veth-w
wait_for 300 "worker b registers again after the cut" more_than "$regs" registrations b
wait_workers 2
line=$(grep "event=worker_registered .*name=b " "$T/master.log" | tail -n 1)
log "worker b registered again $(($(date -u -d "${line%% *}" +%s%3N) - heal_ns / 1000000)) ms after its link came back up"
b_before=$(shoal workers --json | jq '.[] | select(.name == "b") | .tasks_done')
run_ok "$T/out" run --op sum --range 0:100000 --partitions 40 --strategy round-robin -q
[ "$(cat "$T/out")" = 4999950000 ] || fail "sum after the cut healed: $(cat "$T/out")"
b_after=$(shoal workers --json | jq '.[] | select(.name == "b") | .tasks_done')
[ "$b_after" -gt "$b_before" ] || fail "worker b got no work after the cut healed: $(shoal workers --json)"

for name in a b; do
	stop_pid "${WORKER_PID[$name]}"
	[ "$STOP_RC" = 0 ] || fail "worker $name exited with status $STOP_RC on SIGTERM"
done
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "the master exited with status $STOP_RC on SIGTERM"
log "ok"
