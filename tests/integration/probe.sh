#!/bin/sh
# `agora probe` answers what a health check asks: alive only when the service
# answers its own request over the protocol. An env server is alive as `env`
# and not as `control` (it answers another service's request with an Error);
# a port nobody listens on, and a port whose listener never answers (a stuck
# process behind an open socket), are not alive, within the deadline.
#
# usage: probe.sh PATH/TO/agora PATH/TO/agora-env
set -u
agora=${1:?usage: $0 agora agora-env}
env_exe=${2:?usage: $0 agora agora-env}
dir=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

env_ep="tcp://127.0.0.1:$(port)"
"$env_exe" --bind "$env_ep" 2>"$dir/env.log" &
pids="$pids $!"
i=0
until "$agora" probe env "$env_ep" --timeout-ms 500 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 40 ] || fail "agora-env at $env_ep never probed alive"
done
"$agora" probe env "$env_ep" | grep -q 'alive' || fail "no 'alive' line"
"$agora" probe control "$env_ep" --timeout-ms 1000 2>/dev/null && fail "an env server probed alive as control"

quiet="tcp://127.0.0.1:$(port)"
t0=$(date +%s)
"$agora" probe env "$quiet" --timeout-ms 700 2>/dev/null && fail "nobody listening, yet alive"

# A listener that accepts and never speaks: the TCP port is open, the service is not.
stuck_port=$(port)
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$stuck_port" &
pids="$pids $!"
sleep 0.3
"$agora" probe env "tcp://127.0.0.1:$stuck_port" --timeout-ms 700 2>/dev/null && fail "a stuck listener probed alive"
t1=$(date +%s)
[ $((t1 - t0)) -le 10 ] || fail "the deadlines were not kept ($((t1 - t0)) s)"

"$agora" probe nosuch "$env_ep" 2>/dev/null; [ $? -eq 2 ] || fail "an unknown service is not a usage error"
echo "ok: alive only when the service answers its own request"
