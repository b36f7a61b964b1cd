# shellcheck shell=bash disable=SC2034
# lib.sh: shared harness for integration tests. Each test starts real shoal-master and
# shoal-worker processes on 127.0.0.1 with ephemeral ports and drives them with the real
# `shoal` client. Every process a test starts is recorded by PID and stopped at exit; the
# test's scratch directory is removed unless SHOAL_KEEP=1.
set -euo pipefail

: "${SHOAL_BUILD:?SHOAL_BUILD must point at the meson build directory}"
SHOAL_MASTER_BIN=$SHOAL_BUILD/master/shoal-master
SHOAL_WORKER_BIN=$SHOAL_BUILD/worker/shoal-worker
SHOAL_CLIENT_BIN=$SHOAL_BUILD/client/shoal

# Built with AddressSanitizer? Then RSS also holds shadow memory and the quarantine of freed
# blocks (256 MB), so memory limits only hold for plain builds.
SANITIZED=0
# (Not `ldd | grep -q`: with pipefail, grep -q quitting early can fail the pipeline.)
case $(ldd "$SHOAL_MASTER_BIN" 2>/dev/null || true) in *libasan*) SANITIZED=1 ;; esac

# Scratch space under the build directory (not the shared /tmp, where other people's clean-ups
# of stale test directories have removed live ones); SHOAL_TEST_TMPDIR overrides it.
TEST_TMP=${SHOAL_TEST_TMPDIR:-$SHOAL_BUILD/integration-tmp}
mkdir -p "$TEST_TMP"
T=$(mktemp -d "$TEST_TMP/shoal-test.XXXXXX")
PIDS=()
MASTER_PID=
MASTER_PORT=
declare -A WORKER_PID=()

log() { echo "# $*" >&2; }

dump_logs() {
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 40 lines)" >&2
		tail -n 40 "$f" >&2
	done
}

# Shoal daemons this test started (pid -> name), and those it stopped or killed itself.
declare -A DAEMON=()
declare -A DEAD_OK=()

# daemon_killed PID: the test killed this daemon on purpose (no shutdown check for it at exit).
daemon_killed() { DEAD_OK[$1]=1; }

# At exit every process is stopped (SIGTERM, then SIGKILL after 10 s). Besides, the test fails
# if a daemon died while the test ran (a crash the cluster's fault tolerance would hide), did
# not exit with status 0 on SIGTERM, or a log holds a sanitizer report.
cleanup() {
	local rc=$? st pid problems=()
	for pid in "${PIDS[@]}"; do
		if [ -n "${DAEMON[$pid]:-}" ] && [ -z "${DEAD_OK[$pid]:-}" ] && ! child_alive "$pid"; then
			st=0
			wait "$pid" 2>/dev/null || st=$?
			problems+=("${DAEMON[$pid]} (pid $pid) died while the test ran: exit status $st")
			DEAD_OK[$pid]=1
		fi
	done
	for pid in "${PIDS[@]}"; do
		ours "$pid" || continue
		kill -CONT "$pid" 2>/dev/null || true
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		# Bounded wait, then force: a test must never hang on a stuck child.
		for _ in $(seq 100); do child_alive "$pid" || break; sleep 0.1; done
		if child_alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			[ -z "${DAEMON[$pid]:-}" ] || [ -n "${DEAD_OK[$pid]:-}" ] ||
				problems+=("${DAEMON[$pid]} (pid $pid) did not exit within 10 s of SIGTERM")
			DEAD_OK[$pid]=1
		fi
		st=0
		wait "$pid" 2>/dev/null || st=$?
		if [ -n "${DAEMON[$pid]:-}" ] && [ -z "${DEAD_OK[$pid]:-}" ] && [ "$st" != 0 ]; then
			problems+=("${DAEMON[$pid]} (pid $pid) exited with status $st on SIGTERM")
		fi
	done
	local f
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f"; then
			problems+=("sanitizer report in $(basename "$f"): $(grep -m1 -E 'Sanitizer|runtime error:' "$f")")
		fi
	done
	for f in "${problems[@]}"; do echo "FAIL: $f" >&2; done
	if [ ${#problems[@]} -gt 0 ] && [ $rc = 0 ]; then rc=1; fi
	if [ $rc -ne 0 ]; then dump_logs; fi
	if [ "${SHOAL_KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# start_master [extra args...]: sets MASTER_PID, MASTER_PORT and exports SHOAL_MASTER; and
# HTTP_PORT, the port of its --http endpoint (a free one unless the args say otherwise; empty
# with --http off).
start_master() {
	local logf=$T/master.log
	: >"$logf"
	"$SHOAL_MASTER_BIN" --listen 127.0.0.1:"${MASTER_PORT:-0}" --http 127.0.0.1:0 \
		--state-dir "$T/state" "$@" 2>>"$logf" &
	MASTER_PID=$!
	PIDS+=("$MASTER_PID")
	DAEMON[$MASTER_PID]=shoal-master
	local port=
	# Generous: the master opens (and checks) its journal before it listens, which takes
	# seconds under valgrind on a loaded machine.
	for _ in $(seq 600); do
		port=$(sed -n 's/.*event=listening address=127.0.0.1:\([0-9]*\).*/\1/p' "$logf" | tail -n 1)
		[ -n "$port" ] && break
		kill -0 "$MASTER_PID" 2>/dev/null || fail "master exited at start"
		sleep 0.05
	done
	[ -n "$port" ] || fail "master did not report its port"
	MASTER_PORT=$port
	export SHOAL_MASTER=127.0.0.1:$MASTER_PORT
	HTTP_PORT=$(sed -n 's/.*event=http_listening address=127.0.0.1:\([0-9]*\).*/\1/p' "$logf" | tail -n 1)
}

# start_worker NAME [extra args...]: starts a worker, records WORKER_PID[NAME].
start_worker() {
	local name=$1
	shift
	"$SHOAL_WORKER_BIN" --master "$SHOAL_MASTER" --name "$name" "$@" 2>>"$T/worker-$name.log" &
	WORKER_PID[$name]=$!
	PIDS+=("$!")
	DAEMON[$!]="shoal-worker $name"
}

# wait_workers N: waits (bounded) until the master lists N workers.
wait_workers() {
	local want=$1 n=
	for _ in $(seq 200); do
		n=$("$SHOAL_CLIENT_BIN" workers --json 2>/dev/null | jq length 2>/dev/null || echo -1)
		[ "$n" = "$want" ] && return 0
		sleep 0.05
	done
	fail "expected $want workers, master lists $n"
}

# shoal ARGS...: the real client, bounded by SHOAL_CMD_TIMEOUT seconds (exit 124 if it hangs).
shoal() { timeout -k 5 "${SHOAL_CMD_TIMEOUT:-120}" "$SHOAL_CLIENT_BIN" "$@"; }

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE; its stderr is in $T/err.
expect_exit() {
	local want=$1
	shift
	local rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want; stderr: $(cat "$T/err")"
}

# same_files EXPECTED ACTUAL WHAT
same_files() {
	cmp -s "$1" "$2" || {
		diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head -20 >&2 || true
		fail "$3: result differs from the reference ($(wc -c <"$1") vs $(wc -c <"$2") bytes)"
	}
}

# The directory of the tests (refs.py lives there).
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# refs ARGS...: the reference/data generator (python3, never shoal); see refs.py.
refs() { python3 "$TESTS_DIR/refs.py" "$@"; }

# free_port: a TCP port on 127.0.0.1 that nobody listens on at the moment.
free_port() { refs freeport; }

# run_ok OUT ARGS...: `shoal ARGS...` with stdout to OUT; fails the test (with the client's
# stderr) unless it exits 0.
run_ok() {
	local out=$1 rc=0
	shift
	shoal "$@" >"$out" 2>"$T/run_ok.err" || rc=$?
	[ "$rc" = 0 ] || fail "'shoal $*' exited $rc: $(head -c 2000 "$T/run_ok.err")"
}

# proc_kb PID FIELD: a /proc/PID/status field in kB (VmRSS, VmHWM), or empty if gone.
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# wait_for TRIES DESC CMD...: retries CMD (0.1 s apart) until it succeeds, TRIES times at most.
wait_for() {
	local tries=$1 desc=$2
	shift 2
	for _ in $(seq "$tries"); do
		"$@" && return 0
		sleep 0.1
	done
	fail "timed out waiting for: $desc"
}

# job_json ID: `shoal status ID --json`.
job_json() { shoal status "$1" --json; }

# stop_pid PID [SECONDS]: SIGTERM, then waits (bounded) and sets STOP_RC to the exit status
# (124 if it did not exit in time, in which case it is killed). Call it directly, not in $(...):
# only this shell can collect its children's exit status.
STOP_RC=
stop_pid() {
	local pid=$1 secs=${2:-10}
	STOP_RC=0
	DEAD_OK[$pid]=1
	! ours "$pid" || kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq $((secs * 20))); do
		child_alive "$pid" || break
		sleep 0.05
	done
	if child_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		STOP_RC=124
		return 0
	fi
	wait "$pid" 2>/dev/null || STOP_RC=$?
}

# child_alive PID: alive, and still this test's child.
child_alive() { ours "$1" && alive "$1"; }

# ours PID: PID is a child of this test's shell. Once a child is reaped its PID is free for
# any process on the machine (pid_max may be 32768, and tests run side by side): a test never
# signals a PID that is not its own child any more.
ours() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # after the command name, which may hold spaces
	local -a f
	read -r -a f <<<"$stat"
	[ "${f[1]:-}" = "$$" ]
}

# alive PID: the process is still running (and not a zombie).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local st
	st=$(awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null || true)
	[ -n "$st" ] && [ "$st" != Z ]
}

# ---- a master killed and started again (durability tests)

# kill_master: SIGKILL, as a crash.
kill_master() {
	daemon_killed "$MASTER_PID"
	kill -KILL "$MASTER_PID"
	wait "$MASTER_PID" 2>/dev/null || true
}

# respawn_master [extra args...]: the master again, on the same port and state dir; the
# previous one's log is kept as master-runN.log.old.
MASTER_RUNS=0
respawn_master() {
	MASTER_RUNS=$((MASTER_RUNS + 1))
	cp "$T/master.log" "$T/master-run$MASTER_RUNS.log.old"
	start_master "$@"
}

# workers_back N: the workers found the new master by themselves (bounded).
workers_back() {
	local want=$1 n=
	for _ in $(seq 300); do
		n=$("$SHOAL_CLIENT_BIN" workers --json 2>/dev/null | jq length 2>/dev/null || echo -1)
		[ "$n" = "$want" ] && return 0
		sleep 0.1
	done
	fail "workers did not re-register with the restarted master: $n of $want"
}

# job_field ID KEY: one field of `shoal status ID --json`.
job_field() { job_json "$1" | jq -r ".$2"; }

# elapsed_ms START_NS: milliseconds since START_NS (from `date +%s%N`).
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
