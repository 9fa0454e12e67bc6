#!/bin/sh
# The plug-in proof, part 1: the conformance checker against the external
# Python environment server of examples/python (a server agora's C code never
# saw). Exits with agora-env-check's status.
#
# usage: python_env_check.sh PATH/TO/agora-env-check

check=${1:?usage: $0 PATH/TO/agora-env-check}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

# Port 0 ("*"): the server binds a free port and logs which one.
log="$workdir/server.log"
(cd "$examples" && exec "$python" env_server.py --bind 'tcp://127.0.0.1:*') 2>"$log" &
server_pid=$!

endpoint=
i=0
while [ -z "$endpoint" ] && [ $i -lt 100 ]; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "env_server.py exited"; }
    endpoint=$(sed -n 's/^env_server: listening on //p' "$log")
    [ -n "$endpoint" ] || sleep 0.1
    i=$((i + 1))
done
[ -n "$endpoint" ] || { cat "$log" >&2; die "env_server.py did not start"; }
wait_ready "$endpoint" 20 || die "env_server.py at $endpoint does not answer Hello"

timeout 300 "$check" "$endpoint"
status=$?

kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "env_server.py died during the check"; }
[ -s "$log" ] && grep -v '^env_server: listening' "$log" >&2
exit $status
