#!/bin/sh
# External labellers against the real reward server: agora-label posts the
# sample file (every label accepted, exit 0) and a file with malformed lines
# (exactly those lines reported, the valid ones still accepted, exit 1) through
# stdin; the Python example (examples/python/label_pairs.py) posts the sample
# too, and its post() twice under one batch id is learnt once; agora-label posts it once more while the server is stopped (SIGSTOP), so
# that several attempts of its request queue up: the first is learnt, the
# others are answered as duplicates (same batch id), and a second run of the
# tool on the same file is learnt again (a new run, new batch ids); then the
# server's Stats (agora-label --stats) must count every accepted label exactly
# once, and the server must still be alive.
#
# usage: label.sh PATH/TO/agora-label PATH/TO/agora-reward

label=${1:?usage: $0 PATH/TO/agora-label PATH/TO/agora-reward}
reward=${2:?usage: $0 PATH/TO/agora-label PATH/TO/agora-reward}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

sample="$here/../../examples/reward-pairs.jsonl"
[ -r "$sample" ] || die "no sample file $sample"
sample_labels=$(grep -c . "$sample")
[ "$sample_labels" -ge 12 ] || die "the sample has only $sample_labels labels"

# One attempt with a long deadline: retries have a step of their own (4).
once="--timeout-ms 60000 --attempts 1"

# field NAME LINE: the value of NAME=... in a summary line.
field() {
    printf '%s\n' "$2" | sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p"
}

# expect WHAT SUMMARY KEY=VALUE...: every KEY has VALUE in the summary line.
expect() {
    what=$1 summary=$2
    shift 2
    [ -n "$summary" ] || die "$what: no summary line"
    for kv in "$@"; do
        got=$(field "${kv%%=*}" "$summary")
        [ "$got" = "${kv#*=}" ] || die "$what: expected ${kv}, got: $summary"
    done
    echo "$what: $summary"
}

# The free port may be taken between the probe and the bind: retry a few times.
log="$workdir/reward.log"
endpoint=
for _ in 1 2 3; do
    endpoint="tcp://127.0.0.1:$(free_port)"
    "$reward" --reward.bind "$endpoint" --reward.out "$workdir/reward" 2>"$log" &
    server_pid=$!
    i=0
    while [ $i -lt 100 ] && kill -0 "$server_pid" 2>/dev/null; do
        "$label" --reward "$endpoint" --stats all --timeout-ms 300 --attempts 1 \
            >/dev/null 2>&1 && break
        i=$((i + 1))
    done
    [ $i -lt 100 ] && kill -0 "$server_pid" 2>/dev/null && break
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
    endpoint=
done
[ -n "$endpoint" ] || { cat "$log" >&2; die "agora-reward did not start"; }

# 1. The sample: every line valid, every label accepted.
out=$("$label" "$sample" --reward "$endpoint" $once 2>"$workdir/err1")
rc=$?
cat "$workdir/err1" >&2
[ $rc -eq 0 ] || die "agora-label on the sample exited $rc: $out"
expect "agora-label sample" "$out" lines="$sample_labels" malformed=0 sent="$sample_labels" \
    accepted="$sample_labels" rejected=0 duplicate=0

# 2. Malformed lines among valid ones, read from stdin in batches of 2.
bad="$workdir/bad.jsonl"
good_pref=$(sed -n 1p "$sample")
good_outcome=$(grep '"label"' "$sample" | head -n 1)
[ -n "$good_outcome" ] || die "the sample has no outcome line"
{
    printf '%s\n' "$good_pref"                                      # 1 valid
    echo '{"transcript_a": "x", "transcript_b": "y", "preferred": "c"}' # 2 bad preferred
    echo ''                                                             # 3 blank: ignored
    printf '%s\n' "$good_outcome"                                   # 4 valid
    echo '{"transcript": "x", "label": 1.5}'                            # 5 label out of range
    echo 'not json at all'                                              # 6
    printf '{"transcript": "a\000b", "label": 1}\n'                     # 7 raw NUL byte
    echo '{"transcript": "x", "label": 1, "colour": "red"}'             # 8 unknown key
    "$python" -c 'print("{\"transcript\": \"%s\", \"label\": 0}" % ("x" * 65537))' # 9 too long
    "$python" -c 'print("[" * 100000)'                                  # 10 deeply nested
    echo '{"transcript": "x", "label": 0, "seat": 1, "game": "debate"}' # 11 valid
    head -c 3000 /dev/urandom | tr -d '\n'; echo                       # 12 binary garbage
    printf '{"transcript_a": "", "transcript_b": "x", "preferred": 1}'  # 13 valid, no newline
} >"$bad"
bad_valid=4
out=$("$label" - --reward "$endpoint" --batch 2 $once <"$bad" 2>"$workdir/err2")
rc=$?
cat "$workdir/err2" >&2
[ $rc -eq 1 ] || die "agora-label on malformed lines exited $rc (expected 1)"
expect "agora-label malformed" "$out" lines=13 malformed=8 sent=$bad_valid accepted=$bad_valid \
    rejected=0 duplicate=0
reported=$(sed -n 's/^<stdin>:\([0-9]*\): .*/\1/p' "$workdir/err2" | tr '\n' ' ')
[ "$reported" = "2 5 6 7 8 9 10 12 " ] ||
    die "agora-label reported lines '$reported', expected '2 5 6 7 8 9 10 12 '"

# 3. The Python example on the sample.
out=$(cd "$examples" && timeout 120 "$python" label_pairs.py "$sample" --reward "$endpoint" \
    --timeout-ms 60000 --tries 1)
rc=$?
[ $rc -eq 0 ] || die "label_pairs.py on the sample exited $rc: $out"
expect "label_pairs.py sample" "$out" lines="$sample_labels" malformed=0 sent="$sample_labels" \
    accepted="$sample_labels" rejected=0 duplicate=0
# Its post() twice under one batch id, as its retries send it: learnt once.
(cd "$examples" && timeout 120 "$python" - "$sample" "$endpoint" <<'EOF') ||
import sys
import label_pairs as lp
with open(sys.argv[1], "rb") as f:
    labels = [lp.parse_label(line) for line in f if line.strip()]
client = lp.RewardClient(sys.argv[2], 60000, 1)
first = lp.post(client, "default", labels, "label_pairs/test/0", 120)
again = lp.post(client, "default", labels, "label_pairs/test/0", 120)
client.sock.close(linger=0)
print("label_pairs.post twice: accepted %d, %d; duplicate %s, %s"
      % (first.accepted, again.accepted, first.duplicate, again.duplicate))
sys.exit(0 if (first.accepted == again.accepted == len(labels) and not first.duplicate
               and again.duplicate) else 1)
EOF
    die "label_pairs.post under one batch id was not learnt exactly once"

# 4. Retries: with the server stopped, attempts of 100 ms pile up in the
# client's queue; once it runs again it takes them all in order. The reply the
# tool waits for (its latest attempt's) says duplicate, with the counts of the
# first.
kill -STOP "$server_pid"
"$label" "$sample" --reward "$endpoint" --timeout-ms 100 --attempts 100 \
    >"$workdir/out4" 2>"$workdir/err4" &
label_pid=$!
sleep 1.5
kill -CONT "$server_pid"
wait "$label_pid"
rc=$?
out=$(cat "$workdir/out4")
[ $rc -eq 0 ] || { cat "$workdir/err4" >&2; die "agora-label with retries exited $rc: $out"; }
expect "agora-label retried" "$out" lines="$sample_labels" malformed=0 sent="$sample_labels" \
    accepted="$sample_labels" rejected=0 duplicate=1

# 5. Stats: every accepted label counted by the model, once.
total=$((4 * sample_labels + bad_valid))
stats=$("$label" --reward "$endpoint" --stats default $once)
rc=$?
[ $rc -eq 0 ] || die "agora-label --stats exited $rc"
echo "stats: $stats"
"$python" - "$stats" "$total" <<'EOF' || die "the Stats do not count the labels: $stats"
import json, sys
models = [json.loads(line) for line in sys.argv[1].splitlines()]
want = int(sys.argv[2])
m = models[0]
dups = m.get("metrics", {}).get("duplicates", 0)
# the retried request of step 4 was answered as a duplicate at least once
ok = len(models) == 1 and m["name"] == "default" and m["labels"] == want and dups >= 1
print("model %s: %s labels, expected %d; %s duplicate requests" % (m.get("name"), m.get("labels"),
                                                                   want, dups))
sys.exit(0 if ok else 1)
EOF

# 6. An unknown model is a failure of the run (exit 2), not a rejected label.
"$label" "$sample" --reward "$endpoint" --model no-such-model $once >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || die "agora-label with an unknown model exited $rc (expected 2)"

kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "agora-reward died"; }
exit 0
