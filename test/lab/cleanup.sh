#!/bin/sh
# Removes leftovers of end-to-end lab runs that died before their teardown
# (see test/lab/cleanup/main.go for what is removed and how it is found).
# Usage: test/lab/cleanup.sh [-n] [-force] [-grace 20s] [-keep-logs]
set -eu
cd "$(dirname "$0")/../.."
exec go run ./test/lab/cleanup "$@"
