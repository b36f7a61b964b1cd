#!/usr/bin/env bash
# shoal top: plain frames with -n (workers, their load, the running job and its progress),
# then the interactive view in a real terminal (tmux): it shows the cluster, quits on q, and
# leaves the terminal's mode as it found it, after q and after SIGTERM. Also `shoal token`.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_master
start_worker t1 --slots 2 --allow-exec --cache-dir "$T/cache-1"
start_worker t2 --slots 1 --allow-exec --cache-dir "$T/cache-2"
wait_workers 2

# A job that runs until the test says so (its tasks wait at most 120 s for $T/go).
id=$(shoal submit --exec "for i in \$(seq 1200); do [ -e '$T/go' ] && break; sleep 0.1; done; cat" \
	--range 0:30 --partitions 3 --name topjob)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
job_running() { [ "$(shoal status "$id" --json | jq -r .tasks_running)" -ge 1 ]; }
wait_for 300 "job $id running" job_running

log "plain frames"
shoal top -n 2 --interval 0.2 >"$T/top.out" || fail "shoal top -n 2 exited $?"
[ "$(grep -c '^shoal top ' "$T/top.out")" = 2 ] || fail "expected 2 frames: $(cat "$T/top.out")"
grep -q 'workers 2 ' "$T/top.out" || fail "no worker count: $(cat "$T/top.out")"
grep -Eq '^t1 .*\[[#.]{12}\]' "$T/top.out" || fail "no load bar for t1: $(cat "$T/top.out")"
grep -Eq '^t2 ' "$T/top.out" || fail "no t2: $(cat "$T/top.out")"
grep -Eq "^ *$id +topjob +exec +running +\[[#.]{12}\] +[0-9]+/3 " "$T/top.out" ||
	fail "no running job with its progress: $(cat "$T/top.out")"
! grep -q $'\x1b' "$T/top.out" || fail "escape sequences in plain frames"
expect_exit 2 shoal top --iterations 0
expect_exit 2 shoal top --interval 0.01

if command -v tmux >/dev/null; then
	log "interactive, in tmux"
	sock="$T/tmux.sock"
	tm() { tmux -S "$sock" "$@"; }
	# top_session NAME: shoal top in a fresh terminal, the tty's mode saved before and after.
	top_session() {
		tm new-session -d -s "$1" -x 120 -y 30 \
			"stty -g >'$T/$1.before'; '$SHOAL_CLIENT_BIN' top --interval 0.2; echo \$? >'$T/$1.rc'; stty -g >'$T/$1.after'; sleep 30"
		shows() { tm capture-pane -p -t "$1" | grep -q "topjob"; }
		[ -n "$(tm display-message -p '#{pid}' 2>/dev/null)" ] || fail "tmux did not start"
		wait_for 300 "top shows the job in tmux" shows "$1"
		tm capture-pane -p -t "$1" >"$T/$1.screen"
		grep -Eq '^t1 .*\[[#.]{12}\]' "$T/$1.screen" || fail "tmux screen: $(cat "$T/$1.screen")"
	}
	ended() { [ -s "$T/$1.after" ]; }
	top_session q
	PIDS+=("$(tm display-message -p '#{pid}')") # the tmux server: stopped at exit whatever happens
	tm send-keys -t q q
	wait_for 300 "top to quit on q" ended q
	[ "$(cat "$T/q.rc")" = 0 ] || fail "top exited $(cat "$T/q.rc") on q"
	cmp -s "$T/q.before" "$T/q.after" || fail "tty mode not restored after q"
	top_session term
	pid=$(pgrep -f "^$SHOAL_CLIENT_BIN top --interval 0.2" | head -n 1)
	[ -n "$pid" ] || fail "no shoal top process"
	kill -TERM "$pid"
	wait_for 300 "top to stop on SIGTERM" ended term
	cmp -s "$T/term.before" "$T/term.after" || fail "tty mode not restored after SIGTERM"
	tm kill-server 2>/dev/null || true
else
	log "tmux is not installed: the interactive view is not checked"
fi
touch "$T/go"
expect_exit 0 shoal wait "$id"

log "token"
printf 'a-cluster-secret-of-enough-length\n' >"$T/secret"
chmod 600 "$T/secret"
tok=$(shoal token --secret-file "$T/secret")
[[ "$tok" =~ ^[0-9a-f]{64}$ ]] || fail "token '$tok'"
[ "$(SHOAL_SECRET_FILE=$T/secret shoal token)" = "$tok" ] || fail "token differs with SHOAL_SECRET_FILE"
printf 'another-cluster-secret-of-length\n' >"$T/secret2"
chmod 600 "$T/secret2"
[ "$(shoal token --secret-file "$T/secret2")" != "$tok" ] || fail "two secrets, one token"
expect_exit 2 env -u SHOAL_SECRET_FILE "$SHOAL_CLIENT_BIN" token
grep -q "no cluster secret" "$T/err" || fail "token without secret: $(cat "$T/err")"
log "ok"
