#!/bin/sh
# Runs agora's whole test suite: installs what is missing, builds, tests.
# Extra arguments go to `meson test` (e.g. a test name, or --suite unit).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${AGORA_BUILD:-$here/build}
AGORA_BUILD=$build "$here/scripts/bootstrap.sh"
exec meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
