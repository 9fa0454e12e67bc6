# Shared by the python_*.sh integration tests (sourced, not run): find a Python
# with pyzmq and protobuf, give the examples a private protobuf cache, start and
# stop servers, and clean up every child process on any exit.

set -u

here=$(cd "$(dirname "$0")" && pwd)
examples=$(cd "$here/../../examples/python" && pwd)
workdir=$(mktemp -d "${TMPDIR:-/tmp}/agora-python-test.XXXXXX")
server_pid=

# Generated modules go to a private cache so a test never writes to $HOME,
# and no __pycache__ lands in the source tree.
export AGORA_PROTO_CACHE="$workdir/proto"
export PYTHONDONTWRITEBYTECODE=1

# stop_server: SIGTERM to $server_pid, SIGKILL after 5 s.
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        i=0
        while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    server_pid=
}

cleanup() {
    stop_server
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# The first interpreter that has pyzmq and the protobuf runtime (Debian's
# python3-zmq and python3-protobuf live in the system python3).
python=
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$candidate" -c 'import zmq, google.protobuf' 2>/dev/null; then
        python=$candidate
        break
    fi
done
[ -n "$python" ] || die "no python3 with pyzmq and protobuf (python3-zmq, python3-protobuf)"

# Generate the protobuf modules once, before several processes race for it.
(cd "$examples" && "$python" -c 'import agora_proto') || die "cannot generate protobuf modules"

# wait_ready ENDPOINT SECONDS: until the server ($server_pid) answers Hello;
# fails at once if it exits.
wait_ready() {
    i=0
    while [ $i -lt "$2" ]; do
        kill -0 "$server_pid" 2>/dev/null || return 1
        (cd "$examples" && timeout 10 "$python" hello.py "$1" --wait 1 >/dev/null 2>&1) &&
            return 0
        i=$((i + 1))
    done
    return 1
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_env_server LOG SCRIPT [ARGS...]: starts a Python env server (one that
# binds a free port for 'tcp://127.0.0.1:*' and logs "env_server: listening on
# ENDPOINT", as examples/python/env_server.py does) with its stderr in LOG;
# sets $server_pid, and $endpoint once the server answers Hello.
start_env_server() {
    start_log=$1
    shift
    "$python" "$@" --bind 'tcp://127.0.0.1:*' 2>"$start_log" &
    server_pid=$!
    endpoint=
    i=0
    while [ -z "$endpoint" ] && [ $i -lt 100 ]; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$start_log" >&2; die "$1 exited"; }
        endpoint=$(sed -n 's/^env_server: listening on //p' "$start_log")
        [ -n "$endpoint" ] || sleep 0.1
        i=$((i + 1))
    done
    [ -n "$endpoint" ] || { cat "$start_log" >&2; die "$1 did not start"; }
    wait_ready "$endpoint" 20 || die "$1 at $endpoint does not answer Hello"
}
