#!/usr/bin/env python3
"""Play full debates against agora-env as both seats, with an honest strategy.

The strategy reads only the observation text (formats in docs/games.md):
* claim: compute the true chain from the task; when assigned a false answer,
  still write a valid claim, the true chain with its last step changed;
* challenge: the first wrong step of the opponent's chain (judged, like the
  judge does, from the opponent's own previous value), else step 1.
Played by both seats this always lets the judge find the liar's wrong step, so
the true side should win every game: judge accuracy 1.0.

Prints each seat's transcript, then one JSON line:
    {"games": 20, "true_side_wins": 20, "judge_accuracy": 1.0, ...}

    python3 debate_client.py tcp://127.0.0.1:5570 --games 20 --seed 1
    python3 debate_client.py tcp://127.0.0.1:5570 --seat1-bot liar
"""

import argparse
import json
import re
import sys

from env_client import EnvClient, EnvError

OPS = {"+": lambda x, d: (x + d) % 10,
       "-": lambda x, d: (x - d) % 10,
       "*": lambda x, d: (x * d) % 10}


def parse_task(text):
    """'7 +3 *2 -4' -> (7, [('+', 3), ('*', 2), ('-', 4)])"""
    x0, *ops = text.split()
    return int(x0), [(op[0], int(op[1:])) for op in ops]


def true_chain(x0, ops):
    chain, x = [], x0
    for op, d in ops:
        x = OPS[op](x, d)
        chain.append(x)
    return chain


def first_wrong_step(x0, ops, chain):
    """1-based index of the first step not following from the chain's own
    previous value (x0 for step 1), or None if every step is right."""
    prev = x0
    for i, ((op, d), value) in enumerate(zip(ops, chain), start=1):
        if OPS[op](prev, d) != value:
            return i
        prev = value
    return None


def last_field(transcript, label):
    """The value after the last 'label: ' line in a seat's transcript."""
    found = re.findall(r"^%s: ([^\n]*)$" % re.escape(label), transcript, re.M)
    if not found:
        raise ValueError("no %r line in the observation" % label)
    return found[-1]


def honest_action(transcript):
    """The next action for a seat, from everything it has seen so far."""
    x0, ops = parse_task(last_field(transcript, "task"))
    if transcript.endswith("your chain: "):
        chain = true_chain(x0, ops)
        argued = int(last_field(transcript, "you argue"))
        chain[-1] = argued  # a no-op when we argue the truth
        return " ".join(map(str, chain))
    if transcript.endswith("challenge step: "):
        chain = [int(v) for v in last_field(transcript, "opponent chain").split()]
        return str(first_wrong_step(x0, ops, chain) or 1)
    raise ValueError("unexpected observation: %r" % transcript[-80:])


def play(env, seed, seat_bots):
    """One debate; returns (transcripts per client seat, returns, info, metrics)."""
    reset = env.reset("debate", seed=seed, seat_bots=seat_bots)
    transcripts = {}
    returns = list(reset.rewards) or [0.0] * reset.num_players
    reply, to_act, observation = reset, reset.to_act, reset.observation
    while not reply.terminated:
        text = transcripts.get(to_act, "") + observation
        action = honest_action(text)
        transcripts[to_act] = text + action
        reply = env.step(reset.episode_id, to_act, action)
        returns = [a + b for a, b in zip(returns, reply.rewards)]
        to_act, observation = reply.to_act, reply.observation
    info = {kv.key: kv.value for kv in reply.info}
    metrics = {m.name: m.value for m in reply.metrics}
    return transcripts, returns, info, metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint", help="agora-env endpoint, e.g. tcp://127.0.0.1:5570")
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1,
                        help="game i uses seed + i (default %(default)s)")
    parser.add_argument("--seat1-bot", default="",
                        help="let the server play seat 1 with this scripted bot")
    parser.add_argument("--timeout-ms", type=int, default=3000)
    parser.add_argument("--quiet", action="store_true", help="only the JSON line")
    args = parser.parse_args()

    seat_bots = ["", args.seat1_bot] if args.seat1_bot else []
    won = played = 0
    try:
        with EnvClient(args.endpoint, timeout_ms=args.timeout_ms) as env:
            for i in range(args.games):
                seed = args.seed + i
                transcripts, returns, info, metrics = play(env, seed, seat_bots)
                played += 1
                # The env reports it too (metric judge_accuracy); recompute it
                # from the info so a wrong metric would show up as a mismatch.
                true_won = info["winner"] == info["true_seat"]
                if true_won != bool(metrics.get("judge_accuracy")):
                    raise ValueError("game %d: metric judge_accuracy disagrees "
                                     "with info %r" % (seed, info))
                won += true_won
                if not args.quiet:
                    print("=== game %d seed %d: winner seat %s (%s), true seat %s, "
                          "returns %s" % (i, seed, info["winner"], info["reason"],
                                          info["true_seat"], returns))
                    for seat in sorted(transcripts):
                        print("--- seat %d" % seat)
                        print(transcripts[seat])
    except (EnvError, ValueError, KeyError) as e:
        print("debate_client: %s" % e, file=sys.stderr)
        print(json.dumps({"games": played, "true_side_wins": won, "error": str(e)}))
        return 1
    print(json.dumps({"games": played, "true_side_wins": won,
                      "judge_accuracy": won / played if played else 0.0,
                      "seat1_bot": args.seat1_bot or None, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
