#!/bin/sh
# Runs agora's whole test suite: installs what is missing, builds, tests.
# Extra arguments go to `meson test` (e.g. a test name, or --suite unit).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${AGORA_BUILD:-$here/build}
AGORA_BUILD=$build \
AGORA_EXTRA_PACKAGES="python3 python3-zmq python3-protobuf protobuf-compiler" \
    "$here/scripts/bootstrap.sh"
exec meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
