#!/bin/sh
# Runs agora's main job on its built-in defaults (`agora run`: a debate
# cluster on this machine) after installing what is missing and building.
# Extra arguments go to `agora run` (e.g. a run file, or --out DIR).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${AGORA_BUILD:-$here/build}
AGORA_BUILD=$build "$here/scripts/bootstrap.sh"
exec "$build/deploy/local/agora" run "$@"
