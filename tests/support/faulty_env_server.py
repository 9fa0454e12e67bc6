#!/usr/bin/env python3
"""The example Nim server of examples/python, broken on purpose in one way.

agora-env-check must catch every way a foreign server can break the protocol;
a check that never failed proves nothing. This server is the example
(`examples/python/env_server.py`, imported, not copied) with at most one
fault switched on, so a test can run the checker against each fault and
require the check for that fault to fail:

    faulty_env_server.py --fault NAME [--bind ENDPOINT]
    faulty_env_server.py --list

With `--fault none` it is the example itself.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir, "examples", "python"))

import agora_proto  # noqa: E402
import env_server  # noqa: E402
from agora_proto import pb  # noqa: E402

FAULTS = {}


def fault(name, rule):
    """Registers a function that breaks `rule` (a sentence of protocol.md)."""
    def register(apply):
        FAULTS[name] = (rule, apply)
        return apply
    return register


@fault("none", "nothing: the example as it is")
def _none():
    pass


@fault("no-limits", "§6: strings and lists over their limits are BAD_REQUEST")
def _no_limits():
    env_server.check_limits = lambda msg: None


@fault("consume-invalid",
       "§8.6: under invalid_action=error an invalid action changes nothing")
def _consume_invalid():
    class ConsumingNim(env_server.Nim):
        def __init__(self, seed, options):
            super().__init__(seed, options)
            self.explicit_error = ("invalid_action", "error") in options

        def step(self, action):
            try:
                return super().step(action)
            except env_server.AgoraError as e:
                if e.code == pb.ERROR_INVALID_ACTION and self.explicit_error:
                    self.to_act = 1 - self.to_act  # refused, yet the turn is gone
                raise

    env_server.GAMES[ConsumingNim.name] = ConsumingNim


def _lenient_episode(fix_seat_bots):
    """Episode whose seat_bots go through fix_seat_bots(game_cls, seat_bots)
    instead of being refused."""
    base = env_server.Episode

    class LenientEpisode(base):
        def __init__(self, game_cls, seed, options, seat_bots):
            super().__init__(game_cls, seed, options,
                             fix_seat_bots(game_cls, list(seat_bots)))

    env_server.Episode = LenientEpisode


@fault("seat-bots-count", "§8.2: a wrong number of seat_bots is BAD_OPTION")
def _seat_bots_count():
    def pad_or_cut(game_cls, seat_bots):
        n = len(game_cls.roles)
        return (seat_bots + [""] * n)[:n] if seat_bots else seat_bots
    _lenient_episode(pad_or_cut)


@fault("unknown-bot", "§8.2: an unknown bot name is BAD_OPTION")
def _unknown_bot():
    def any_bot(game_cls, seat_bots):
        return [b if not b or b in game_cls.bots else game_cls.bots[-1]
                for b in seat_bots]
    _lenient_episode(any_bot)


@fault("wire-type",
       "§4: a known field with another wire type makes the request undecodable")
def _wire_type():
    agora_proto._wrong_wire_type = lambda msg: False


@fault("demo-count-zero", "§8.4: Demo count 0 is BAD_REQUEST")
def _demo_count_zero():
    demo = env_server.Server._demo

    def lenient_demo(self, req, reply):
        if req.count == 0:
            reply.demo.SetInParent()  # zero transcripts, as asked
            return
        demo(self, req, reply)

    env_server.Server._demo = lenient_demo


@fault("shared-bot-stream",
       "§8.6: a bot plays the same moves whoever plays the other seats")
def _shared_bot_stream():
    class SharedNim(env_server.Nim):
        def __init__(self, seed, options):
            super().__init__(seed, options)
            self.bot_rngs = [self.rng] * len(self.roles)

    env_server.GAMES[SharedNim.name] = SharedNim


@fault("undeclared-metric", "§8.1: every metric reported is declared")
def _undeclared_metric():
    fill_end = env_server._fill_end

    def fill_end_and_more(reply, game):
        fill_end(reply, game)
        reply.metrics.add(name="stones_left", value=0.0)

    env_server._fill_end = fill_end_and_more


def _respec(change):
    """Hello whose game specs go through change(spec) after the declarations."""
    hello = env_server.Server._hello

    def hello_changed(self, req, reply):
        hello(self, req, reply)
        for spec in reply.hello.games:
            change(spec)

    env_server.Server._hello = hello_changed


@fault("two-headlines", "§8.1: at most one headline metric")
def _two_headlines():
    def change(spec):
        for m in spec.metrics[:2]:
            m.headline = True
    _respec(change)


@fault("bad-metric-name", "§8.1: metric names are ASCII letters, digits and _")
def _bad_metric_name():
    def change(spec):
        spec.metrics.add(name="win rate", numerator=spec.metrics[0].name,
                         denominator=spec.metrics[1].name)
    _respec(change)


@fault("bad-ratio", "§8.1: a ratio metric names two reported metrics")
def _bad_ratio():
    def change(spec):
        spec.metrics.add(name="win_rate", numerator=spec.metrics[0].name,
                         denominator="no_such_metric")
    _respec(change)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", default="none", choices=sorted(FAULTS))
    parser.add_argument("--list", action="store_true",
                        help="print each fault and the rule it breaks, and exit")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5571")
    args = parser.parse_args()
    if args.list:
        for name in sorted(FAULTS):
            print("%-20s %s" % (name, FAULTS[name][0]))
        return
    FAULTS[args.fault][1]()
    env_server.serve(args.bind, 300.0, 10000)


if __name__ == "__main__":
    main()
