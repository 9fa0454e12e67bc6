#!/bin/sh
# Runs agora's whole test suite: installs what is missing, builds, tests:
# the default suites, then the cluster suite (real cluster engines on this
# machine: it installs their packages and starts their daemons, as root).
# Extra arguments go to `meson test` instead (e.g. a test name, or --suite unit).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${AGORA_BUILD:-$here/build}
AGORA_BUILD=$build \
AGORA_EXTRA_PACKAGES="python3 python3-zmq python3-protobuf protobuf-compiler" \
    "$here/scripts/bootstrap.sh"
if [ $# -gt 0 ]; then
    exec meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
fi
meson test -C "$build" --print-errorlogs --num-processes 2
exec meson test -C "$build" --print-errorlogs --num-processes 1 --suite cluster
