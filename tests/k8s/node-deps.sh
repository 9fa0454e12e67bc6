#!/bin/sh
# node-deps.sh COMMAND [ARGS...]: makes sure Node.js and this folder's npm
# packages (package-lock.json, `npm ci` into node_modules/) are there, then
# runs COMMAND. Node.js and npm come from Debian's archive when missing (as
# root; otherwise exit 77, a skip); the packages from the npm registry.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    # 77: a test runner's skip, where Node.js cannot be had
    [ "$(id -u)" -eq 0 ] || { echo "node-deps: Node.js and npm are missing (apt-get install nodejs npm)" >&2; exit 77; }
    echo "node-deps: installing nodejs npm" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
# package-lock.json newer than the installed tree: install again
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
    [ -n "$(find "$here/package-lock.json" -newer "$here/node_modules/.package-lock.json")" ]; then
    echo "node-deps: npm ci in $here" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
exec "$@"
