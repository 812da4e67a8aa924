#!/bin/sh
# Usage: scripts/install.sh "DOCKER" NAME:TAG DIR
#
# Creates and enables the plugin in DIR under NAME:TAG on the engine DOCKER
# talks to, replacing an installed copy of the same name. `docker plugin rm`
# deletes the old copy's propagated mount, where its saved networks and
# endpoints live, so its contents (the state file, whose name only the daemon
# knows) are carried over to the new copy: networks
# made with the old copy keep working. The settings the user changed on the
# old copy (`docker plugin set`: PARENTS, SCOPE, LOG_LEVEL, …) are carried
# over too, where the new copy declares them settable: networks naming a
# PARENTS alias, or a SCOPE=local engine, would break without them. (`docker plugin upgrade` from a registry keeps
# both by itself: see `make upgrade`.)
#
# DOCKER may carry options ("docker -H unix:///run/other.sock"): it is split
# on spaces on purpose. The carry needs the engine's data root on this
# machine; for a remote engine the state is not carried and this says so.
set -eu
runsrc=
docker=$1 ref=$2 dir=$3
here=$(dirname "$0")
carry=""
root=""
settings=""
removed=""

# A failure after the old copy is gone must not lose what it held: say
# where its state file waits and which settings it had.
on_exit() {
	status=$?
	[ "$status" != 0 ] && [ -n "$removed" ] || return 0
	if [ -n "$carry" ] && [ -n "$(ls -A "$carry")" ]; then
		echo "install: failed after removing the old copy; its saved networks are kept in $carry:" >&2
		echo "install: once $ref is created again (disabled), copy what is in that folder into $root/plugins/<its id>/propagated-mount/ and enable it" >&2
	fi
	if [ -n "$settings" ]; then
		echo "install: the old copy's settings, to set again with docker plugin set: $(printf '%s ' $settings)" >&2
	fi
}
trap on_exit EXIT

if ! $docker version >/dev/null 2>&1; then
	echo "install: no Docker engine answers ($docker version failed)." >&2
	echo "install: start the engine (e.g. systemctl start docker), point DOCKER at it (make install DOCKER='docker -H unix:///path/docker.sock')," >&2
	echo "install: or run 'make demo' to try the plugin in a private engine that it starts and removes." >&2
	exit 1
fi

if $docker plugin inspect "$ref" >/dev/null 2>&1; then
	id=$($docker plugin inspect -f '{{.Id}}' "$ref")
	if [ "$($docker plugin inspect -f '{{.Enabled}}' "$ref")" = true ]; then
		echo "install: disabling existing $ref (forced: networks may use it)"
		$docker plugin disable -f "$ref"
	fi
	# What the user changed with `docker plugin set`: the old copy's
	# KEY=VALUE settings that differ from its own defaults, one per line.
	defaults=$($docker plugin inspect -f '{{range .Config.Env}}{{.Name}}={{.Value}}{{println}}{{end}}' "$ref")
	settings=$($docker plugin inspect -f '{{range .Settings.Env}}{{println .}}{{end}}' "$ref" |
		grep -vxF -- "$defaults" || true)
	# The engine-run mount's source, when the user pointed it elsewhere.
	runsrc=$($docker plugin inspect -f '{{range .Settings.Mounts}}{{if eq .Name "engine-run"}}{{.Source}}{{end}}{{end}}' "$ref" 2>/dev/null || true)
	root=$($docker info -f '{{.DockerRootDir}}' 2>/dev/null || true)
	old="$root/plugins/$id/propagated-mount"
	if [ -n "$root" ] && [ -d "$old" ] && [ -n "$(ls -A "$old")" ]; then
		carry=$(mktemp -d)
		cp -a "$old/." "$carry/"
		echo "install: carrying the saved networks and endpoints over from the old copy"
	else
		echo "install: no saved state found at $old; networks made with the old copy must be created again" >&2
	fi
	echo "install: removing existing $ref"
	$docker plugin rm -f "$ref"
	removed=1
fi

echo "install: creating $ref from $dir"
"$here/plugin-create.sh" "$docker" "$ref" "$dir"
if [ -n "$carry" ]; then
	id=$($docker plugin inspect -f '{{.Id}}' "$ref")
	mkdir -p "$root/plugins/$id/propagated-mount"
	cp -a "$carry/." "$root/plugins/$id/propagated-mount/"
	rm -rf "$carry"
fi
if [ -n "$settings" ]; then
	# Set them again, where the new copy lets the user set them (STATE_DIR
	# and SOCKET are fixed by the build).
	settable=$($docker plugin inspect -f '{{range .Config.Env}}{{if .Settable}}{{println .Name}}{{end}}{{end}}' "$ref")
	fresh=$($docker plugin inspect -f '{{range .Settings.Env}}{{println .}}{{end}}' "$ref")
	printf '%s\n' "$settings" | while IFS= read -r kv; do
		[ -n "$kv" ] || continue
		printf '%s\n' "$fresh" | grep -qxF -- "$kv" && continue
		if printf '%s\n' "$settable" | grep -qxF -- "${kv%%=*}"; then
			echo "install: keeping setting $kv"
			$docker plugin set "$ref" "$kv"
		else
			echo "install: setting $kv of the old copy is not settable in the new one; dropped" >&2
		fi
	done
fi
if [ -n "${runsrc:-}" ] && [ "$runsrc" != /var/run/docker ]; then
	echo "install: keeping setting engine-run.source=$runsrc"
	$docker plugin set "$ref" "engine-run.source=$runsrc"
fi
echo "install: enabling $ref"
$docker plugin enable "$ref"
$docker plugin ls
