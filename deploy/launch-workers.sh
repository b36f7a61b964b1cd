#!/usr/bin/env bash
# launch-workers.sh: start, stop or list shoal workers on many hosts over ssh.
#
#   SHOAL_MASTER=master-host:7411 [SHOAL_SECRET_FILE=FILE] deploy/launch-workers.sh HOSTS_FILE start
#   deploy/launch-workers.sh HOSTS_FILE status
#   deploy/launch-workers.sh HOSTS_FILE stop
#
# HOSTS_FILE holds one ssh destination per line ([user@]host, or a Host alias of ~/.ssh/config),
# optionally followed by shoal-worker flags for that host (e.g. `node7 --slots 16`); blank lines
# and lines starting with # are skipped.
#
# On each host the worker runs from REMOTE_DIR (default .shoal-worker in the ssh user's home):
# REMOTE_DIR/worker.pid is its PID, REMOTE_DIR/worker.log its log, REMOTE_DIR/secret the cluster
# secret. `start` creates REMOTE_DIR with mode 0700, copies the secret with scp into a file that
# is created 0600 under umask 077 before any byte is written (the secret never appears on a
# command line), and starts `shoal-worker --master $SHOAL_MASTER` detached (setsid, nohup-like)
# with the secret file given by path. `stop` sends SIGTERM to the recorded PID (after checking
# that it is still a shoal-worker), waits for the worker to drain, then removes the PID and
# secret files; a worker still draining after SHOAL_STOP_TIMEOUT seconds gets the second signal
# that makes it exit at once. `status` reports each host's worker.
#
# Settings (environment):
#   SHOAL_MASTER        master address as the workers reach it (required by start)
#   SHOAL_SECRET_FILE   local cluster secret (mode 0600) to copy to each host (start)
#   SHOAL_WORKER_BIN    shoal-worker on the remote hosts (default: shoal-worker, from PATH)
#   SHOAL_REMOTE_DIR    remote directory, relative to the ssh user's home (default .shoal-worker)
#   SHOAL_STOP_TIMEOUT  seconds stop waits for a worker to drain (default 60)
#   SSH, SCP            the ssh and scp programs (default ssh, scp)
#   SSH_OPTS            extra options for both, split on spaces (e.g. "-i key -o Port=2222")
#
# Exit status: 0 when every host did what was asked (status: every worker runs), 1 when some
# host failed (each failure is named), 2 on a usage error. The remote login shell must be
# POSIX sh compatible.
set -euo pipefail

PROG=launch-workers.sh

usage() {
	awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
	exit 2
}

die() {
	echo "$PROG: $*" >&2
	exit 2
}

[ $# -eq 2 ] || usage
hosts_file=$1
action=$2
case $action in
start | stop | status) ;;
*) die "unknown action '$action' (start, stop or status)" ;;
esac
[ -r "$hosts_file" ] || die "cannot read hosts file '$hosts_file'"

SSH=${SSH:-ssh}
SCP=${SCP:-scp}
REMOTE_DIR=${SHOAL_REMOTE_DIR:-.shoal-worker}
WORKER_BIN=${SHOAL_WORKER_BIN:-shoal-worker}
STOP_TIMEOUT=${SHOAL_STOP_TIMEOUT:-60}
case $STOP_TIMEOUT in
'' | *[!0-9]*) die "SHOAL_STOP_TIMEOUT must be a number of seconds, not '$STOP_TIMEOUT'" ;;
esac
read -r -a ssh_opts <<<"${SSH_OPTS:-}"
# BatchMode: fail instead of prompting for a password in the middle of a loop over hosts.
ssh_cmd=("$SSH" -o BatchMode=yes "${ssh_opts[@]}")
scp_cmd=("$SCP" -q -o BatchMode=yes "${ssh_opts[@]}")

secret=
if [ "$action" = start ]; then
	[ -n "${SHOAL_MASTER:-}" ] || die "start needs SHOAL_MASTER=HOST:PORT (the master as the workers reach it)"
	if [ -n "${SHOAL_SECRET_FILE:-}" ]; then
		secret=$SHOAL_SECRET_FILE
		if [ ! -f "$secret" ] || [ ! -r "$secret" ]; then
			die "cannot read SHOAL_SECRET_FILE '$secret'"
		fi
		case $(stat -c %a "$secret") in
		[0-7]00) ;;
		*) die "SHOAL_SECRET_FILE '$secret' is readable by group or others (chmod 600 it first)" ;;
		esac
	fi
fi

# q WORD: WORD quoted for the remote POSIX shell ('...' with embedded quotes closed and escaped).
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# remote HOST SCRIPT: runs SCRIPT with sh on HOST, stdin closed (the loop's stdin is not ssh's).
remote() { "${ssh_cmd[@]}" "$1" "sh -c $(q "$2")" </dev/null; }

rdir=$(q "$REMOTE_DIR")

# shellcheck disable=SC2016 # remote shell code: it expands there, not here
# The shell code that tells whether worker.pid names a live shoal-worker: sets pid, and
# running=1 if so. A stale PID reused by another program is not "running".
probe='pid=; running=0
if [ -f worker.pid ]; then
	pid=$(cat worker.pid)
	case $pid in ""|*[!0-9]*) pid= ;; esac
	if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = shoal-worker ]; then running=1; fi
fi'

start_host() {
	local host=$1
	shift
	local opts="" o
	for o in "$@"; do opts+=" $(q "$o")"; done
	# The secret's file exists, empty and 0600 (umask 077), before scp writes into it: scp
	# keeps the mode of an existing target.
	local make_secret="rm -f secret" secret_arg=""
	if [ -n "$secret" ]; then
		make_secret="rm -f secret && : >secret"
		# shellcheck disable=SC2016 # $PWD is the remote directory
		secret_arg=' --secret-file "$PWD/secret"'
	fi
	local rc=0
	remote "$host" "umask 077 && mkdir -p $rdir && chmod 700 $rdir && cd $rdir || exit 1
$probe
if [ \$running = 1 ]; then echo \"a worker is already running: pid \$pid (stop it first)\"; exit 1; fi
$make_secret" || rc=$?
	[ $rc = 0 ] || return $rc
	if [ -n "$secret" ]; then
		"${scp_cmd[@]}" "$secret" "$host:$REMOTE_DIR/secret" </dev/null || return 1
	fi
	remote "$host" "umask 077 && cd $rdir || exit 1
setsid $(q "$WORKER_BIN") --master $(q "$SHOAL_MASTER")$secret_arg$opts </dev/null >>worker.log 2>&1 &
echo \$! >worker.pid
sleep 1
$probe
if [ \$running = 1 ]; then echo \"started: pid \$pid\"; exit 0; fi
echo 'the worker exited at once; the end of worker.log:'
tail -n 5 worker.log
rm -f worker.pid secret
exit 1"
}

stop_host() {
	local host=$1
	remote "$host" "cd $rdir 2>/dev/null || { echo 'not running (no $REMOTE_DIR)'; exit 0; }
$probe
if [ \$running = 0 ]; then echo 'not running'; rm -f worker.pid secret; exit 0; fi
kill -TERM \$pid
i=0
while [ \$i -lt $((STOP_TIMEOUT * 10)) ] && [ \"\$(ps -o comm= -p \$pid 2>/dev/null)\" = shoal-worker ]; do
	sleep 0.1; i=\$((i + 1))
done
if [ \"\$(ps -o comm= -p \$pid 2>/dev/null)\" = shoal-worker ]; then
	echo \"still draining after ${STOP_TIMEOUT}s: signalled again (exits now, killing its commands)\"
	kill -TERM \$pid
	i=0
	while [ \$i -lt 100 ] && [ \"\$(ps -o comm= -p \$pid 2>/dev/null)\" = shoal-worker ]; do sleep 0.1; i=\$((i + 1)); done
fi
if [ \"\$(ps -o comm= -p \$pid 2>/dev/null)\" = shoal-worker ]; then echo \"pid \$pid did not exit\"; exit 1; fi
rm -f worker.pid secret
echo \"stopped: pid \$pid\""
}

status_host() {
	local host=$1
	remote "$host" "cd $rdir 2>/dev/null || { echo 'not running (no $REMOTE_DIR)'; exit 1; }
$probe
if [ \$running = 1 ]; then echo \"running: pid \$pid\"; exit 0; fi
if [ -n \"\$pid\" ]; then echo \"dead: pid \$pid is gone; the end of worker.log:\"; tail -n 5 worker.log; exit 1; fi
echo 'not running'
exit 1"
}

# Read the hosts first: ssh must not eat the rest of the file from the loop's stdin.
mapfile -t lines <"$hosts_file"
failed=0 n=0
for line in "${lines[@]}"; do
	line=${line%%#*}
	read -r -a words <<<"$line"
	[ ${#words[@]} -gt 0 ] || continue
	host=${words[0]}
	n=$((n + 1))
	rc=0
	case $action in
	start) out=$(start_host "$host" "${words[@]:1}" 2>&1) || rc=$? ;;
	stop) out=$(stop_host "$host" 2>&1) || rc=$? ;;
	status) out=$(status_host "$host" 2>&1) || rc=$? ;;
	esac
	[ -z "$out" ] || while IFS= read -r l; do echo "$host: $l"; done <<<"$out"
	if [ $rc != 0 ]; then
		failed=$((failed + 1))
		[ "$action" = status ] || echo "$host: $PROG: $action failed" >&2
	fi
done
[ $n -gt 0 ] || die "no hosts in '$hosts_file'"
case $action in
start) echo "$((n - failed)) of $n workers started" >&2 ;;
stop) echo "$((n - failed)) of $n workers stopped" >&2 ;;
status) echo "$((n - failed)) of $n workers running" >&2 ;;
esac
[ $failed = 0 ]
