#!/usr/bin/env bash
# Queue policies (master --policy): with no worker connected, jobs of differing cost and
# priority are submitted; `shoal jobs` shows their places in the queue; then one worker with a
# single slot starts, and the order in which the jobs start (started_ms of `shoal jobs --json`)
# is exactly the policy's order, ties broken by arrival:
#   fcfs      arrival order, whatever the cost and priority
#   sjf       smallest --cost first (default cost: the input size; a range's count)
#   priority  highest --priority first (--aging 0: no aging, so ties are exact)
#   aging     --aging 50: a priority-0 job that has waited 1 s longer than a priority-10 job
#             goes first (it gained 50 points); with --aging 0 the same pair goes the other way
# Every job runs 2 partitions of `sleep 0.2; cat` on the one slot: a worker holds at most its
# slot plus one prefetched task, so a job's second task is handed out before the next job's
# first, and consecutive jobs start about 0.2 s apart (checked: at least 0.1 s).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

declare -A ID=()

# submit NAME ARGS...: an exec job of two 0.2 s tasks; its id goes to ID[NAME].
submit() {
	local name=$1 id
	shift
	id=$(shoal submit --name "$name" --exec 'sleep 0.2; cat' --range 0:2 --partitions 2 "$@")
	[[ "$id" =~ ^[0-9]+$ ]] || fail "submit $name printed '$id'"
	ID[$name]=$id
}

# queue_order: the queued jobs' names by queue_position (checks the positions are 1..n).
queue_order() {
	shoal jobs --json | jq -r '
		[.[] | select(.state == "queued")] | sort_by(.queue_position) as $q
		| if ([$q[].queue_position] == [range(1; ($q | length) + 1)]) then ($q | map(.name) | join(" "))
		  else "bad positions: \([$q[] | {name, queue_position}])" end'
}

# start_order: the jobs' names by started_ms; fails unless they start at least 100 ms apart.
start_order() {
	local js gap
	js=$(shoal jobs --json)
	gap=$(jq '[.[].started_ms] | sort as $s | [range(1; $s | length) | $s[.] - $s[. - 1]] | min' <<<"$js")
	[ "$gap" -ge 100 ] || fail "two jobs started ${gap} ms apart (ambiguous order): $(jq -c 'map({name, started_ms})' <<<"$js")"
	jq -r 'sort_by(.started_ms) | map(.name) | join(" ")' <<<"$js"
}

# run_policy LABEL "EXPECTED ORDER" MASTER-ARGS... then, on stdin, lines of "NAME ARGS..."
# to submit in that order (with a pause where a line says "pause SECONDS").
run_policy() {
	local label=$1 want=$2 name args got id
	shift 2
	MASTER_PORT=
	# A master of its own: the journal would otherwise bring back the previous one's jobs.
	start_master --state-dir "$T/state-$label" "$@"
	ID=()
	while read -r name args; do
		if [ "$name" = pause ]; then
			sleep "$args"
			continue
		fi
		# shellcheck disable=SC2086 # args are words by design
		submit "$name" $args
	done
	got=$(queue_order)
	[ "$got" = "$want" ] || fail "$label: queue order '$got', expected '$want'"
	shoal jobs >"$T/jobs.txt"
	grep -Eq '^ *[0-9]+ +queued +#1 ' "$T/jobs.txt" || fail "$label: no '#1' in 'shoal jobs': $(cat "$T/jobs.txt")"
	start_worker "w-$label" --slots 1 --allow-exec --cache-dir "$T/cache-$label"
	for id in "${ID[@]}"; do
		expect_exit 0 shoal wait "$id"
	done
	got=$(start_order)
	[ "$got" = "$want" ] || fail "$label: jobs started in the order '$got', expected '$want': $(shoal jobs --json | jq -c 'map({name, priority, cost, submitted_ms, started_ms})')"
	# Every job computed its input: 0 and 1.
	for id in "${ID[@]}"; do
		[ "$(shoal result "$id" | tr '\n' ' ')" = "0 1 " ] || fail "$label: job $id result: $(shoal result "$id")"
	done
	log "$label: started in order $got"
	stop_pid "${WORKER_PID[w-$label]}"
	[ "$STOP_RC" = 0 ] || fail "$label: worker exited $STOP_RC on SIGTERM"
	stop_pid "$MASTER_PID"
	[ "$STOP_RC" = 0 ] || fail "$label: master exited $STOP_RC on SIGTERM"
}

run_policy fcfs "a b c d" --policy fcfs <<'EOF'
a --priority 0 --cost 500
b --priority 9 --cost 10
c --priority 5 --cost 100
d --priority 1 --cost 1
EOF

# e has no --cost: its cost is its input size, 2 integers, the smallest. b and d tie at 10.
run_policy sjf "e b d c a" --policy sjf <<'EOF'
a --cost 500 --priority 9
b --cost 10
c --cost 100
d --cost 10 --priority 9
e
EOF

# b and d tie at 9.
run_policy priority "b d c a e" --policy priority --aging 0 <<'EOF'
a --priority 0 --cost 1
b --priority 9 --cost 500
c --priority 5
d --priority 9
e --priority -3
EOF

# old (priority 0) waits 1 s longer than new (priority 10): with 50 points per second it is
# 50 points ahead, so it goes first; without aging the higher priority goes first.
run_policy aging "old new" --policy priority --aging 50 <<'EOF'
old --priority 0
pause 1
new --priority 10
EOF
run_policy no-aging "new old" --policy priority --aging 0 <<'EOF'
old --priority 0
pause 1
new --priority 10
EOF
