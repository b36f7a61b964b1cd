#!/usr/bin/env bash
# The master's HTTP endpoint (--http) while a job runs: the JSON API's shapes (workers, jobs,
# one job, 404s), /metrics in the Prometheus text format with the cluster's numbers, the
# dashboard page; then bad requests (wrong method, oversized target and headers, malformed,
# a body, more connections than it takes, a client that vanishes mid-request) each get a 4xx
# or a closed connection, and the master serves on and finishes the job.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: curl is not installed (deploy/install-deps.sh)"; exit 77; }

start_master
[ -n "$HTTP_PORT" ] || fail "the master did not log event=http_listening"
URL=http://127.0.0.1:$HTTP_PORT
start_worker w1 --slots 2 --allow-exec --cache-dir "$T/cache-1"
start_worker w2 --slots 2 --allow-exec --cache-dir "$T/cache-2"
wait_workers 2

# get PATH: the body; fails unless the status is 200.
get() {
	local code
	code=$(curl -s -m 20 -o "$T/body" -w '%{http_code}' "$URL$1") || fail "curl $1 failed"
	[ "$code" = 200 ] || fail "GET $1: HTTP $code: $(head -c 300 "$T/body")"
	cat "$T/body"
}
# status ARGS...: the HTTP status curl gets (000 when the connection closes without one).
status() { curl -s -m 20 -o "$T/body" -w '%{http_code}' "$@" || true; }

# A job that runs until the test says so: its 8 tasks wait (120 s at most) for the file $T/go.
id=$(shoal submit --exec "for i in \$(seq 1200); do [ -e '$T/go' ] && break; sleep 0.1; done; cat" \
	--range 0:800 --partitions 8 --name httpjob)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
job_running() { [ "$(get "/api/v1/jobs/$id" | jq -r .state)" = running ]; }
wait_for 300 "job $id running" job_running

log "workers"
get /api/v1/workers >"$T/workers.json"
jq -e 'type == "array" and length == 2' "$T/workers.json" >/dev/null || fail "workers: $(cat "$T/workers.json")"
[ "$(jq -r '[.[].name] | sort | join(",")' "$T/workers.json")" = "w1,w2" ] || fail "worker names: $(cat "$T/workers.json")"
jq -e 'all(.[]; (.worker_id | type) == "number" and .slots == 2 and (.running | type) == "number"
	and (.address | test("^127\\.0\\.0\\.1:[0-9]+$")) and .allow_exec == true
	and (.last_heartbeat_ms | type) == "number")' "$T/workers.json" >/dev/null ||
	fail "worker fields: $(cat "$T/workers.json")"
# The same fields as `shoal workers --json`.
[ "$(jq -c '.[0] | keys' "$T/workers.json")" = "$(shoal workers --json | jq -c '.[0] | keys')" ] ||
	fail "HTTP and CLI worker fields differ"

log "jobs"
get /api/v1/jobs >"$T/jobs.json"
jq -e --argjson id "$id" 'type == "array" and (map(select(.job_id == $id)) | length) == 1' "$T/jobs.json" >/dev/null ||
	fail "jobs: $(cat "$T/jobs.json")"
get "/api/v1/jobs/$id" >"$T/job.json"
jq -e --argjson id "$id" '.job_id == $id and .name == "httpjob" and .op == "exec" and .tasks_total == 8
	and .tasks_done <= 8 and (.submitted_ms | type) == "number" and .error == null' "$T/job.json" >/dev/null ||
	fail "job: $(cat "$T/job.json")"
[ "$(jq -c 'keys' "$T/job.json")" = "$(shoal status "$id" --json | jq -c 'keys')" ] ||
	fail "HTTP and CLI job fields differ"

log "404s"
for path in /api/v1/jobs/999 /api/v1/jobs/abc /api/v1/jobs/ /nope /api/v1; do
	[ "$(status "$URL$path")" = 404 ] || fail "GET $path: not 404"
	jq -e '.error | type == "string"' "$T/body" >/dev/null || fail "GET $path: no JSON error: $(cat "$T/body")"
done

log "metrics"
get /metrics >"$T/metrics"
# Every sample line: NAME{LABELS} VALUE; every family has HELP and TYPE lines.
bad=$(grep -v '^#' "$T/metrics" | grep -Ev '^[a-z_]+(\{[a-z_]+="[^"]*"\})? (-?[0-9.]+(e[+-]?[0-9]+)?|\+Inf)$' || true)
[ -z "$bad" ] || fail "metrics lines not in the text format: $bad"
for fam in shoal_workers shoal_slots shoal_tasks shoal_task_attempts_total shoal_task_duration_seconds \
	shoal_network_bytes_total shoal_jobs; do
	grep -q "^# TYPE $fam " "$T/metrics" || fail "metrics: no TYPE line for $fam"
	grep -q "^# HELP $fam " "$T/metrics" || fail "metrics: no HELP line for $fam"
done
metric() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics"; }
[ "$(metric shoal_workers)" = 2 ] || fail "shoal_workers $(metric shoal_workers)"
[ "$(metric 'shoal_slots{state="total"}')" = 4 ] || fail "total slots $(metric 'shoal_slots{state="total"}')"
[ "$(metric 'shoal_jobs{state="running"}')" = 1 ] || fail "running jobs $(metric 'shoal_jobs{state="running"}')"
[ "$(metric 'shoal_network_bytes_total{direction="in"}')" -gt 0 ] || fail "no bytes in"
# Histogram buckets are cumulative.
awk '/^shoal_task_duration_seconds_bucket/ { if ($2 < prev) exit 1; prev = $2 }' "$T/metrics" ||
	fail "histogram buckets decrease"

log "dashboard"
get / >"$T/index.html"
grep -q '<title>shoal</title>' "$T/index.html" || fail "/ is not the dashboard"
! grep -Eq '(src|href)="(https?:)?//' "$T/index.html" || fail "the dashboard loads external assets"
[ "$(curl -s -m 20 -o /dev/null -w '%{content_type}' "$URL/")" = "text/html; charset=utf-8" ] || fail "dashboard type"
[ "$(curl -s -m 20 -I -o /dev/null -w '%{http_code}' "$URL/metrics")" = 200 ] || fail "HEAD /metrics"

log "bad requests"
[ "$(status -X POST "$URL/api/v1/jobs")" = 405 ] || fail "POST not 405"
[ "$(status -X DELETE "$URL/api/v1/jobs/$id")" = 405 ] || fail "DELETE not 405"
[ "$(status "$URL/$(head -c 3000 /dev/zero | tr '\0' a)")" = 414 ] || fail "long target not 414"
[ "$(status -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' b)" "$URL/metrics")" = 431 ] || fail "big header not 431"
[ "$(status -H 'Content-Type: text/plain' --data-binary hello -X GET "$URL/metrics")" = 413 ] || fail "body not 413"
python3 - "$HTTP_PORT" <<'EOF' || fail "raw-socket checks failed"
import socket, sys, time
port = int(sys.argv[1])
def ask(data, half_close=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out
for junk in [b"garbage\r\n\r\n", b"GET /\x01 HTTP/1.1\r\n\r\n", b"\x00\x01\x02\xff" * 100,
             b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
             b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n"]:
    r = ask(junk)
    assert r.startswith(b"HTTP/1.1 400 "), (junk[:20], r[:80])
# Half a request, then the client goes away: no answer owed, nothing to crash.
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"GET /api/v1/jo")
    s.close()
# More connections at once than the master takes (64): the extra ones are closed unanswered;
# the others are still served.
held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(80)]
time.sleep(0.5)
served = 0
for s in held:
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        served += data.startswith(b"HTTP/1.1 200 ")
    except OSError:
        pass
    s.close()
assert 0 < served < 80, served
# Pipelined requests: the first is answered, then the connection closes.
r = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
assert r.count(b"HTTP/1.1 ") == 1, r[:100]
EOF

log "the master serves on and the job finishes"
get /metrics >/dev/null
touch "$T/go"
expect_exit 0 shoal wait "$id"
get "/api/v1/jobs/$id" | jq -e '.state == "succeeded" and .tasks_done == 8' >/dev/null || fail "job did not succeed"
get /metrics >"$T/metrics"
[ "$(metric 'shoal_jobs{state="succeeded"}')" = 1 ] || fail "succeeded jobs $(metric 'shoal_jobs{state="succeeded"}')"
[ "$(metric 'shoal_task_attempts_total{result="ok"}')" -ge 8 ] || fail "ok attempts $(metric 'shoal_task_attempts_total{result="ok"}')"
[ "$(metric shoal_task_duration_seconds_count)" -ge 8 ] || fail "histogram count"
alive "$MASTER_PID" || fail "the master died"

log "--http off"
stop_pid "$MASTER_PID"
[ "$STOP_RC" = 0 ] || fail "master exited $STOP_RC on SIGTERM"
"$SHOAL_MASTER_BIN" --http off --print-config | grep -qx 'http = off' || fail "--print-config: http = off"
expect_exit 2 "$SHOAL_MASTER_BIN" --http nowhere:port
grep -q -- "--http" "$T/err" || fail "bad --http: $(cat "$T/err")"

log "with a cluster secret: a bearer token (shoal token)"
printf 'the-cluster-secret-for-http-test\n' >"$T/secret"
chmod 600 "$T/secret"
MASTER_PORT=0 start_master --secret-file "$T/secret"
URL=http://127.0.0.1:$HTTP_PORT
tok=$(shoal token --secret-file "$T/secret")
[ "$(status "$URL/")" = 200 ] || fail "the page itself needs no token"
for path in /metrics /api/v1/workers /api/v1/jobs /api/v1/jobs/1; do
	[ "$(status "$URL$path")" = 401 ] || fail "GET $path without a token: not 401"
	grep -q "shoal token" "$T/body" || fail "401 does not say how to get a token: $(cat "$T/body")"
	[ "$(status -H "Authorization: Bearer ${tok%?}0" "$URL$path")" = 401 ] || fail "GET $path, wrong token: not 401"
	[ "$(status -H "Authorization: Basic $tok" "$URL$path")" = 401 ] || fail "GET $path, Basic: not 401"
	[ "$(status -H "Authorization: Bearer $tok" "$URL$path")" != 401 ] || fail "GET $path with the token: 401"
done
[ "$(status -H "Authorization: Bearer $tok" "$URL/metrics")" = 200 ] || fail "metrics with the token"
grep -q '^shoal_workers 0$' "$T/body" || fail "metrics with the token: $(head -5 "$T/body")"
! grep -q "the-cluster-secret" "$T/body" || fail "the secret appears in a response"
log "ok"
