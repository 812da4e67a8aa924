#!/usr/bin/env bash
# Fetches, only where missing, the newer Docker engines the end-to-end matrix
# runs beside the installed docker.io 20.10, and unpacks each into a cache
# folder outside the repository:
#
#   26.1  Debian trixie's docker.io and docker-cli      (uses the machine's containerd 1.6 and runc)
#   28.5  Debian sid's docker.io, docker-cli, containerd 2.1 (uses the machine's runc: sid's needs a newer glibc)
#
#   scripts/ensure-engines.sh [26.1] [28.5]     (no argument: both)
#
# Layout: $MVS_ENGINE_CACHE (default /var/cache/mvs-engines)/<engine>/root is
# what `dpkg -x` unpacked (usr/sbin/dockerd, usr/bin/containerd, …) and
# root/.mvs-engine names the packages and versions; an engine whose root has
# that file is complete and is not fetched again. Nothing is installed: the
# packages come from the same Debian mirror as the machine's own apt sources
# (read from them, not written here), through a private sources list, package
# lists and cache, so the machine's apt state is not touched.
#
# Safe to run twice at once: one flock per engine, and the unpacked tree is
# renamed into place only when complete. Needs root (or a writable cache).
set -euo pipefail

cache=${MVS_ENGINE_CACHE:-/var/cache/mvs-engines}
engines=("$@")
((${#engines[@]})) || engines=(26.1 28.5)

# The Debian mirror of the machine's own sources: the first URI serving a
# suite named like the machine's release (not -security, not -updates).
mirror() {
	local uri
	uri=$(
		{
			cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
				awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
			cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { print $2 }'
		} | grep -E '/debian/?$' | head -n1
	)
	[ -n "$uri" ] || { echo "ensure-engines: no Debian mirror (…/debian) in /etc/apt/sources.list{,.d}" >&2; return 1; }
	echo "${uri%/}"
}

# fetch ENGINE SUITE VERSION-PREFIX PACKAGE…
fetch() {
	local name=$1 suite=$2 want=$3
	shift 3
	local dir=$cache/$name
	[ -f "$dir/root/.mvs-engine" ] && return 0
	mkdir -p "$dir"
	exec {lock}>"$dir/lock"
	flock "$lock"
	# Filled by another process while this one waited.
	if [ -f "$dir/root/.mvs-engine" ]; then
		exec {lock}>&-
		return 0
	fi
	local m
	m=$(mirror)
	local work
	work=$(mktemp -d "$dir/fetch.XXXXXX")
	trap 'rm -rf "$work"' RETURN
	mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m $suite main" >"$work/sources.list"
	local apt=(apt-get -q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
		-o APT::Get::List-Cleanup=0)
	echo "ensure-engines: $name: fetching $* from $m $suite"
	"${apt[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; return 1; }
	(cd "$work/debs" && "${apt[@]}" download "$@" >"$work/download.log" 2>&1) || { cat "$work/download.log" >&2; return 1; }
	local deb v versions=()
	for deb in "$work"/debs/*.deb; do
		dpkg -x "$deb" "$work/root"
		versions+=("$(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)")
	done
	v=$(dpkg-deb -f "$work"/debs/docker.io_*.deb Version)
	case $v in
	"$want"*) ;;
	*)
		echo "ensure-engines: $name: $suite now has docker.io $v, not $want*; the matrix's engine moved on (update scripts/ensure-engines.sh and docs/engines.md)" >&2
		return 1
		;;
	esac
	printf 'engine=%s\nsuite=%s\nmirror=%s\npackages=%s\n' "$name" "$suite" "$m" "${versions[*]}" >"$work/root/.mvs-engine"
	rm -rf "$dir/root"
	mv -T "$work/root" "$dir/root"
	echo "ensure-engines: $name: ${versions[*]} in $dir/root"
	exec {lock}>&-
}

for e in "${engines[@]}"; do
	case $e in
	20.10) ;; # the installed docker.io (scripts/ensure-packages.sh)
	26.1) fetch 26.1 trixie 26.1. docker.io docker-cli ;;
	28.5) fetch 28.5 sid 28.5. docker.io docker-cli containerd ;;
	*)
		echo "ensure-engines: unknown engine $e (20.10, 26.1, 28.5)" >&2
		exit 2
		;;
	esac
done
