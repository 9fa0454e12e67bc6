#!/bin/sh
# podman_deps.sh: installs what the cluster suite needs and is missing (as
# root, from Debian's archive): podman with Debian's runc, netavark and
# aardvark-dns (pods reach each other by name), iptables (netavark's
# firewall), catatonit (the pods' pause image), debootstrap (the image's
# root); then Node.js and tests/k8s's npm packages (tests/k8s/node-deps.sh).
# Exit 77: not root, or podman cannot be installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "podman_deps: needs root" >&2; exit 77; }
packages="podman runc debootstrap iptables catatonit netavark aardvark-dns"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "podman_deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; } >&2; then
        command -v podman >/dev/null || { echo "podman_deps: podman cannot be installed" >&2; exit 77; }
        echo "podman_deps: cannot install$missing" >&2
        exit 1
    fi
fi
exec sh "$here/../k8s/node-deps.sh" true
