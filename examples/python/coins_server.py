#!/usr/bin/env python3
"""A second game on the example server: split coins over two rounds.

A small negotiation with a reward that arrives only at the end. The first seat
proposes how many of the coins it keeps; the second accepts (the split is
paid) or rejects, and then makes the counter-offer, which the first seat
accepts or rejects; a rejected counter-offer pays nobody. Rewards are each
seat's share of the coins, on the last step.

It is the Nim server of env_server.py with this class in place of Nim: the
protocol code does not change. Actions that do not parse are refused with
ERROR_INVALID_ACTION (the state is unchanged), as protocol.md §5 describes,
so a client must resample them.

    python3 coins_server.py --bind tcp://127.0.0.1:5572
    agora-env-check tcp://127.0.0.1:5572
"""

import random

import env_server
from env_server import MAXIMIZE, UNSPECIFIED, AgoraError, pb

# Text formats (each seat's transcript = obs + action + obs + ...):
#   seat 0, round 1     "coins: 10. you propose.\nkeep: "          action "6"
#   seat 1, round 1     "coins: 10. they keep 6.\naccept? "        action "yes" / "no"
#   seat 1, round 2     "\nyou propose.\nkeep: "                   action "5"
#   seat 0, round 2     "\nthey keep 5.\naccept? "                 action "yes" / "no"


class Coins:
    name = "coins"
    description = ("Split the coins over two rounds: the first seat proposes how "
                   "many it keeps and the second accepts or rejects; after a "
                   "rejection the second proposes and the first accepts or "
                   "rejects; a second rejection pays nobody. Each seat earns its "
                   "share of the coins at the end.")
    roles = ("first", "second")
    bots = ("fair", "greedy", "random")
    demo_bots = ("random", "random")  # demos teach the format, not the strategy
    metric_specs = (
        ("deal_rate", "1 when the coins were split (an offer was accepted)",
         MAXIMIZE, True),
        ("first_share", "the first seat's share of the coins", UNSPECIFIED, False),
        ("rounds", "offers made (1 or 2)", UNSPECIFIED, False),
    )
    options = (
        ("coins", "10", "coins to split, 1..99"),
    )

    def __init__(self, seed, options):
        opts = env_server.game_options(self, options)
        self.coins = env_server.int_option(opts, "coins", 1, 99)
        # Each seat's bot draws from a stream of its own (protocol.md §8.6).
        self.bot_rngs = [random.Random("%d/bot/%d" % (seed, seat)) for seat in (0, 1)]
        self.to_act = 0
        self.round = 1
        self.offer = None  # coins the proposer keeps
        self.split = None  # coins per seat once the game ended
        header = "coins: %d. " % self.coins
        self.pending = [header + "you propose.\nkeep: ", header]

    def observe(self):
        text = self.pending[self.to_act]
        self.pending[self.to_act] = ""
        return text

    @property
    def proposer(self):
        return 0 if self.round == 1 else 1

    def step(self, action):
        seat = self.to_act
        text = action.strip()
        if seat == self.proposer and self.offer is None:
            if not text.isascii() or not text.isdigit() or len(text) > 2 \
                    or int(text) > self.coins:
                raise AgoraError(pb.ERROR_INVALID_ACTION,
                                 "expected the coins you keep, 0 to %d" % self.coins)
            self.offer = int(text)
            self.pending[seat] += "\n"
            self.pending[1 - seat] += "they keep %d.\naccept? " % self.offer
            self.to_act = 1 - seat
            return [0.0, 0.0], False
        if text not in ("yes", "no"):
            raise AgoraError(pb.ERROR_INVALID_ACTION, "expected yes or no")
        if text == "yes":
            keep = [0, 0]
            keep[self.proposer] = self.offer
            keep[1 - self.proposer] = self.coins - self.offer
            return self._finish(keep), False
        if self.round == 2:
            return self._finish([0, 0]), False
        self.round, self.offer = 2, None
        self.pending[seat] += "\nyou propose.\nkeep: "
        self.pending[1 - seat] += "\n"
        return [0.0, 0.0], False

    def bot_action(self, bot):
        rng = self.bot_rngs[self.to_act]
        if self.to_act == self.proposer and self.offer is None:
            keep = {"fair": (self.coins + 1) // 2,
                    "greedy": self.coins - max(1, self.coins // 10)}.get(bot)
            return str(keep if keep is not None else rng.randint(0, self.coins))
        given = self.coins - self.offer
        accepts = {"fair": 10 * given >= 4 * self.coins, "greedy": given >= 1}.get(bot)
        if accepts is None:
            accepts = rng.random() < 0.5
        return "yes" if accepts else "no"

    @property
    def terminated(self):
        return self.split is not None

    def info(self):
        return [("first_coins", str(self.split[0])), ("second_coins", str(self.split[1])),
                ("rounds", str(self.round))]

    def metrics(self):
        return [("deal_rate", float(sum(self.split) > 0)),
                ("first_share", self.split[0] / self.coins),
                ("rounds", float(self.round))]

    def _finish(self, split):
        self.split = split
        return [split[0] / self.coins, split[1] / self.coins]


if __name__ == "__main__":
    env_server.GAMES = {Coins.name: Coins}
    env_server.main()
