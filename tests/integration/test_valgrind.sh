#!/usr/bin/env bash
# shoal-master and shoal-worker under valgrind's memcheck through a few real jobs (square over
# a range, wordcount of an uploaded file, a job whose tasks fail, a cancelled job), then a clean
# shutdown (SIGTERM): no memory errors and no definitely or indirectly lost blocks in either
# daemon. A second, smaller round does the same over TLS. Skipped in sanitizer builds
# (valgrind and ASan do not mix) and where valgrind is not installed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$SANITIZED" = 1 ]; then
	echo "sanitizer build: valgrind cannot run ASan binaries" >&2
	exit 77
fi
command -v valgrind >/dev/null || {
	echo "valgrind not installed (deploy/install-deps.sh installs it)" >&2
	exit 77
}

VG_STATUS=97
# vg_wrap NAME BIN: a script that runs BIN under memcheck (exec keeps the PID, so lib.sh's
# bookkeeping and signals reach the daemon); its report goes to $T/vg-NAME.PID.log.
vg_wrap() {
	cat >"$T/vg-$1" <<EOF
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect --error-exitcode=$VG_STATUS \\
	--track-fds=no --num-callers=30 --log-file="$T/vg-$1.%p.log" "$2" "\$@"
EOF
	chmod +x "$T/vg-$1"
}
vg_wrap master "$SHOAL_MASTER_BIN"
vg_wrap worker "$SHOAL_WORKER_BIN"
SHOAL_MASTER_BIN=$T/vg-master
SHOAL_WORKER_BIN=$T/vg-worker
# Everything is ~20x slower under memcheck.
export SHOAL_CMD_TIMEOUT=300

# wait_registered N: wait_workers with room for valgrind's start-up.
wait_registered() {
	local want=$1 n=
	for _ in $(seq 600); do
		n=$("$SHOAL_CLIENT_BIN" workers --json 2>/dev/null | jq length 2>/dev/null || echo -1)
		[ "$n" = "$want" ] && return 0
		sleep 0.1
	done
	fail "expected $want workers, master lists $n"
}

# stop_checked WHAT PID: SIGTERM, then the daemon must exit 0 with a clean memcheck report.
stop_checked() {
	local what=$1 pid=$2
	stop_pid "$pid" 60
	local report
	report=$(cat "$T"/vg-*."$pid".log 2>/dev/null || true)
	if [ "$STOP_RC" != 0 ] || [ -n "$report" ]; then
		echo "$report" | head -n 120 >&2
		[ "$STOP_RC" != "$VG_STATUS" ] || fail "$what: valgrind found errors or leaks (above)"
		[ "$STOP_RC" = 0 ] || fail "$what: exit status $STOP_RC after SIGTERM"
		fail "$what: valgrind reported problems (above)"
	fi
	log "$what (pid $pid): clean shutdown, no errors, no leaks"
}

refs text "$T/words.txt" 64
refs ref wordcount "$T/words.txt" >"$T/wordcount.ref"
refs ref square range:0:500 >"$T/square.ref"

# ---- plain TCP
start_master
start_worker a --slots 2
wait_registered 1

run_ok "$T/square.out" run --op square --range 0:500 --partitions 4 -q
same_files "$T/square.ref" "$T/square.out" "square under valgrind"
run_ok "$T/wordcount.out" run --op wordcount --input "$T/words.txt" --partitions 3 -q
same_files "$T/wordcount.ref" "$T/wordcount.out" "wordcount upload under valgrind"
# Words are not integers: every task fails, and so does the job.
expect_exit 1 shoal run --op sum --input "$T/words.txt" --partitions 2 --retries 1 -q
grep -q "not an integer" "$T/err" || fail "failing job: unexpected error: $(cat "$T/err")"
# A long job cancelled while it runs.
id=$(shoal submit --op sum --range 0:1000000000 --partitions 64)
[ -n "$id" ] || fail "submit printed no job id"
shoal cancel "$id" >/dev/null || fail "cancel $id failed"
stop_checked shoal-worker "${WORKER_PID[a]}"
stop_checked shoal-master "$MASTER_PID"

# ---- TLS (certificates made here; mutual TLS)
P=$T/pki
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=shoal valgrind CA" -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
for n in master worker client; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$n" \
		-keyout "$P/$n.key" -out "$P/$n.csr" 2>/dev/null
	echo "subjectAltName=IP:127.0.0.1" >"$P/$n.ext"
	openssl x509 -req -in "$P/$n.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$n.ext" -out "$P/$n.crt" 2>/dev/null
done
MASTER_PORT=
start_master --tls-cert "$P/master.crt" --tls-key "$P/master.key" --tls-ca "$P/ca.crt"
start_worker t --slots 2 --tls-ca "$P/ca.crt" --tls-cert "$P/worker.crt" --tls-key "$P/worker.key"
export SHOAL_TLS_CA=$P/ca.crt SHOAL_TLS_CERT=$P/client.crt SHOAL_TLS_KEY=$P/client.key
wait_registered 1
run_ok "$T/wordcount2.out" run --op wordcount --input "$T/words.txt" --partitions 3 -q
same_files "$T/wordcount.ref" "$T/wordcount2.out" "wordcount over TLS under valgrind"
# A refused handshake (no client certificate) on the way.
expect_exit 3 env -u SHOAL_TLS_CERT -u SHOAL_TLS_KEY "$SHOAL_CLIENT_BIN" workers
stop_checked "shoal-worker (TLS)" "${WORKER_PID[t]}"
stop_checked "shoal-master (TLS)" "$MASTER_PID"
