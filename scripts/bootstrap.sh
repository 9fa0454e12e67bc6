#!/bin/sh
# Installs what agora needs on Debian 12 (as root, or with sudo) and builds it
# into build/ (or $AGORA_BUILD). Safe to run again: it installs only what is
# missing and rebuilds only what changed. Extra arguments go to `meson setup`.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${AGORA_BUILD:-$here/build}

# Build and run-time packages (all from Debian's archive, found through pkg-config;
# gnuplot draws the learning curves). AGORA_EXTRA_PACKAGES adds more (test.sh adds
# the Python interop tests' packages: Python is never a dependency of agora itself).
packages="build-essential meson ninja-build pkg-config
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libuv1-dev
  libinih-dev libjansson-dev libcmocka-dev gnuplot-nox ${AGORA_EXTRA_PACKAGES:-}"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "agora: installing$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >&2
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing >&2
fi

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$here" "$@" >&2
fi
ninja -C "$build" >&2
