#!/usr/bin/env bash
# The man pages (doc/*.scd, rendered by scdoc at build time) and --help list the same long
# options, both ways, for each program, and shoal(1) and `shoal --help` the same commands: a
# flag or command added without its man page entry (or left in a page after it is gone) fails
# here, naming the file to edit.
source "$(dirname "$0")/lib.sh"

MAN_DIR=$SHOAL_BUILD/doc
if [ ! -f "$MAN_DIR/shoal.1" ]; then
	echo "SKIP: the man pages were not built (scdoc missing: apt-get install scdoc, or deploy/install-deps.sh)"
	exit 77
fi

# help_options BIN: the long options --help lists, one per line, sorted: the names at the
# start of each option line ("  --name ARG" or "  -x, --name ARG").
help_options() {
	"$1" --help | sed -nE 's/^  (-[A-Za-z], )?--([a-z0-9][a-z0-9-]*).*/\2/p' | sort -u
}

# man_options PAGE: the long options the page documents, sorted: the option entries are the
# lines that open an indented block (.RS) and start in bold with a dash, as scdoc renders
# "*--name* _ARG_" followed by a tab-indented description.
man_options() {
	awk 'prev ~ /^\\fB-/ && $0 ~ /^\.RS/ { print prev } { prev = $0 }' "$1" |
		grep -oE '\\fB--[a-z0-9][a-z0-9-]*\\fR' | sed -E 's/^\\fB--//; s/\\fR$//' | sort -u
}

checked=0
for pair in "shoal:$SHOAL_CLIENT_BIN:shoal.1" "shoal-master:$SHOAL_MASTER_BIN:shoal-master.8" \
	"shoal-worker:$SHOAL_WORKER_BIN:shoal-worker.8"; do
	IFS=: read -r prog bin page <<<"$pair"
	help_options "$bin" >"$T/$prog.help"
	man_options "$MAN_DIR/$page" >"$T/$prog.man"
	[ -s "$T/$prog.help" ] || fail "$prog --help lists no long options (format changed? see help_options)"
	[ -s "$T/$prog.man" ] || fail "$page documents no options (format changed? see man_options)"
	missing=$(comm -23 "$T/$prog.help" "$T/$prog.man" | sed 's/^/--/' | tr '\n' ' ')
	stale=$(comm -13 "$T/$prog.help" "$T/$prog.man" | sed 's/^/--/' | tr '\n' ' ')
	[ -z "$missing" ] ||
		fail "$prog --help has options its man page lacks: ${missing}(add an entry to doc/$page.scd)"
	[ -z "$stale" ] ||
		fail "doc/$page.scd documents options $prog --help does not list: ${stale}(remove them, or add them to the option table)"
	log "$prog: $(wc -l <"$T/$prog.help") long options, in --help and in $page"
	checked=$((checked + 1))
done
[ "$checked" = 3 ] || fail "checked $checked programs, expected 3"

# shoal's commands: the "Commands:" block of --help and the COMMANDS section of shoal(1).
# (--help goes to a file first: awk stops reading at the block's end, and a shoal still writing
# then gets EPIPE and exits 1, which pipefail would turn into a silent failure of this test.)
"$SHOAL_CLIENT_BIN" --help >"$T/shoal.help-text"
awk '/^Commands:/ { on = 1; next } on && /^$/ { exit }
	on && /^  [a-z]/ { print $1 }' "$T/shoal.help-text" | sort -u >"$T/commands.help"
awk '/^\.SH COMMANDS/ { on = 1; next } on && /^\.SH/ { exit }
	on && prev ~ /^\\fB[a-z]/ && $0 ~ /^\.RS/ { print prev } { prev = $0 }' "$MAN_DIR/shoal.1" |
	sed -E 's/^\\fB([a-z]+)\\fR.*/\1/' | sort -u >"$T/commands.man"
[ -s "$T/commands.help" ] || fail "shoal --help lists no commands (format changed? see this test)"
missing=$(comm -23 "$T/commands.help" "$T/commands.man" | tr '\n' ' ')
stale=$(comm -13 "$T/commands.help" "$T/commands.man" | tr '\n' ' ')
[ -z "$missing" ] || fail "shoal --help has commands shoal(1) lacks: ${missing}(add them to doc/shoal.1.scd, COMMANDS)"
[ -z "$stale" ] || fail "shoal(1) documents commands shoal --help does not list: ${stale}(add them to the usage in client/cli.c)"
log "shoal: $(wc -l <"$T/commands.help") commands, in --help and in shoal.1"
