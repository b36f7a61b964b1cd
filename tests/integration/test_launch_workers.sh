#!/usr/bin/env bash
# deploy/launch-workers.sh against two "hosts" that are directories on this machine: a fake
# `ssh` on PATH runs the remote command with sh in the host's directory (its home), a fake `scp`
# copies into it, so the script's real logic runs (remote dir and PID file, detached start,
# status, stop by the recorded PID, refusals) with real workers on 127.0.0.1, and the cluster
# secret is copied to each host as a 0600 file, never on a command line.
source "$(dirname "$0")/lib.sh"

SCRIPT=$(cd "$TESTS_DIR/../.." && pwd)/deploy/launch-workers.sh
[ -x "$SCRIPT" ] || fail "$SCRIPT is missing or not executable"

FAKE_HOSTS=$T/hosts
mkdir -p "$T/bin" "$FAKE_HOSTS/node-a" "$FAKE_HOSTS/node-b"
export FAKE_HOSTS SSH_LOG=$T/ssh.argv

# ssh [-o OPTION]... HOST COMMAND: runs COMMAND as a login shell would, in HOST's home.
cat >"$T/bin/ssh" <<'SH'
#!/usr/bin/env bash
printf '%s\n' "ssh $*" >>"$SSH_LOG"
host=${*: -2:1}
cmd=${*: -1}
[ -d "$FAKE_HOSTS/$host" ] || { echo "ssh: Could not resolve hostname $host" >&2; exit 255; }
cd "$FAKE_HOSTS/$host" && HOME=$PWD exec sh -c "$cmd"
SH
# scp [-q] [-o OPTION]... SRC HOST:PATH: like scp, an existing target keeps its mode.
cat >"$T/bin/scp" <<'SH'
#!/usr/bin/env bash
printf '%s\n' "scp $*" >>"$SSH_LOG"
src=${*: -2:1}
dst=${*: -1}
host=${dst%%:*}
path=${dst#*:}
[ -d "$FAKE_HOSTS/$host" ] || { echo "ssh: Could not resolve hostname $host" >&2; exit 255; }
cd "$FAKE_HOSTS/$host" && cp "$src" "$path"
SH
chmod +x "$T/bin/ssh" "$T/bin/scp"

cat >"$T/hosts.txt" <<'EOF2'
# two workers, one slot each
node-a --slots 1 --name lw-a

node-b --slots 1 --name lw-b   # a comment after the flags
EOF2

launch() { PATH="$T/bin:$PATH" SHOAL_WORKER_BIN=$SHOAL_WORKER_BIN timeout -k 5 120 "$SCRIPT" "$T/hosts.txt" "$@"; }

(umask 077 && head -c 32 /dev/urandom | base64 >"$T/secret")
export SHOAL_SECRET_FILE=$T/secret
start_master --secret-file "$T/secret"

expect_exit 0 launch start
log "start: $(tr '\n' ' ' <"$T/out") / $(tr '\n' ' ' <"$T/err")"
grep -q '^node-a: started: pid [0-9]*$' "$T/out" || fail "start output: $(cat "$T/out")"
grep -q '^node-b: started: pid [0-9]*$' "$T/out" || fail "start output: $(cat "$T/out")"
declare -A PID=()
for h in node-a node-b; do
	d=$FAKE_HOSTS/$h/.shoal-worker
	[ "$(stat -c %a "$d")" = 700 ] || fail "$h: remote dir mode $(stat -c %a "$d"), expected 700"
	[ "$(stat -c %a "$d/secret")" = 600 ] || fail "$h: secret mode $(stat -c %a "$d/secret"), expected 600"
	cmp -s "$T/secret" "$d/secret" || fail "$h: the secret was not copied intact"
	PID[$h]=$(cat "$d/worker.pid")
	# Not our children (setsid'd through "ssh"), but lib.sh's cleanup stops them if we fail.
	PIDS+=("${PID[$h]}")
	[ "$(ps -o comm= -p "${PID[$h]}")" = shoal-worker ] || fail "$h: pid ${PID[$h]} is not a shoal-worker"
done
wait_workers 2
shoal workers --json | jq -r '.[].name' | sort >"$T/names"
[ "$(tr '\n' ' ' <"$T/names")" = "lw-a lw-b " ] || fail "workers: $(cat "$T/names")"

run_ok "$T/sum" run --op sum --range 0:100000 --partitions 8
[ "$(cat "$T/sum")" = 4999950000 ] || fail "sum over the launched workers: $(cat "$T/sum")"

expect_exit 0 launch status
grep -q "^node-a: running: pid ${PID[node-a]}$" "$T/out" || fail "status: $(cat "$T/out")"
grep -q '2 of 2 workers running' "$T/err" || fail "status summary: $(cat "$T/err")"

# A second start refuses to start another worker where one runs.
expect_exit 1 launch start
grep -q 'node-a: a worker is already running' "$T/out" || fail "second start: $(cat "$T/out")"
wait_workers 2

expect_exit 0 launch stop
grep -q "^node-a: stopped: pid ${PID[node-a]}$" "$T/out" || fail "stop: $(cat "$T/out")"
for h in node-a node-b; do
	! alive "${PID[$h]}" || fail "$h: pid ${PID[$h]} still runs after stop"
	[ ! -e "$FAKE_HOSTS/$h/.shoal-worker/worker.pid" ] || fail "$h: worker.pid left after stop"
	[ ! -e "$FAKE_HOSTS/$h/.shoal-worker/secret" ] || fail "$h: the secret was left after stop"
	grep -q 'stopped status=0' "$FAKE_HOSTS/$h/.shoal-worker/worker.log" ||
		fail "$h: the worker did not stop cleanly: $(tail -n 3 "$FAKE_HOSTS/$h/.shoal-worker/worker.log")"
done
wait_workers 0

expect_exit 1 launch status
grep -q '0 of 2 workers running' "$T/err" || fail "status after stop: $(cat "$T/err")"
expect_exit 0 launch stop
grep -q '^node-a: not running$' "$T/out" || fail "stop when stopped: $(cat "$T/out")"

# Usage errors and an unreachable host.
SHOAL_MASTER='' expect_exit 2 launch start
grep -q 'start needs SHOAL_MASTER' "$T/err" || fail "no SHOAL_MASTER: $(cat "$T/err")"
expect_exit 2 launch restart
chmod 640 "$T/secret"
expect_exit 2 launch start
grep -q 'readable by group or others' "$T/err" || fail "group-readable secret: $(cat "$T/err")"
chmod 600 "$T/secret"
echo "node-z" >"$T/hosts.txt"
expect_exit 1 launch status
grep -q 'Could not resolve hostname node-z' "$T/out" || fail "unknown host: $(cat "$T/out")"

grep -q -- '-o BatchMode=yes' "$SSH_LOG" || fail "ssh runs without BatchMode"
! grep -qF -- "$(cat "$T/secret")" "$SSH_LOG" || fail "the secret appeared on an ssh/scp command line"
grep -q "^scp .*$T/secret node-a:.shoal-worker/secret\$" "$SSH_LOG" || fail "the secret was not sent with scp"
log "launch-workers.sh: started, listed and stopped 2 workers through ssh"
