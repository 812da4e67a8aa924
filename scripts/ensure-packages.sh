#!/usr/bin/env bash
# Installs, only where missing, the Debian packages that the end-to-end tests
# and `make demo` need: a real engine (docker.io 20.10, with containerd and
# runc), a registry, busybox for the test image, and the tools the labs use.
# Idempotent; needs root when something is missing.
set -euo pipefail
packages=(docker.io docker-registry busybox-static iproute2 util-linux make git ca-certificates)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages: ${missing[*]}; run as root, or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
