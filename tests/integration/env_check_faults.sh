#!/bin/sh
# agora-env-check against servers broken on purpose: tests/support/
# faulty_env_server.py is the Python example server with one fault at a time.
# Without a fault every check passes (exit 0); with each fault the run exits 1,
# the check written for that fault fails naming its protocol.md section, and
# no check unrelated to the fault fails.
#
# usage: env_check_faults.sh PATH/TO/agora-env-check

check=${1:?usage: $0 PATH/TO/agora-env-check}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

server="$here/../support/faulty_env_server.py"
failures=0
total=0

# run_fault FAULT: runs the checker against the server with FAULT; leaves its
# output in $out and its exit status in $status.
run_fault() {
    start_env_server "$workdir/server.log" "$server" --fault "$1"
    out="$workdir/check-$1.txt"
    timeout 300 "$check" "$endpoint" >"$out" 2>&1
    status=$?
    kill -0 "$server_pid" 2>/dev/null || {
        cat "$workdir/server.log" >&2
        die "the server died during the check (fault $1)"
    }
    stop_server
}

# expect FAULT PATTERN [ALSO]: with FAULT, the run exits 1, some FAIL line's
# check name matches PATTERN (a basic regular expression) and names a
# protocol.md section, and every other FAIL line's check matches ALSO (checks
# that the same fault breaks too).
expect() {
    total=$((total + 1))
    run_fault "$1"
    fails=$(grep '^FAIL ' "$out")
    ours=$(printf '%s\n' "$fails" | grep "^FAIL $2: .*(protocol\.md §[0-9.]*)$")
    others=$(printf '%s\n' "$fails" | grep -v "^FAIL $2: " | grep -v "^FAIL ${3:-\$^}: " | grep .)
    if [ "$status" -ne 1 ] || [ -z "$ours" ] || [ -n "$others" ]; then
        echo "FAIL fault $1: exit $status (expected 1), FAIL lines for $2:" >&2
        printf '%s\n' "${ours:-  (none)}" >&2
        [ -z "$others" ] || { echo "  and unrelated FAIL lines:" >&2; printf '%s\n' "$others" >&2; }
        failures=$((failures + 1))
    else
        echo "PASS fault $1 caught by: $(printf '%s\n' "$fails" | cut -d: -f1 | sed 's/^FAIL //' | tr '\n' ' ')"
    fi
}

total=$((total + 1))
run_fault none
if [ "$status" -ne 0 ] || grep -q '^FAIL ' "$out"; then
    cat "$out" >&2
    echo "FAIL the server without a fault: exit $status (expected 0)" >&2
    failures=$((failures + 1))
else
    echo "PASS no fault: $(tail -n 1 "$out")"
fi

expect no-limits 'limits\.[a-z._]*' 'nim\.oversized_action'
expect consume-invalid 'nim\.invalid_action_error_option'
expect seat-bots-count 'nim\.seat_bots_too_[a-z]*'
expect unknown-bot 'nim\.unknown_bot' 'limits\.reset\.bot_name'
expect wire-type 'wire_type\.[a-z_]*'
expect demo-count-zero 'nim\.demo_count_zero' \
    'nim\.demo_check_order\|unknown_game\.demo_count_zero'
expect shared-bot-stream 'nim\.bots_independent'
expect undeclared-metric 'nim\.metrics_declared'
expect two-headlines 'nim\.metric_specs'
expect bad-metric-name 'nim\.metric_specs'
expect bad-ratio 'nim\.metric_specs'

# Every fault the server offers is one of those above.
total=$((total + 1))
listed=$("$python" "$server" --list | cut -d' ' -f1 | sort | tr '\n' ' ')
tested="bad-metric-name bad-ratio consume-invalid demo-count-zero no-limits none seat-bots-count shared-bot-stream two-headlines undeclared-metric unknown-bot wire-type "
[ "$listed" = "$tested" ] || {
    echo "FAIL the server's faults ($listed) are not the ones tested ($tested)" >&2
    failures=$((failures + 1))
}

echo "$((total - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
