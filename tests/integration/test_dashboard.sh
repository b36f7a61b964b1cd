#!/usr/bin/env bash
# The master's dashboard in a real browser (headless Chromium) while a job runs: the page's
# script fetches the API and the DOM then lists both workers with their load and the job with
# its state and progress; a screenshot is taken. Then, on a master with a cluster secret, the
# page given the token in its URL fragment (#token=...) shows the workers too, and without it
# asks for one.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
	echo "SKIP: chromium is not installed (apt-get install chromium, or deploy/install-deps.sh)"
	exit 77
fi

# dump URL OUT: the DOM after the page's scripts ran (Chromium's virtual time: its timers run
# without waiting; fetches are real).
dump() {
	local profile
	profile=$(mktemp -d "$T/chromium.XXXXXX")
	timeout -k 5 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --virtual-time-budget=5000 --dump-dom "$1" >"$2" 2>>"$T/chromium.log" ||
		fail "chromium --dump-dom $1 exited $? (see chromium.log): $(tail -5 "$T/chromium.log")"
}

start_master
start_worker dash-w1 --slots 2 --allow-exec --cache-dir "$T/cache-1"
start_worker dash-w2 --slots 2 --allow-exec --cache-dir "$T/cache-2"
wait_workers 2
URL=http://127.0.0.1:$HTTP_PORT

# A job that runs until the test says so (its tasks wait at most 120 s for $T/go).
id=$(shoal submit --exec "for i in \$(seq 1200); do [ -e '$T/go' ] && break; sleep 0.1; done; cat" \
	--range 0:40 --partitions 4 --name dashjob)
[[ "$id" =~ ^[0-9]+$ ]] || fail "submit printed '$id'"
job_running() { [ "$(shoal status "$id" --json | jq -r .state)" = running ]; }
wait_for 300 "job $id running" job_running

log "the dashboard in headless Chromium"
dump "$URL/" "$T/dom.html"
# Table rows as text: "<td>dash-w1</td>"; the job's row has its id, name, op and state.
for w in dash-w1 dash-w2; do
	grep -q "<td>$w</td>" "$T/dom.html" || fail "worker $w not in the DOM: $(grep -o '<tbody>.*</tbody>' "$T/dom.html" | head -c 2000)"
done
grep -q '<td>dashjob</td><td>exec</td><td class="state-running">running</td>' "$T/dom.html" ||
	fail "running job not in the DOM: $(grep -o '<table id="jobs">.*</table>' "$T/dom.html" | head -c 2000)"
grep -Eq '<em>[0-9]+/4</em>' "$T/dom.html" || fail "no progress bar for the job's 4 tasks"
grep -Eq '<em>[0-9]+/2</em>' "$T/dom.html" || fail "no load bar for a worker's 2 slots"
grep -q 'id="s-workers">2<' "$T/dom.html" || fail "header does not count 2 workers"
grep -q 'updated ' "$T/dom.html" || fail "the page did not report a refresh: $(grep -o '<span id="status"[^<]*' "$T/dom.html")"
grep -Eq '<polyline id="rate-line"[^>]*points="[0-9]' "$T/dom.html" || fail "no task-rate chart points"

log "screenshot"
profile=$(mktemp -d "$T/chromium.XXXXXX")
(cd "$T" && timeout -k 5 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
	--virtual-time-budget=5000 --window-size=1280,900 --screenshot="$T/dashboard.png" "$URL/" \
	>>"$T/chromium.log" 2>&1) || fail "chromium --screenshot exited $?"
[ "$(stat -c %s "$T/dashboard.png" 2>/dev/null || echo 0)" -gt 10000 ] || fail "screenshot missing or tiny"
[ "$(head -c 8 "$T/dashboard.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "screenshot is not a PNG"
[ -z "${SHOAL_DASHBOARD_PNG:-}" ] || cp "$T/dashboard.png" "$SHOAL_DASHBOARD_PNG"
touch "$T/go"
expect_exit 0 shoal wait "$id"

log "with a cluster secret: the token in the URL fragment"
stop_pid "$MASTER_PID"
printf 'dashboard-test-cluster-secret-0123\n' >"$T/secret"
chmod 600 "$T/secret"
MASTER_PORT=0 start_master --secret-file "$T/secret"
start_worker dash-w3 --slots 1 --secret-file "$T/secret" --cache-dir "$T/cache-3"
wait_for 300 "worker dash-w3 registered" grep -q 'name=dash-w3' "$T/master.log"
tok=$(shoal token --secret-file "$T/secret")
dump "http://127.0.0.1:$HTTP_PORT/#token=$tok" "$T/dom-token.html"
grep -q '<td>dash-w3</td>' "$T/dom-token.html" || fail "with the token: worker not shown"
dump "http://127.0.0.1:$HTTP_PORT/" "$T/dom-none.html"
! grep -q '<td>dash-w3</td>' "$T/dom-none.html" || fail "without a token: workers shown"
grep -q 'token needed' "$T/dom-none.html" || fail "without a token: the page does not ask for one"
log "ok"
