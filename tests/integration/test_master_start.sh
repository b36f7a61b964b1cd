#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $VARIABLES in --exec commands are for the worker's sh
# The master's start with its journal:
#  - a journal it cannot use (garbage; a journal file it cannot write, here bind-mounted
#    read-only) stops it with exit 1 before it listens: no event=listening line, nobody can
#    connect; the error names the file, the cause and what to do, in a few words (it used to
#    quote ~900 characters of schema SQL before the cause);
#  - a job's start time is journaled when it starts: after a restart the resumed job shows
#    the same started_ms as before (it was journaled as 0, so the resumed job got a new one
#    and showed a wrong elapsed time).
# The read-only case is skipped, with a message, where bind mounts are not allowed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

MOUNTS=()
unmount_then_cleanup() {
	local rc=$? m
	set +e
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
	(exit $rc)
	cleanup
}
trap unmount_then_cleanup EXIT

# refuses STATE-DIR WHAT: the master exits 1 at start, without listening, and its one error
# line names STATE-DIR/journal.db, says WHAT, and is short.
refuses() {
	local dir=$1 what=$2 rc=0 line
	timeout -k 5 60 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
		--state-dir "$dir" 2>"$T/refused.log" || rc=$?
	[ "$rc" = 1 ] || fail "master on $dir exited $rc, expected 1: $(cat "$T/refused.log")"
	! grep -q "event=listening\|event=http_listening" "$T/refused.log" ||
		fail "master on $dir listened before checking its journal: $(cat "$T/refused.log")"
	line=$(grep ERROR "$T/refused.log" || true)
	[ -n "$line" ] || fail "no error from the master on $dir: $(cat "$T/refused.log")"
	[[ "$line" == *"$dir/journal.db"* ]] || fail "the error does not name the journal: $line"
	grep -q -- "$what" <<<"$line" || fail "no '$what' in: $line"
	! grep -qi "create table\|begin immediate\|pragma" <<<"$line" || fail "the error quotes SQL: $line"
	local msg=${line#*ERROR master: }
	[ "${#msg}" -lt $((${#dir} + 300)) ] || fail "the error is ${#msg} characters long: $line"
	log "refused: $msg"
}

log "garbage journal"
mkdir -p "$T/garbage"
head -c 65536 /dev/urandom >"$T/garbage/journal.db"
refuses "$T/garbage" "move it aside"

log "journal file that cannot be written"
mkdir -p "$T/ro"
# A journal in WAL mode with shoal's application id (what a master leaves), so that opening
# it gets as far as creating its tables.
python3 - "$T/ro/journal.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("pragma application_id=1936224097")
c.execute("pragma journal_mode=wal")
c.execute("create table meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
c.commit()
c.close()
PY
if mount --bind "$T/ro/journal.db" "$T/ro/journal.db" 2>"$T/mount.err"; then
	MOUNTS+=("$T/ro/journal.db")
	mount -o remount,ro,bind "$T/ro/journal.db" || fail "cannot make the journal read-only"
	refuses "$T/ro" "writable"
else
	log "SKIP read-only journal: cannot bind-mount here ($(cat "$T/mount.err"))"
fi

log "started_ms across a restart"
RELEASE=$T/release
CMD="read x; if [ \"\$x\" = 0 ]; then i=0; while [ ! -e '$RELEASE' ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done; fi; echo \$((x * x))"
start_master --state-dir "$T/state"
start_worker w --slots 2 --allow-exec
wait_workers 1
id=$(shoal submit --exec "$CMD" --range 0:2 --partitions 2)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
running() { [ "$(job_json "$id" | jq -r .state)" = running ]; }
wait_for 600 "job $id running" running
started=$(job_json "$id" | jq .started_ms)
[[ "$started" =~ ^[0-9]+$ ]] || fail "no started_ms while running: $(job_json "$id")"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
start_master --state-dir "$T/state"
after=$(job_json "$id" | jq .started_ms)
[ "$after" = "$started" ] || fail "started_ms was $started, after the restart $after"
touch "$RELEASE"
run_ok /dev/null wait "$id"
run_ok "$T/out" result "$id"
[ "$(cat "$T/out")" = "$(printf '0\n1')" ] || fail "result after the restart: $(cat "$T/out")"
after=$(job_json "$id" | jq .started_ms)
[ "$after" = "$started" ] || fail "started_ms was $started, once the resumed job ended $after"
log "ok: refused journals stop the master before it listens; started_ms survives a restart"
