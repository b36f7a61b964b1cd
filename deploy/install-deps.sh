#!/usr/bin/env bash
# Installs what shoal needs to build and test on Debian 12 (run as root).
set -euo pipefail
pkgs=(
	build-essential
	pkg-config
	meson
	ninja-build
	libuv1-dev
	libprotobuf-c-dev
	protobuf-c-compiler
	check
	libssl-dev
	libsqlite3-dev
	python3
	jq
)
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
