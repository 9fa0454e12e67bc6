#!/usr/bin/env python3
"""A minimal, complete agora environment server in Python: the template to copy.

It speaks protocol v1 (docs/protocol.md) on a ZeroMQ ROUTER socket and hosts one
small two-player game, Nim: a pile of stones drawn from the seed, each turn a
player takes 1..max_take stones, whoever takes the last stone wins (+1, the
other -1, on the final step only). Everything agora's trainers need is here:
option validation, determinism from the seed, incremental text observations,
scripted bots (for seats the server plays and for Demo), Close, eviction of
idle episodes, and an Error reply to every malformed request. The server never
dies on bad input.

To host another game, replace the Nim class (its options, bots and the metrics
it declares in Hello); the protocol code below it does not change.

    python3 env_server.py --bind tcp://127.0.0.1:5571
    agora-env-check tcp://127.0.0.1:5571
"""

import argparse
import collections
import random
import signal
import sys
import time

import zmq

from agora_proto import PROTOCOL_VERSION, DecodeError, decode, pb

# The limits of docs/protocol.md §6: every string of a request at most 256
# bytes and every repeated field at most 32 entries, except for these fields.
MAX_REQUEST_BYTES = 1 << 20
MAX_STRING = 256
MAX_REPEATED = 32
FIELD_LIMITS = {
    "StepRequest.action": 4096,
    "ResetRequest.game": 64,
    "DemoRequest.game": 64,
    "KeyValue.key": 64,
    "ResetRequest.seat_bots": 8,
    "DemoRequest.bots": 8,
}
MAX_DEMO_COUNT = 256
# MetricSpec.goal values
MAXIMIZE = pb.MetricGoal.Value("METRIC_GOAL_MAXIMIZE")
UNSPECIFIED = pb.MetricGoal.Value("METRIC_GOAL_UNSPECIFIED")
MAX_ERROR_MESSAGE = 1024


class AgoraError(Exception):
    """Becomes an EnvReply.error; code is a pb.ErrorCode value."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------
# The game. Text formats (each seat's transcript = obs + action + obs + ...):
#   first observation   "nim\npile: 17, take 1 to 3, the last take wins\n"
#                       (seat 1: plus "opponent took 2, pile: 15\n")
#                       then "you take: "
#   later observations  "\nopponent took 1, pile: 12\nyou take: "
#   action              a decimal number of stones, 1..min(max_take, pile)
# --------------------------------------------------------------------------

class Nim:
    name = "nim"
    description = ("Nim: take 1..max_take stones from one pile; whoever takes "
                   "the last stone wins. The pile size is drawn from the seed.")
    roles = ("first", "second")
    bots = ("perfect", "random")
    demo_bots = ("random", "random")  # demos teach the format, not the strategy
    # What metrics() reports, as Hello declares them (protocol.md §8.1): name,
    # meaning, goal, and whether it is the headline figure. Consumers such as
    # agora-eval report these names and lead with the headline.
    metric_specs = (
        ("theory_winner_won", "1 when the seat that wins with perfect play won",
         MAXIMIZE, True),
        ("first_won", "1 when the first seat won", UNSPECIFIED, False),
        ("moves", "moves played", UNSPECIFIED, False),
    )
    options = (
        ("pile", "0", "initial pile, 1..1000; 0 = drawn from the seed in 10..30"),
        ("max_take", "3", "most stones one turn may take, 1..9"),
        ("invalid_action", "error",
         "error: refuse an invalid action; penalize: the mover loses at once"),
    )

    def __init__(self, seed, options):
        opts = game_options(self, options)
        pile = int_option(opts, "pile", 0, 1000)
        self.max_take = int_option(opts, "max_take", 1, 9)
        if opts["invalid_action"] not in ("error", "penalize"):
            raise AgoraError(pb.ERROR_BAD_OPTION,
                             "invalid_action must be error or penalize")
        self.penalize = opts["invalid_action"] == "penalize"
        # One generator per episode, seeded only by the seed: the same seed and
        # the same actions give the same pile and the same bot moves. Each
        # seat's bot draws from a stream of its own, so it plays the same moves
        # whoever (a client, another bot) plays the other seat.
        self.rng = random.Random(seed)
        self.bot_rngs = [random.Random("%d/bot/%d" % (seed, seat))
                         for seat in range(len(self.roles))]
        self.pile = pile if pile else self.rng.randint(10, 30)
        self.start_pile = self.pile
        self.to_act = 0
        self.moves = 0
        self.winner = None
        self.reason = ""
        header = "nim\npile: %d, take 1 to %d, the last take wins\n" % (
            self.pile, self.max_take)
        self.pending = [header, header]  # text each seat has not seen yet

    def observe(self):
        """The new text for the seat to act; it is then marked as seen."""
        text = self.pending[self.to_act] + "you take: "
        self.pending[self.to_act] = ""
        return text

    def step(self, action):
        """Apply the action of the seat to act. Returns the rewards it earned
        per seat and whether it was an invalid action the game penalised."""
        seat = self.to_act
        take = self._parse(action)
        if take is None:
            if not self.penalize:  # refused: the state is unchanged
                raise AgoraError(pb.ERROR_INVALID_ACTION,
                                 "expected a number of stones from 1 to %d"
                                 % min(self.max_take, self.pile))
            return self._finish(1 - seat, "invalid"), True
        self.pile -= take
        self.moves += 1
        self.pending[seat] += "\n"  # ends the line the seat's action wrote
        self.pending[1 - seat] += "opponent took %d, pile: %d\n" % (take, self.pile)
        if self.pile == 0:
            return self._finish(seat, "last_take"), False
        self.to_act = 1 - seat
        return [0.0, 0.0], False

    def bot_action(self, bot):
        limit = min(self.max_take, self.pile)
        if bot == "perfect" and self.pile % (self.max_take + 1):
            return str(self.pile % (self.max_take + 1))
        return str(self.bot_rngs[self.to_act].randint(1, limit))

    @property
    def terminated(self):
        return self.winner is not None

    def info(self):
        return [("winner", str(self.winner)), ("reason", self.reason),
                ("start_pile", str(self.start_pile)),
                ("max_take", str(self.max_take))]

    def metrics(self):
        # With perfect play the first seat wins exactly when the start pile is
        # not a multiple of max_take + 1.
        first_should_win = self.start_pile % (self.max_take + 1) != 0
        return [("first_won", float(self.winner == 0)),
                ("moves", float(self.moves)),
                ("theory_winner_won",
                 float((self.winner == 0) == first_should_win))]

    def _parse(self, action):
        text = action.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 4:
            return None
        take = int(text)
        return take if 1 <= take <= min(self.max_take, self.pile) else None

    def _finish(self, winner, reason):
        self.winner, self.reason = winner, reason
        rewards = [-1.0, -1.0]
        rewards[winner] = 1.0
        return rewards


def game_options(game, options):
    """The game's options with the given (key, value) pairs on top of the
    defaults; BAD_OPTION for a key the game does not have or one given twice."""
    opts = {name: default for name, default, _ in game.options}
    seen = set()
    for key, value in options:
        if key not in opts or key in seen:
            raise AgoraError(pb.ERROR_BAD_OPTION, "option %r unknown or given twice" % key)
        seen.add(key)
        opts[key] = value
    return opts


def int_option(opts, key, low, high):
    value = opts[key].strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9 \
            or not low <= int(value) <= high:
        raise AgoraError(pb.ERROR_BAD_OPTION,
                         "option %s must be an integer in %d..%d" % (key, low, high))
    return int(value)


GAMES = {Nim.name: Nim}


# --------------------------------------------------------------------------
# Episodes: a game plus which seats the server plays.
# --------------------------------------------------------------------------

class Episode:
    def __init__(self, game_cls, seed, options, seat_bots):
        self.game = game_cls(seed, [(kv.key, kv.value) for kv in options])
        n = len(game_cls.roles)
        if seat_bots and len(seat_bots) != n:
            raise AgoraError(pb.ERROR_BAD_OPTION,
                             "seat_bots needs %d entries or none" % n)
        for bot in seat_bots:
            if bot and bot not in game_cls.bots:
                raise AgoraError(pb.ERROR_BAD_OPTION, "unknown bot %r" % bot)
        self.seat_bots = list(seat_bots) or [""] * n
        self.last_used = time.monotonic()

    def play_bots(self, rewards):
        """Let the server's bots move until a client seat must act or the game
        ends; their rewards are added to those of the step that led here."""
        while not self.game.terminated and self.seat_bots[self.game.to_act]:
            self.game.observe()
            action = self.game.bot_action(self.seat_bots[self.game.to_act])
            earned, _ = self.game.step(action)
            for seat, r in enumerate(earned):
                rewards[seat] += r
        return rewards


def check_limits(msg):
    """BAD_REQUEST if a string or repeated field of msg (or of a message in
    it) is longer than the protocol allows."""
    for field, value in msg.ListFields():
        name = "%s.%s" % (msg.DESCRIPTOR.name, field.name)
        repeated = field.label == field.LABEL_REPEATED
        limit = FIELD_LIMITS.get(name, MAX_REPEATED if repeated else MAX_STRING)
        if repeated and len(value) > limit:
            raise AgoraError(pb.ERROR_BAD_REQUEST,
                             "%s has more than %d entries" % (name, limit))
        for item in value if repeated else [value]:
            if field.type == field.TYPE_MESSAGE:
                check_limits(item)
            elif field.type == field.TYPE_STRING:
                cap = MAX_STRING if repeated else limit
                if len(item.encode()) > cap:
                    raise AgoraError(pb.ERROR_BAD_REQUEST,
                                     "%s is longer than %d bytes" % (name, cap))


def _find_game(name):
    if name not in GAMES:
        raise AgoraError(pb.ERROR_UNKNOWN_GAME, "no game %r here" % name)
    return GAMES[name]


def _fill_end(reply, game):
    reply.info.extend(pb.KeyValue(key=k, value=v) for k, v in game.info())
    declared = {spec[0] for spec in game.metric_specs}
    for name, value in game.metrics():
        if name not in declared:  # a bug of the game, not of the client
            raise AgoraError(pb.ERROR_INTERNAL, "metric %r is not declared" % name)
        reply.metrics.add(name=name, value=value)


# --------------------------------------------------------------------------
# The server: one request in, one reply out.
# --------------------------------------------------------------------------

class Server:
    def __init__(self, episode_ttl, max_episodes):
        self.episode_ttl = episode_ttl
        self.max_episodes = max_episodes
        # Least recently used first, so eviction only looks at the front.
        self.episodes = collections.OrderedDict()
        self.ids = random.SystemRandom()

    def handle(self, payload):
        """Serialized EnvRequest in, serialized EnvReply out; never raises."""
        reply = pb.EnvReply(protocol_version=PROTOCOL_VERSION)
        try:
            try:
                req = decode(pb.EnvRequest, payload)
            except DecodeError as e:
                reply.request_id = e.request_id
                raise AgoraError(pb.ERROR_BAD_REQUEST, e.why)
            reply.request_id = req.request_id
            check_limits(req)
            if req.protocol_version != PROTOCOL_VERSION:
                raise AgoraError(pb.ERROR_VERSION_MISMATCH,
                                 "this server speaks protocol version %d"
                                 % PROTOCOL_VERSION)
            body = req.WhichOneof("body")
            if body is None:
                raise AgoraError(pb.ERROR_BAD_REQUEST, "EnvRequest without a body")
            getattr(self, "_" + body)(getattr(req, body), reply)
        except AgoraError as e:
            _set_error(reply, e.code, e.message)
        except Exception as e:  # a bug here must not take the server down
            print("env_server: internal error: %r" % e, file=sys.stderr)
            _set_error(reply, pb.ERROR_INTERNAL, "internal error")
        return reply.SerializeToString()

    def _hello(self, req, reply):
        out = reply.hello
        out.server_name = "agora-python-example"
        out.protocol_version = PROTOCOL_VERSION
        out.max_message_bytes = MAX_REQUEST_BYTES
        out.episode_ttl_ms = int(self.episode_ttl * 1000)
        for cls in GAMES.values():
            spec = out.games.add(name=cls.name, num_players=len(cls.roles),
                                 description=cls.description)
            spec.roles.extend(cls.roles)
            spec.bots.extend(cls.bots)
            for name, default, help_text in cls.options:
                spec.options.add(name=name, default_value=default,
                                 description=help_text)
            for name, meaning, goal, headline in cls.metric_specs:
                spec.metrics.add(name=name, description=meaning, goal=goal,
                                 headline=headline)

    def _reset(self, req, reply):
        game_cls = _find_game(req.game)
        if len(self.episodes) >= self.max_episodes:
            raise AgoraError(pb.ERROR_OVERLOADED, "too many open episodes")
        ep = Episode(game_cls, req.seed, req.options, list(req.seat_bots))
        rewards = ep.play_bots([0.0] * len(game_cls.roles))
        out = reply.reset
        out.episode_id = self._new_id()
        out.num_players = len(game_cls.roles)
        out.rewards.extend(rewards)
        if ep.game.terminated:  # bots played the whole game: nothing to keep
            out.terminated = True
            _fill_end(out, ep.game)
            return
        out.to_act = ep.game.to_act
        out.observation = ep.game.observe()
        self.episodes[out.episode_id] = ep

    def _step(self, req, reply):
        ep = self._touch(req.episode_id)
        game = ep.game
        if req.player != game.to_act:
            raise AgoraError(pb.ERROR_NOT_YOUR_TURN,
                             "seat %d is to act, not %d" % (game.to_act, req.player))
        rewards, penalized = game.step(req.action)
        out = reply.step
        out.rewards.extend(ep.play_bots(rewards))
        out.invalid_action = penalized
        if game.terminated:
            # A finished episode is forgotten at once; Close on it says
            # UNKNOWN_EPISODE. to_act and observation stay empty.
            del self.episodes[req.episode_id]
            out.terminated = True
            _fill_end(out, game)
            return
        out.to_act = game.to_act
        out.observation = game.observe()

    def _demo(self, req, reply):
        game_cls = _find_game(req.game)
        if not 1 <= req.count <= MAX_DEMO_COUNT:
            raise AgoraError(pb.ERROR_BAD_REQUEST,
                             "count must be in 1..%d" % MAX_DEMO_COUNT)
        bots = list(req.bots) or list(game_cls.demo_bots)
        if len(bots) == len(game_cls.roles):  # "" = that seat's demo bot
            bots = [b or d for b, d in zip(bots, game_cls.demo_bots)]
        if len(bots) != len(game_cls.roles) or any(
                b not in game_cls.bots for b in bots):
            raise AgoraError(pb.ERROR_BAD_OPTION,
                             "Demo needs one of %s for each of the %d seats"
                             % ("/".join(game_cls.bots), len(game_cls.roles)))
        for i in range(req.count):
            seed = (req.seed + i) & 0xFFFFFFFFFFFFFFFF
            # An Episode whose seats are all clients, driven by the bots here,
            # so a demo shows exactly the texts a client would receive.
            ep = Episode(game_cls, seed, req.options, [])
            tr = reply.demo.transcripts.add(game=game_cls.name, seed=seed,
                                            num_players=len(game_cls.roles))
            returns = [0.0] * len(game_cls.roles)
            game = ep.game
            while not game.terminated:
                player = game.to_act
                observation = game.observe()
                action = game.bot_action(bots[player])
                rewards, _ = game.step(action)
                tr.turns.add(player=player, observation=observation,
                             action=action, rewards=rewards)
                returns = [a + b for a, b in zip(returns, rewards)]
            tr.returns.extend(returns)
            _fill_end(tr, game)

    def _close(self, req, reply):
        self._touch(req.episode_id)
        del self.episodes[req.episode_id]
        reply.close.SetInParent()

    def _touch(self, episode_id):
        ep = self.episodes.get(episode_id)
        if ep is None:
            raise AgoraError(pb.ERROR_UNKNOWN_EPISODE,
                             "no episode %d (never existed, finished, closed "
                             "or expired)" % episode_id)
        ep.last_used = time.monotonic()
        self.episodes.move_to_end(episode_id)
        return ep

    def _new_id(self):
        # Random ids: a client of a restarted server gets UNKNOWN_EPISODE
        # instead of stepping into someone else's episode.
        while True:
            episode_id = self.ids.getrandbits(63)
            if episode_id and episode_id not in self.episodes:
                return episode_id

    def evict(self):
        deadline = time.monotonic() - self.episode_ttl
        while self.episodes:
            episode_id, ep = next(iter(self.episodes.items()))
            if ep.last_used > deadline:
                break
            del self.episodes[episode_id]


def _set_error(reply, code, message):
    reply.error.code = code
    reply.error.message = message.encode("utf-8")[:MAX_ERROR_MESSAGE].decode(
        "utf-8", "ignore")


def bad_request_reply():
    reply = pb.EnvReply(protocol_version=PROTOCOL_VERSION)
    _set_error(reply, pb.ERROR_BAD_REQUEST,
               "expected frames [payload] or [empty][payload]")
    return reply.SerializeToString()


def serve(bind, episode_ttl, max_episodes):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    # Larger requests make ZeroMQ drop the connection before we see them.
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 15000)
    sock.setsockopt(zmq.LINGER, 0)
    # A reply to a peer that left raises instead of vanishing, so it is logged.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.bind(bind)
    print("env_server: listening on %s" % sock.getsockopt_string(zmq.LAST_ENDPOINT),
          file=sys.stderr, flush=True)

    server = Server(episode_ttl, max_episodes)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    while not stopping:
        if sock.poll(1000):
            frames = sock.recv_multipart()
            # [id][payload] from a DEALER, [id][empty][payload] from a REQ.
            identity, rest = frames[0], frames[1:]
            delimited = len(rest) >= 2 and rest[0] == b""
            body = rest[1:] if delimited else rest
            if len(body) == 1 and (delimited or body[0]):
                reply = server.handle(body[0])
            else:  # a lone empty frame, or too many frames
                reply = bad_request_reply()
            out = [identity, b"", reply] if delimited else [identity, reply]
            try:
                sock.send_multipart(out, flags=zmq.NOBLOCK)
            except zmq.ZMQError as e:
                # The peer left or does not read: it times out and retries.
                print("env_server: reply dropped: %s" % e, file=sys.stderr)
        server.evict()
    sock.close(linger=0)
    ctx.term()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="tcp://127.0.0.1:5571",
                        help="ZeroMQ endpoint to bind (default %(default)s)")
    parser.add_argument("--episode-ttl", type=float, default=300.0,
                        help="seconds an idle episode is kept (default %(default)s)")
    parser.add_argument("--max-episodes", type=int, default=10000,
                        help="open episodes before Reset says OVERLOADED")
    args = parser.parse_args()
    serve(args.bind, args.episode_ttl, args.max_episodes)


if __name__ == "__main__":
    main()
