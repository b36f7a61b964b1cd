#!/usr/bin/env bash
# Config files (--config, SHOAL_CONFIG) and SHOAL_<OPTION> variables on the real programs:
# precedence flags > environment > file > defaults (seen through --print-config); a worker and
# a client configured by a file alone join and list a real master; unknown keys, bad values
# and missing files are refused with the file, the line and the reason; --print-config shows
# every option and reads back as the same configuration.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
unset SHOAL_MASTER SHOAL_CONFIG SHOAL_SECRET_FILE

M=$SHOAL_MASTER_BIN
W=$SHOAL_WORKER_BIN
C=$SHOAL_CLIENT_BIN

log "precedence"
cat >"$T/shoal.conf" <<EOF
# a cluster's settings
[cluster]
log-level = warn

[master]
retries = 7
policy = sjf
aging = 2.5
allow-exec = yes

[worker]
slots = 5
name = "from the file"
EOF
"$M" --config "$T/shoal.conf" --print-config >"$T/m.conf"
grep -qx 'retries = 7' "$T/m.conf" || fail "file: $(cat "$T/m.conf")"
grep -qx 'policy = sjf' "$T/m.conf" || fail "file policy"
grep -qx 'allow-exec = true' "$T/m.conf" || fail "file switch"
grep -qx 'log-level = warn' "$T/m.conf" || fail "[cluster] log-level"
SHOAL_RETRIES=9 "$M" --config "$T/shoal.conf" --print-config | grep -qx 'retries = 9' || fail "env over file"
SHOAL_RETRIES=9 "$M" --config "$T/shoal.conf" --retries 11 --print-config | grep -qx 'retries = 11' ||
	fail "flag over env"
SHOAL_ALLOW_EXEC=false "$M" --config "$T/shoal.conf" --print-config | grep -qx 'allow-exec = false' ||
	fail "env switch off over file"
SHOAL_CONFIG=$T/shoal.conf "$M" --print-config | grep -qx 'retries = 7' || fail "SHOAL_CONFIG"
"$W" --config "$T/shoal.conf" --print-config >"$T/w.conf"
grep -qx 'slots = 5' "$T/w.conf" || fail "worker file: $(cat "$T/w.conf")"
grep -qx 'name = from the file' "$T/w.conf" || fail "worker name"
SHOAL_SLOTS=3 "$W" --config "$T/shoal.conf" --print-config | grep -qx 'slots = 3' || fail "worker env"

log "every option is shown, and the output reads back the same"
for bin in "$M" "$W"; do
	"$bin" --config "$T/shoal.conf" --print-config >"$T/p1.conf"
	for opt in $("$bin" --help | sed -nE 's/^  (-[A-Za-z], )?--([a-z0-9][a-z0-9-]*).*/\2/p'); do
		case $opt in config | print-config | help | version) continue ;; esac
		grep -Eq "^(# )?$opt = " "$T/p1.conf" || fail "$(basename "$bin") --print-config does not show $opt"
	done
	"$bin" --config "$T/p1.conf" --print-config >"$T/p2.conf" || fail "$(basename "$bin") cannot read its own --print-config"
	cmp -s "$T/p1.conf" "$T/p2.conf" || fail "$(basename "$bin"): --print-config does not read back the same: $(diff "$T/p1.conf" "$T/p2.conf")"
done

log "a worker and a client configured by files alone"
start_master
unset SHOAL_MASTER
cat >"$T/node.conf" <<EOF
[cluster]
master = 127.0.0.1:$MASTER_PORT
[worker]
slots = 3
name = cfgworker
cache-dir = $T/cache
[client]
json = true
EOF
"$W" --config "$T/node.conf" 2>>"$T/worker-cfg.log" &
PIDS+=("$!")
DAEMON[$!]="shoal-worker cfgworker"
listed() { [ "$("$C" --config "$T/node.conf" workers | jq -r '.[0].name + " " + (.[0].slots | tostring)')" = "cfgworker 3" ]; }
wait_for 300 "the file-configured worker listed by the file-configured client" listed
SHOAL_CONFIG=$T/node.conf "$C" jobs | jq -e 'type == "array"' >/dev/null || fail "client with SHOAL_CONFIG"
# The environment beats the file: a wrong SHOAL_MASTER is used (and fails).
expect_exit 3 env SHOAL_MASTER=127.0.0.1:1 "$C" --config "$T/node.conf" workers

log "errors name the file, the line and the reason"
bad() { # bad PROG TEXT EXPECTED-STDERR-REGEX
	printf '%b' "$2" >"$T/bad.conf"
	local what=--print-config
	[ "$1" != "$C" ] || what=workers # the client has no --print-config
	expect_exit 2 "$1" --config "$T/bad.conf" "$what"
	grep -Eq "$3" "$T/err" || fail "$(basename "$1") with '$2': stderr: $(cat "$T/err")"
}
bad "$M" '[master]\nretries = 3\nretrys = 4\n' "bad.conf:3: unknown key 'retrys' in \[master\] \(known: listen, "
bad "$M" '[master]\nretries = many\n' "bad.conf:2: --retries: 'many' is not a number"
bad "$M" '[master]\nallow-exec = sometimes\n' "bad.conf:2: 'allow-exec' is a switch: give true or false"
bad "$M" '[mastr]\nretries = 3\n' "bad.conf:2: unknown section \[mastr\]"
bad "$M" '[master]\nnot a setting\n' "bad.conf:2: syntax error"
bad "$W" '[worker]\nslots = 0\n' "bad.conf:2: invalid --slots '0'"
bad "$W" '[cluster]\nslots = 2\n' "bad.conf:2: unknown key 'slots' in \[cluster\]"
bad "$C" '[client]\nop = square\n' "bad.conf:2: unknown key 'op' in \[client\] \(known: master, "
expect_exit 2 "$M" --config "$T/missing.conf"
grep -q "missing.conf: cannot open: No such file" "$T/err" || fail "missing file: $(cat "$T/err")"
expect_exit 2 env SHOAL_HEARTBEAT_TIMEOUT=0 "$M" --print-config
grep -q "SHOAL_HEARTBEAT_TIMEOUT: --heartbeat-timeout" "$T/err" || fail "bad env: $(cat "$T/err")"
log "ok"
