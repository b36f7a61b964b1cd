# shellcheck shell=bash
# netns.sh: network namespaces for integration tests that need more than loopback (several
# "hosts", a cut network). Source it after lib.sh. Everything it makes lives inside namespaces
# of its own, named after the test's PID (shoalPID-NAME); the host's own network namespace is
# never touched (veth pairs are created inside a namespace with their peer placed straight in
# another; a bridge lives in a "hub" namespace of its own). At exit every namespace it created
# is deleted, which also removes their interfaces, bridges and addresses; processes still
# inside (lib.sh stops them right after) keep theirs until they exit.
#
#   netns_require                  skip the test (exit 77) where namespaces cannot be made
#   netns_add NAME                 a namespace with its loopback up
#   netns_link A IFA ADDR_A B IFB ADDR_B   a veth pair between A and B, addresses CIDR
#   netns_hub HUB                  a namespace holding a bridge br0
#   netns_attach HUB NODE ADDR     NODE's eth0 plugged into HUB's bridge, ADDR in CIDR
#   netns_cut NODE IF / netns_heal NODE IF   take a link down / up inside NODE
#   netns_exec NAME CMD...         run CMD inside namespace NAME
#   netns_start_master NODE ADDR [ARGS...]   shoal-master in NODE listening on ADDR:0
#   netns_start_worker NODE NAME [ARGS...]   shoal-worker in NODE with hostname node-NAME
#   netns_client NODE              `shoal` (and run_ok, expect_exit, job_json, wait_workers)
#                                  run inside NODE from now on

NETNS_PREFIX="shoal$$"
NETNS_MADE=()
NETNS_CLIENT_NS=
# A master that refuses to listen beyond loopback without a secret accepts --insecure; these
# tests' networks exist only inside their own namespaces.
NETNS_MASTER_ARGS=()
if "$SHOAL_MASTER_BIN" --help 2>/dev/null | grep -q -- '--insecure'; then
	NETNS_MASTER_ARGS=(--insecure)
fi

netns_name() { echo "$NETNS_PREFIX-$1"; }

netns_require() {
	local probe
	probe=$(netns_name probe)
	if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null ||
		! ip netns add "$probe" 2>/dev/null; then
		echo "SKIP: cannot create network namespaces here (needs root, iproute2's 'ip netns' and util-linux's unshare)" >&2
		exit 77
	fi
	ip netns del "$probe"
}

netns_cleanup() {
	local ns
	for ns in "${NETNS_MADE[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	NETNS_MADE=()
}

# Chains onto lib.sh's exit handler: namespaces go first, then lib.sh's cleanup (which reads
# the exit status from $?, hence the `(exit "$rc")`).
netns__on_exit() {
	local rc=$?
	set +e
	netns_cleanup
	(exit "$rc")
	cleanup
}
trap netns__on_exit EXIT

netns_add() {
	local ns
	ns=$(netns_name "$1")
	ip netns add "$ns" || fail "cannot create network namespace $ns"
	NETNS_MADE+=("$ns")
	ip -n "$ns" link set lo up
}

netns_exec() {
	local ns
	ns=$(netns_name "$1")
	shift
	ip netns exec "$ns" "$@"
}

netns_link() {
	local a b
	a=$(netns_name "$1")
	b=$(netns_name "$4")
	ip -n "$a" link add "$2" type veth peer name "$5" netns "$b" ||
		fail "cannot create a veth pair between $a and $b"
	ip -n "$a" addr add "$3" dev "$2"
	ip -n "$b" addr add "$6" dev "$5"
	ip -n "$a" link set "$2" up
	ip -n "$b" link set "$5" up
}

netns_hub() {
	netns_add "$1"
	local hub
	hub=$(netns_name "$1")
	ip -n "$hub" link add br0 type bridge || fail "cannot create a bridge in $hub"
	ip -n "$hub" link set br0 up
}

netns_attach() {
	local hub node port
	hub=$(netns_name "$1")
	node=$(netns_name "$2")
	port="p-$2"
	ip -n "$node" link add eth0 type veth peer name "$port" netns "$hub" ||
		fail "cannot plug $node into $hub"
	ip -n "$hub" link set "$port" master br0
	ip -n "$hub" link set "$port" up
	ip -n "$node" addr add "$3" dev eth0
	ip -n "$node" link set eth0 up
}

netns_cut() { ip -n "$(netns_name "$1")" link set "$2" down; }
netns_heal() { ip -n "$(netns_name "$1")" link set "$2" up; }

netns_start_master() {
	local node=$1 addr=$2 logf=$T/master.log port=
	shift 2
	: >"$logf"
	# Not through netns_exec: a function run in the background is a subshell, and $! must be
	# the daemon's own PID.
	ip netns exec "$(netns_name "$node")" "$SHOAL_MASTER_BIN" --listen "$addr:${MASTER_PORT:-0}" \
		--state-dir "$T/state" "${NETNS_MASTER_ARGS[@]}" "$@" 2>>"$logf" &
	MASTER_PID=$!
	PIDS+=("$MASTER_PID")
	# shellcheck disable=SC2004 # DAEMON is associative (lib.sh)
	DAEMON[$MASTER_PID]=shoal-master
	for _ in $(seq 200); do
		port=$(sed -n "s/.*event=listening address=$addr:\([0-9]*\).*/\1/p" "$logf" | tail -n 1)
		[ -n "$port" ] && break
		alive "$MASTER_PID" || fail "master exited at start: $(cat "$logf")"
		sleep 0.05
	done
	[ -n "$port" ] || fail "master did not report its port"
	MASTER_PORT=$port
	export SHOAL_MASTER=$addr:$MASTER_PORT
}

# The worker gets a UTS namespace of its own named node-NAME, as on a host of its own; its PID
# stays the worker's (ip, unshare and sh each exec the next).
netns_start_worker() {
	local node=$1 name=$2
	shift 2
	# shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
	ip netns exec "$(netns_name "$node")" unshare --uts sh -c 'hostname "$0" && exec "$@"' "node-$name" \
		"$SHOAL_WORKER_BIN" --master "$SHOAL_MASTER" --name "$name" "$@" \
		2>>"$T/worker-$name.log" &
	# shellcheck disable=SC2034,SC2004 # lib.sh's tables (associative)
	WORKER_PID[$name]=$!
	PIDS+=("$!")
	# shellcheck disable=SC2034
	DAEMON[$!]="shoal-worker $name"
}

netns_client() { NETNS_CLIENT_NS=$(netns_name "$1"); }

# lib.sh's client helpers, run inside the client's namespace once netns_client is set.
shoal() {
	if [ -n "$NETNS_CLIENT_NS" ]; then
		timeout -k 5 "${SHOAL_CMD_TIMEOUT:-120}" ip netns exec "$NETNS_CLIENT_NS" \
			"$SHOAL_CLIENT_BIN" "$@"
	else
		timeout -k 5 "${SHOAL_CMD_TIMEOUT:-120}" "$SHOAL_CLIENT_BIN" "$@"
	fi
}

wait_workers() {
	local want=$1 n=
	for _ in $(seq 200); do
		n=$(shoal workers --json 2>/dev/null | jq length 2>/dev/null || echo -1)
		[ "$n" = "$want" ] && return 0
		sleep 0.05
	done
	fail "expected $want workers, master lists $n"
}
