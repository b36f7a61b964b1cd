#!/usr/bin/env bash
# Installs what shoal needs to build and test on Debian 12 (run as root).
# One package per line, sorted, so that parallel changes merge cleanly. A package only the
# tests need goes in test_only too (below), or the container image's build stage installs it.
#   bash deploy/install-deps.sh                    install what is missing
#   bash deploy/install-deps.sh --build-packages   print the packages a build needs (no tests;
#                                                  the container image's build stage uses it)
set -euo pipefail
pkgs=(
	build-essential
	check
	chromium
	clang
	curl
	jq
	libclang-rt-14-dev
	libhttp-parser-dev
	libinih-dev
	libprotobuf-c-dev
	libsqlite3-dev
	libssl-dev
	libsystemd-dev
	libuv1-dev
	meson
	ninja-build
	openssl
	pkg-config
	protobuf-c-compiler
	python3
	scdoc
	valgrind
)
# Needed only to run the tests (tests/run.sh, .ci/run), not to build or install shoal.
test_only=" check chromium clang curl jq libclang-rt-14-dev openssl valgrind "
if [ "${1:-}" = --build-packages ]; then
	for p in "${pkgs[@]}"; do
		[[ $test_only == *" $p "* ]] || echo "$p"
	done
	exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "shoal: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
