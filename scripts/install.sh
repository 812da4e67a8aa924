#!/bin/sh
# Usage: scripts/install.sh "DOCKER" NAME:TAG DIR
#
# Creates and enables the plugin in DIR under NAME:TAG on the engine DOCKER
# talks to, replacing an installed copy of the same name. `docker plugin rm`
# deletes the old copy's propagated mount, where its saved networks and
# endpoints live, so the state file is carried over to the new copy: networks
# made with the old copy keep working. (`docker plugin upgrade` from a
# registry keeps the state by itself: see `make upgrade`.)
#
# DOCKER may carry options ("docker -H unix:///run/other.sock"): it is split
# on spaces on purpose. The carry needs the engine's data root on this
# machine; for a remote engine the state is not carried and this says so.
set -eu
docker=$1 ref=$2 dir=$3
here=$(dirname "$0")
state=macvlan-swarm.db
carry=""
root=""

if $docker plugin inspect "$ref" >/dev/null 2>&1; then
	id=$($docker plugin inspect -f '{{.Id}}' "$ref")
	if [ "$($docker plugin inspect -f '{{.Enabled}}' "$ref")" = true ]; then
		echo "install: disabling existing $ref (forced: networks may use it)"
		$docker plugin disable -f "$ref"
	fi
	root=$($docker info -f '{{.DockerRootDir}}' 2>/dev/null || true)
	old="$root/plugins/$id/propagated-mount/$state"
	if [ -n "$root" ] && [ -f "$old" ]; then
		carry=$(mktemp -d)
		cp -p "$old" "$carry/$state"
		echo "install: carrying the saved networks and endpoints over from the old copy"
	else
		echo "install: no saved state found at $old; networks made with the old copy must be created again" >&2
	fi
	echo "install: removing existing $ref"
	$docker plugin rm -f "$ref"
fi

echo "install: creating $ref from $dir"
"$here/plugin-create.sh" "$docker" "$ref" "$dir"
if [ -n "$carry" ]; then
	id=$($docker plugin inspect -f '{{.Id}}' "$ref")
	mkdir -p "$root/plugins/$id/propagated-mount"
	cp -p "$carry/$state" "$root/plugins/$id/propagated-mount/$state"
	rm -rf "$carry"
fi
echo "install: enabling $ref"
$docker plugin enable "$ref"
$docker plugin ls
