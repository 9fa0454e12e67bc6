#!/bin/sh
# The plug-in proof, part 1: the conformance checker against the external
# Python environment server of examples/python (a server agora's C code never
# saw). Exits with agora-env-check's status.
#
# usage: python_env_check.sh PATH/TO/agora-env-check

check=${1:?usage: $0 PATH/TO/agora-env-check}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

log="$workdir/server.log"
start_env_server "$log" "$examples/env_server.py"

timeout 300 "$check" "$endpoint"
status=$?

kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "env_server.py died during the check"; }
[ -s "$log" ] && grep -v '^env_server: listening' "$log" >&2
exit $status
