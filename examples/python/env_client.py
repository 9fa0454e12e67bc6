"""A small blocking client for agora's environment protocol (docs/protocol.md).

One DEALER socket, one request in flight. Each request gets a fresh request_id;
replies carrying another id (late answers to an earlier, timed-out try) are
skipped. On a timeout the request is sent again with a new id, a bounded number
of times: Hello, Reset, Demo and Close are safe to repeat; a repeated Step may
answer NOT_YOUR_TURN if the first one was applied after all.

    with EnvClient("tcp://127.0.0.1:5570") as env:
        hello = env.hello("me")
        reset = env.reset("debate", seed=1)
        step = env.step(reset.episode_id, reset.to_act, "0 0 6 5 8 7 2 4")
"""

import itertools

import zmq

from agora_proto import PROTOCOL_VERSION, pb

MAX_REPLY_BYTES = 16 << 20


class EnvError(Exception):
    """An Error reply (code is a pb.ErrorCode value) or no reply at all (code None)."""

    def __init__(self, code, message):
        name = pb.ErrorCode.Name(code) if code is not None else "TIMEOUT"
        super().__init__("%s: %s" % (name, message))
        self.code = code
        self.message = message


class EnvClient:
    def __init__(self, endpoint, timeout_ms=3000, tries=3):
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.tries = tries
        self.ids = itertools.count(1)
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY_BYTES)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        self.sock.setsockopt(zmq.HEARTBEAT_TTL, 15000)
        self.sock.setsockopt(zmq.LINGER, 0)
        # Queue nothing for a server that is not connected (yet): a request
        # waits for a live connection instead of being lost in a dead pipe.
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.connect(endpoint)

    def close(self):
        self.sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, body_name, body):
        """Send one request with the given body; return the reply body message."""
        for _ in range(self.tries):
            req = pb.EnvRequest(protocol_version=PROTOCOL_VERSION,
                                request_id=next(self.ids))
            getattr(req, body_name).CopyFrom(body)
            if not self.sock.poll(self.timeout_ms, zmq.POLLOUT):
                continue
            self.sock.send(req.SerializeToString())
            reply = self._wait(req.request_id)
            if reply is None:
                continue
            kind = reply.WhichOneof("body")
            if kind == "error":
                raise EnvError(reply.error.code, reply.error.message)
            if kind != body_name:
                raise EnvError(pb.ERROR_BAD_REQUEST,
                               "server answered %s to %s" % (kind, body_name))
            return getattr(reply, kind)
        raise EnvError(None, "no reply from %s after %d tries"
                       % (self.endpoint, self.tries))

    def _wait(self, request_id):
        while self.sock.poll(self.timeout_ms):
            try:
                reply = pb.EnvReply.FromString(self.sock.recv_multipart()[-1])
            except Exception:
                continue  # not an EnvReply: not an answer to anything
            # request_id 0 is the server saying it could not decode a request;
            # with one request in flight, that can only be this one.
            if reply.request_id in (request_id, 0):
                return reply
        return None

    def hello(self, client_name=""):
        return self.call("hello", pb.HelloRequest(client_name=client_name))

    def reset(self, game, seed=0, options=None, seat_bots=()):
        req = pb.ResetRequest(game=game, seed=seed, seat_bots=list(seat_bots))
        for key, value in (options or {}).items():
            req.options.add(key=key, value=value)
        return self.call("reset", req)

    def step(self, episode_id, player, action):
        return self.call("step", pb.StepRequest(episode_id=episode_id,
                                                player=player, action=action))

    def demo(self, game, seed=0, count=1, bots=(), options=None):
        req = pb.DemoRequest(game=game, seed=seed, count=count, bots=list(bots))
        for key, value in (options or {}).items():
            req.options.add(key=key, value=value)
        return self.call("demo", req)

    def close_episode(self, episode_id):
        return self.call("close", pb.CloseRequest(episode_id=episode_id))
