#!/usr/bin/env bash
# TLS: certificates made at run time with the openssl CLI (a CA; a master certificate for
# 127.0.0.1; worker and client certificates; a second, untrusted CA and a certificate from it).
# A mutual-TLS cluster runs jobs (square, a 20 MB upload) with the same results as plain; a
# client or worker with an untrusted certificate, or none, is refused and the master logs the
# peer; a plain client to the TLS master, a TLS client to a plain master, a client that does
# not trust the master and bad certificate files all fail with messages saying what to fix.
# A worker whose TLS setting does not match the master's (TLS to a plain master, plain to a
# TLS one) exits 1 saying what to change, instead of retrying forever; a TLS worker that
# cannot reach its master (nothing listening yet) keeps retrying and registers once it is up.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || {
	echo "openssl CLI not installed (deploy/install-deps.sh installs it)" >&2
	exit 77
}

# worker_gives_up NAME STATUS: the worker exits by itself (bounded wait) with STATUS.
worker_gives_up() {
	local pid=${WORKER_PID[$1]} st=0
	daemon_killed "$pid"
	wait_for 300 "worker $1 to give up" bash -c '! kill -0 "$1" 2>/dev/null' _ "$pid"
	wait "$pid" 2>/dev/null || st=$?
	[ "$st" = "$2" ] || fail "worker $1 exited $st, expected $2: $(tail -n 5 "$T/worker-$1.log")"
	! grep -q "retrying with backoff" "$T/worker-$1.log" ||
		fail "worker $1 treated a TLS mismatch as worth retrying: $(cat "$T/worker-$1.log")"
}

# ---- certificates
P=$T/pki
mkdir -p "$P"
# mkca NAME: a self-signed CA in P/NAME.{crt,key}.
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=shoal test $1" -keyout "$P/$1.key" -out "$P/$1.crt" 2>/dev/null
}
# mkcert NAME CA [SAN]: a certificate signed by CA in P/NAME.{crt,key}.
mkcert() {
	local name=$1 ca=$2 san=${3:-}
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=$name" -keyout "$P/$name.key" -out "$P/$name.csr" 2>/dev/null
	if [ -n "$san" ]; then
		printf 'subjectAltName=%s\n' "$san" >"$P/$name.ext"
	else
		: >"$P/$name.ext"
	fi
	openssl x509 -req -in "$P/$name.csr" -CA "$P/$ca.crt" -CAkey "$P/$ca.key" \
		-CAcreateserial -days 2 -extfile "$P/$name.ext" -out "$P/$name.crt" 2>/dev/null
}
mkca ca
mkca rogue
mkcert master ca "IP:127.0.0.1"
mkcert worker ca
mkcert client ca
mkcert intruder rogue
mkcert elsewhere ca "DNS:elsewhere.example"
chmod 600 "$P"/*.key

refs ref square range:0:2000 >"$T/square.ref"
head -c 20000000 /dev/urandom | base64 -w 76 >"$T/up.txt"
wc -l <"$T/up.txt" >"$T/count.ref"

# ---- a plain cluster gives the reference results
start_master
start_worker p --slots 2
wait_workers 1
run_ok "$T/plain_square" run --op square --range 0:2000 -q
same_files "$T/square.ref" "$T/plain_square" "square over plain TCP"
run_ok "$T/plain_count" run --op count --input "$T/up.txt" --partitions 8 -q
same_files "$T/count.ref" "$T/plain_count" "count over plain TCP"

# A TLS client to the plain master: refused clearly, no hang.
expect_exit 3 shoal --tls-ca "$P/ca.crt" workers
grep -q "TLS" "$T/err" || fail "TLS client to plain master: no TLS hint: $(cat "$T/err")"
grep -q -- "--tls-cert" "$T/err" || fail "TLS client to plain master: no fix named: $(cat "$T/err")"
wait_for 50 "the plain master logs a TLS handshake" \
	grep -q "started a TLS handshake, but TLS is not configured" "$T/master.log"

# A TLS worker to the plain master: exits 1 naming both ways out.
start_worker tlsw --slots 1 --tls-ca "$P/ca.crt" --tls-cert "$P/worker.crt" --tls-key "$P/worker.key"
worker_gives_up tlsw 1
grep -q "does not serve TLS" "$T/worker-tlsw.log" || fail "TLS worker to plain master: $(cat "$T/worker-tlsw.log")"
grep -q -- "--tls-cert and --tls-key, or drop --tls-ca" "$T/worker-tlsw.log" ||
	fail "TLS worker to plain master: no fix named: $(cat "$T/worker-tlsw.log")"
[ "$(shoal workers --json | jq length)" = 1 ] || fail "the plain master lists the TLS worker"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "plain master exited $STOP_RC on SIGTERM"
stop_pid "${WORKER_PID[p]}"

# ---- bad files: exit 2 with the file and the problem named
expect_exit 2 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --state-dir "$T/bad" \
	--tls-cert "$P/missing.crt" --tls-key "$P/master.key"
grep -q "missing.crt: cannot read" "$T/err" || fail "missing cert: $(cat "$T/err")"
expect_exit 2 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --state-dir "$T/bad" \
	--tls-cert "$P/master.crt" --tls-key "$P/worker.key"
grep -q "does not belong to the certificate" "$T/err" || fail "key mismatch: $(cat "$T/err")"
expect_exit 2 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --state-dir "$T/bad" \
	--tls-cert "$P/master.key" --tls-key "$P/master.key"
grep -q "not a usable PEM certificate" "$T/err" || fail "key as cert: $(cat "$T/err")"
expect_exit 2 "$SHOAL_MASTER_BIN" --listen 127.0.0.1:0 --state-dir "$T/bad" --tls-ca "$P/ca.crt"
grep -q -- "--tls-ca needs --tls-cert and --tls-key" "$T/err" || fail "ca alone: $(cat "$T/err")"
expect_exit 2 "$SHOAL_WORKER_BIN" --master 127.0.0.1:1 --tls-cert "$P/worker.crt" \
	--tls-key "$P/worker.key"
grep -q -- "need --tls-ca" "$T/err" || fail "worker cert without ca: $(cat "$T/err")"
expect_exit 2 shoal --master 127.0.0.1:1 --tls-ca "$P/nonexistent.crt" workers
grep -q "nonexistent.crt: cannot read" "$T/err" || fail "client missing ca: $(cat "$T/err")"

# ---- a mutual-TLS cluster
start_master --tls-cert "$P/master.crt" --tls-key "$P/master.key" --tls-ca "$P/ca.crt"
grep -q "event=tls" "$T/master.log" || fail "master does not log TLS"
start_worker a --slots 2 --tls-ca "$P/ca.crt" --tls-cert "$P/worker.crt" --tls-key "$P/worker.key"
start_worker b --slots 2 --tls-ca "$P/ca.crt" --tls-cert "$P/worker.crt" --tls-key "$P/worker.key"
export SHOAL_TLS_CA=$P/ca.crt SHOAL_TLS_CERT=$P/client.crt SHOAL_TLS_KEY=$P/client.key
wait_workers 2

run_ok "$T/tls_square" run --op square --range 0:2000 -q
same_files "$T/plain_square" "$T/tls_square" "square over TLS"
run_ok "$T/tls_count" run --op count --input "$T/up.txt" --partitions 8 -q
same_files "$T/plain_count" "$T/tls_count" "count of a 20 MB upload over TLS"
# Flags win over the environment.
run_ok "$T/tls_square2" --tls-ca "$P/ca.crt" --tls-cert "$P/client.crt" \
	--tls-key "$P/client.key" run --op square --range 0:2000 -q
same_files "$T/plain_square" "$T/tls_square2" "square over TLS (flags)"

# One process that connects 40 times from 4 threads loads its TLS configuration once. Once
# its certificate and key files change, the next connect reads them again (here a
# certificate the master does not trust: refused), and again once they are restored.
cp "$P/client.crt" "$P/rot.crt"
cp "$P/client.key" "$P/rot.key"
coproc CONNECTS {
	SHOAL_LOG_LEVEL=debug SHOAL_TLS_CERT=$P/rot.crt SHOAL_TLS_KEY=$P/rot.key \
		timeout -k 5 300 "$SHOAL_CONNECTS_BIN" 2>"$T/connects.log"
}
# Bash unsets CONNECTS_PID once it reaps the coprocess, which may be before the wait below.
connects_pid=$CONNECTS_PID
PIDS+=("$connects_pid")
# connects THREADS N: sets CONNECTS_REPLY to the helper's answer.
connects() {
	echo "connect $1 $2" >&"${CONNECTS[1]}"
	CONNECTS_REPLY=
	IFS= read -r -t 240 CONNECTS_REPLY <&"${CONNECTS[0]}" || fail "connects: no answer to $1 x $2"
}
loads() { grep -c "event=tls_config_loaded" "$T/connects.log" || true; }
connects 4 10
[ "$CONNECTS_REPLY" = ok ] || fail "40 TLS connects from 4 threads: $CONNECTS_REPLY"
[ "$(loads)" = 1 ] || fail "40 connects loaded the TLS files $(loads) times, expected once"
cp "$P/intruder.crt" "$P/rot.crt"
cp "$P/intruder.key" "$P/rot.key"
connects 1 1
case $CONNECTS_REPLY in "fail 1 "*TLS*) ;; *) fail "a connect with the replaced certificate: $CONNECTS_REPLY" ;; esac
[ "$(loads)" = 2 ] || fail "replaced files: loaded $(loads) times in all, expected 2"
cp "$P/client.crt" "$P/rot.crt"
cp "$P/client.key" "$P/rot.key"
connects 2 3
[ "$CONNECTS_REPLY" = ok ] || fail "TLS connects after restoring the files: $CONNECTS_REPLY"
[ "$(loads)" = 3 ] || fail "restored files: loaded $(loads) times in all, expected 3"
eval "exec ${CONNECTS[1]}>&-"
wait "$connects_pid" || fail "the connects helper exited $?: $(tail -n 5 "$T/connects.log")"

# A client whose certificate comes from an untrusted CA: exit 3, and the master logs the peer.
expect_exit 3 shoal --tls-cert "$P/intruder.crt" --tls-key "$P/intruder.key" workers
grep -q "TLS" "$T/err" || fail "untrusted client cert: $(cat "$T/err")"
grep -q -- "--tls-cert" "$T/err" || fail "untrusted client cert: no fix named: $(cat "$T/err")"
wait_for 50 "the master logs the untrusted certificate with the peer address" \
	grep -qE "peer=127\.0\.0\.1:[0-9]+ closing: TLS: the peer's certificate is not trusted" \
	"$T/master.log"

# A client without a certificate: refused too.
env -u SHOAL_TLS_CERT -u SHOAL_TLS_KEY "$SHOAL_CLIENT_BIN" workers >"$T/out" 2>"$T/err" &&
	fail "a client without a certificate was served"
grep -q "TLS" "$T/err" || fail "client without cert: $(cat "$T/err")"
wait_for 50 "the master logs a peer without a certificate" \
	grep -q "presented no certificate" "$T/master.log"

# A client that does not trust the master's CA: exit 3 naming --tls-ca.
expect_exit 3 shoal --tls-ca "$P/rogue.crt" workers
grep -q "master's certificate is not trusted" "$T/err" || fail "untrusted master: $(cat "$T/err")"
grep -q -- "--tls-ca" "$T/err" || fail "untrusted master: no fix named: $(cat "$T/err")"

# A plain client to the TLS master: exit 3 with the reason, no hang.
expect_exit 3 env -u SHOAL_TLS_CA -u SHOAL_TLS_CERT -u SHOAL_TLS_KEY "$SHOAL_CLIENT_BIN" workers
grep -q "serves TLS only" "$T/err" || fail "plain client to TLS master: $(cat "$T/err")"

# A plain worker to the TLS master: exits 1 naming what to give it.
SHOAL_TLS_CA='' SHOAL_TLS_CERT='' SHOAL_TLS_KEY='' start_worker plainw --slots 1
worker_gives_up plainw 1
grep -q "serves TLS only" "$T/worker-plainw.log" || fail "plain worker to TLS master: $(cat "$T/worker-plainw.log")"
grep -q -- "--tls-ca" "$T/worker-plainw.log" || fail "plain worker to TLS master: no fix named: $(cat "$T/worker-plainw.log")"

# A worker with an untrusted certificate never registers; the master logs why.
start_worker intruder --slots 1 --tls-ca "$P/ca.crt" --tls-cert "$P/intruder.crt" \
	--tls-key "$P/intruder.key"
wait_for 100 "the intruding worker's refusal in its log" \
	grep -q "master refused the handshake" "$T/worker-intruder.log"
[ "$(shoal workers --json | jq length)" = 2 ] || fail "the untrusted worker registered"
stop_pid "${WORKER_PID[intruder]}"

# No master listening is a network failure, not a mismatch: a TLS worker keeps retrying,
# and registers (with a and b) once the TLS master is back on its port.
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "TLS master exited $STOP_RC on SIGTERM"
start_worker late --slots 1 --tls-ca "$P/ca.crt" --tls-cert "$P/worker.crt" --tls-key "$P/worker.key"
wait_for 300 "the late worker's failed first attempt" \
	grep -q "event=register_failed" "$T/worker-late.log"
start_master --tls-cert "$P/master.crt" --tls-key "$P/master.key" --tls-ca "$P/ca.crt"
wait_for 300 "a, b and the late worker to register" \
	bash -c '[ "$("$1" workers --json 2>/dev/null | jq length)" = 3 ]' _ "$SHOAL_CLIENT_BIN"
alive "${WORKER_PID[late]}" || fail "the late worker exited: $(cat "$T/worker-late.log")"

# A master certificate that does not list 127.0.0.1: the client refuses it.
MP=$MASTER_PORT
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "TLS master exited $STOP_RC on SIGTERM"
MASTER_PORT=
start_master --tls-cert "$P/elsewhere.crt" --tls-key "$P/elsewhere.key"
expect_exit 3 shoal workers
grep -q "master's certificate is not trusted" "$T/err" || fail "wrong host: $(cat "$T/err")"
log "TLS checks passed (first master port $MP)"
