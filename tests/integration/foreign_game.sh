#!/bin/sh
# A foreign game is a first-class citizen: `agora run examples/coins.ini`
# trains "coins" (a two-round negotiation served by the Python example server
# examples/python/coins_server.py, a game agora's C code has never seen) on a
# server the launcher did not start ([run] env_servers = 0, env = ENDPOINT).
# The game's declared headline (deal_rate) must improve over the warm start
# on held-out games against the same bot, and stand in summary.json, in the
# progress line and in curves.png by the name the game declared; games ended
# on refused actions must stay few, and the server must outlive the run.
#
# usage: foreign_game.sh PATH/TO/agora

agora=${1:?usage: $0 PATH/TO/agora}
. "$(cd "$(dirname "$0")" && pwd)/python_lib.sh"

log="$workdir/coins.log"
start_env_server "$log" "$examples/coins_server.py"

run="$workdir/run"
timeout 600 "$agora" run "$examples/../coins.ini" --out "$run" --run.env "$endpoint" \
    --run.progress_s 5 >"$workdir/agora.out" 2>&1
status=$?
cat "$workdir/agora.out" >&2
[ $status -eq 0 ] || die "agora run exited $status"
kill -0 "$server_pid" 2>/dev/null || die "the env server the launcher did not start is gone"

grep -q '| deal_rate ' "$workdir/agora.out" || die "the progress line does not show deal_rate"
[ -s "$run/curves.png" ] || die "no curves.png"
grep -q 'deal\\\\_rate' "$run/curves.gp" || die "curves.png does not plot deal_rate"
grep -q '^# update .* deal_rate ' "$run/curves.dat" || die "curves.dat has no deal_rate column"

"$python" - "$run" "$endpoint" <<'EOF' || exit 1
import json, sys

run, endpoint = sys.argv[1], sys.argv[2]
s = json.load(open(run + "/summary.json"))


def check(ok, what):
    if not ok:
        sys.exit("foreign_game: " + what)


check(s["status"] == "completed", "status %r (%s)" % (s["status"], s.get("error")))
check(s["game"] == "coins" and s["env_servers"] == 0, "game %r, env_servers %r"
      % (s["game"], s["env_servers"]))
h = s["headline"]
check(h["name"] == "deal_rate" and h["goal"] == "maximize", "headline %r" % h)
check(h["matchup"] == "self_vs_bot_fair", "evaluated %r, trained against bot:fair"
      % h["matchup"])
check(s["deal_rate_warmstart"] == h["warmstart"] and s["deal_rate"] == h["final"],
      "flat keys and headline disagree")
games = s["eval"]["games"]
ended = s["invalid_ended"]
print("deal_rate: warm start %.3f -> final %.3f; first_share %.3f -> %.3f; "
      "games ended on refused actions %d of %d" % (h["warmstart"], h["final"],
      s["first_share_warmstart"], s["first_share"], ended, games))
# The warm start's random offers against `fair` make a deal about 87% of the
# time (over 400 games a standard error under 0.02); a policy that learnt the
# bargain makes nearly every deal (0.95-0.98 in runs of this file) and keeps
# more of the coins (about 0.27 -> 0.48 of them).
check(h["final"] >= h["warmstart"] + 0.05, "deal_rate did not improve enough")
check(s["first_share"] > s["first_share_warmstart"] + 0.1, "first_share did not improve")
check(ended <= 0.1 * games, "%d of %d games ended on refused actions" % (ended, games))
ini = open(run + "/run.ini").read()
check(ini.count("env = " + endpoint) >= 3, "run.ini does not point every process at "
      + endpoint)
EOF
echo "ok: coins trained through agora run on an external Python server"
