#!/usr/bin/env bash
# The systemd units meson generates (deploy/*.service.in) pass `systemd-analyze verify`, with
# their ExecStart= pointed at this build's daemons and Documentation= at its man pages, and
# their Type= matches the daemons: notify when they link libsystemd (sd_notify), else simple.
source "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze is not installed (Debian package systemd)"; exit 77; }
UNITS=$SHOAL_BUILD/deploy
[ -f "$UNITS/shoal-master.service" ] || fail "$UNITS/shoal-master.service was not generated"

want=simple
case $(ldd "$SHOAL_MASTER_BIN" 2>/dev/null || true) in *libsystemd*) want=notify ;; esac

mkdir -p "$T/units" "$T/man/man1" "$T/man/man8"
cp "$SHOAL_BUILD"/doc/*.1 "$T/man/man1/" 2>/dev/null || true
cp "$SHOAL_BUILD"/doc/*.8 "$T/man/man8/" 2>/dev/null || true
for u in shoal-master.service shoal-worker.service shoal-worker@.service; do
	[ -f "$UNITS/$u" ] || fail "$UNITS/$u was not generated"
	grep -qx "Type=$want" "$UNITS/$u" || fail "$u: $(grep '^Type=' "$UNITS/$u"), expected Type=$want"
	# An instance of the template stands for it (verify wants a concrete unit).
	dst=$T/units/${u/@./@test.}
	sed -E "s#^ExecStart=[^ ]*/shoal-(master|worker) #ExecStart=$SHOAL_BUILD/\\1/shoal-\\1 #" \
		"$UNITS/$u" >"$dst"
done
cd "$T/units"
# Without the man pages built, Documentation= cannot be checked: verify says so, and fails.
if [ -f "$T/man/man8/shoal-master.8" ]; then man_ok=1; else man_ok=0; fi
out=$(MANPATH=$T/man SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ./*.service 2>&1) || rc=$?
if [ "${rc:-0}" != 0 ] || [ -n "$out" ]; then
	if [ $man_ok = 0 ] && ! grep -qv "Command 'man " <<<"$out"; then
		log "man pages not built: Documentation= not checked"
	else
		fail "systemd-analyze verify (exit ${rc:-0}): $out"
	fi
fi
log "systemd-analyze verify: $(ls | tr "\n" " ")clean, Type=$want"
