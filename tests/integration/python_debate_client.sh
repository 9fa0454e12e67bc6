#!/bin/sh
# The plug-in proof, part 2: a Python client (examples/python/debate_client.py,
# generated bindings only) plays full debates against agora-env as both seats
# with the honest strategy; the true side must win every game (judge accuracy
# 1.0), and the server must still be alive afterwards.
#
# usage: python_debate_client.sh PATH/TO/agora-env [GAMES]

env_exe=${1:?usage: $0 PATH/TO/agora-env [GAMES]}
games=${2:-20}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

# The free port may be taken between the probe and the bind: retry a few times.
log="$workdir/server.log"
endpoint=
for _ in 1 2 3; do
    endpoint="tcp://127.0.0.1:$(free_port)"
    "$env_exe" --bind "$endpoint" 2>"$log" &
    server_pid=$!
    wait_ready "$endpoint" 20 && break
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
    endpoint=
done
[ -n "$endpoint" ] || { cat "$log" >&2; die "agora-env did not start"; }

out="$workdir/client.out"
(cd "$examples" && timeout 300 "$python" debate_client.py "$endpoint" \
    --games "$games" --seed 1) >"$out"
status=$?
tail -n 30 "$out"
[ $status -eq 0 ] || die "debate_client.py exited with status $status"

result=$(tail -n 1 "$out")
"$python" - "$result" "$games" <<'EOF' || die "unexpected result: $result"
import json, sys
r = json.loads(sys.argv[1])
want = int(sys.argv[2])
ok = r.get("games") == want and r.get("judge_accuracy") == 1.0
print("games %s, judge accuracy %s" % (r.get("games"), r.get("judge_accuracy")))
sys.exit(0 if ok else 1)
EOF

kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "agora-env died"; }
# A clean shutdown is part of the contract: SIGTERM, exit status 0.
kill -TERM "$server_pid"
i=0
while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 "$server_pid" 2>/dev/null && die "agora-env ignores SIGTERM"
wait "$server_pid"
rc=$?
server_pid=
[ $rc -eq 0 ] || { cat "$log" >&2; die "agora-env exited with status $rc on SIGTERM"; }
exit 0
