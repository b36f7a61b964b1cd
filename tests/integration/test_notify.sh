#!/usr/bin/env bash
# sd_notify readiness (common/notify.c): with $NOTIFY_SOCKET set, as systemd sets it for a
# Type=notify unit, the master sends READY=1 once it listens, the worker READY=1 once it is
# registered (and a STATUS= line when it loses its master), and both STOPPING=1 on SIGTERM.
# A Python datagram socket stands in for systemd. Skips when shoal was built without libsystemd
# (the units are Type=simple then, and nothing is sent).
source "$(dirname "$0")/lib.sh"

case $(ldd "$SHOAL_MASTER_BIN" 2>/dev/null || true) in
*libsystemd*) ;;
*)
	echo "SKIP: shoal-master was built without libsystemd (-Dsystemd), so it sends no sd_notify messages"
	exit 77
	;;
esac

# listen SOCKET OUT: receives datagrams on the Unix socket SOCKET and appends each to OUT, one
# message per line (the fields of a message joined by '|'), until killed.
listen() {
	python3 - "$1" "$2" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    print("bound", file=f)
    while True:
        msg = s.recv(4096).decode()
        print(msg.replace("\n", "|"), file=f)
PY
	PIDS+=("$!")
	wait_for 100 "notify listener on $1" grep -qx bound "$2"
}

has() { grep -q -- "$2" "$1"; }

listen "$T/master.sock" "$T/master.notify"
NOTIFY_SOCKET=$T/master.sock start_master
wait_for 100 "master READY=1" has "$T/master.notify" "READY=1|STATUS=listening on 127.0.0.1:$MASTER_PORT"
log "master: $(tail -n 1 "$T/master.notify")"

listen "$T/worker.sock" "$T/worker.notify"
NOTIFY_SOCKET=$T/worker.sock start_worker w1 --slots 1
wait_workers 1
wait_for 100 "worker READY=1" has "$T/worker.notify" "READY=1|STATUS=registered with 127.0.0.1:$MASTER_PORT as worker"
log "worker: $(tail -n 1 "$T/worker.notify")"

# The worker is still useful after telling systemd it is ready.
run_ok "$T/out" run --op sum --range 0:1000
[ "$(cat "$T/out")" = 499500 ] || fail "sum: got '$(cat "$T/out")'"

# Master stops: STOPPING=1 from it; the worker says it lost the master (and keeps running).
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
wait_for 100 "master STOPPING=1" has "$T/master.notify" "^STOPPING=1$"
wait_for 100 "worker status after losing the master" has "$T/worker.notify" "STATUS=lost the master; reconnecting"
alive "${WORKER_PID[w1]}" || fail "the worker exited when its master stopped"

stop_pid "${WORKER_PID[w1]}"
[ "$STOP_RC" = 0 ] || fail "worker exited $STOP_RC on SIGTERM"
wait_for 100 "worker STOPPING=1" has "$T/worker.notify" "^STOPPING=1$"
log "notify: master and worker sent READY=1, STATUS= and STOPPING=1"
