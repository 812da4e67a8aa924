#!/bin/sh
# Usage: scripts/plugin-create.sh "DOCKER" NAME:TAG DIR
#
# Runs `DOCKER plugin create NAME:TAG DIR`. The engine refuses a rootfs whose
# layer another installed plugin already holds ("content sha256:… already
# exists"). Its layer tar records modification times to the second, so giving
# the rootfs a new time makes the layer new: on that refusal, wait for the next
# second, touch every rootfs entry and try once more.
#
# DOCKER may carry options ("docker -H unix:///run/other.sock"): it is split
# on spaces on purpose.
set -u
docker=$1 ref=$2 dir=$3

err=$(mktemp)
trap 'rm -f "$err"' EXIT

if $docker plugin create "$ref" "$dir" 2>"$err"; then
	exit 0
fi
if ! grep -q 'content sha256:[0-9a-f]*.*already exists' "$err"; then
	cat "$err" >&2
	exit 1
fi
echo "plugin-create: another installed plugin holds a byte-identical rootfs layer;" \
	"refreshing the timestamps under $dir/rootfs and trying again" >&2
sleep 1
find "$dir/rootfs" -exec touch -h {} +
$docker plugin create "$ref" "$dir"
