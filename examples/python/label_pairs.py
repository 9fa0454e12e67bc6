#!/usr/bin/env python3
"""Post preference and outcome labels from a JSONL file to an agora reward server.

The same as `agora-label`, written only from the protocol (docs/protocol.md §13),
as a starting point for labelling from your own tools. Each line is one label:

    {"transcript_a": "...", "transcript_b": "...", "preferred": "a"}     (or "b", 0, 1;
         optional "seat_a", "seat_b", "game", "weight")
    {"transcript": "...", "label": 1}                                  (label in [0, 1];
         optional "seat", "game", "weight")

A transcript is one seat's view of a game: every observation and action text it
saw or sent, concatenated (docs/games.md). Malformed lines are reported and
skipped; the rest go out as LabelRequests of at most --batch labels, each
under a batch id "label_pairs/<random 64-bit hex, one per run>/<n>" that every
resend of it repeats, so a retry after a lost reply is learnt once (the server
answers it as a duplicate). Prints

    lines=14 malformed=0 sent=14 accepted=14 rejected=0 duplicate=0

and exits 0 if every valid label was accepted, 1 if lines were malformed or
labels rejected, 2 if the server could not be reached or refused a request.

    python3 label_pairs.py ../reward-pairs.jsonl --reward tcp://127.0.0.1:5560
"""

import argparse
import itertools
import json
import secrets
import sys
import time

import zmq

from agora_proto import PROTOCOL_VERSION, pb

MAX_TRANSCRIPT = 65536       # bytes of UTF-8, docs/protocol.md §6
MAX_GAME = 64
MAX_LABELS = 256             # per request
MAX_MESSAGE = 16 << 20       # the reward socket's ZMQ_MAXMSGSIZE
MAX_LINE = 2 * MAX_TRANSCRIPT * 6 + 65536  # two transcripts, every byte \u-escaped
FLT_MAX = 3.4028234663852886e38  # weights and labels travel as float32

PREF_KEYS = {"transcript_a", "transcript_b", "preferred", "seat_a", "seat_b"}
OUTCOME_KEYS = {"transcript", "label", "seat"}
COMMON_KEYS = {"game", "weight"}


class Malformed(Exception):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Malformed("duplicate key")
    return dict(pairs)


def _reject_constant(name):
    raise Malformed("%s is not JSON" % name)


def _string(obj, key, limit, default=None):
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise Malformed('missing "%s"' % key if value is None else '"%s" must be a string' % key)
    if "\0" in value:
        raise Malformed('"%s" contains a NUL character (\\u0000)' % key)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise Malformed('"%s" is not valid UTF-8 (a lone surrogate)' % key) from None
    if size > limit:
        raise Malformed('"%s" is %d bytes, over the protocol\'s limit of %d' % (key, size, limit))
    return value


def _number(obj, key, lo, hi, default=None):
    value = obj.get(key, default)
    if value is None:
        raise Malformed('missing "%s"' % key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise Malformed('"%s" must be a number >= %g' % (key, lo) if hi == FLT_MAX else
                        '"%s" must be a number in [%g, %g]' % (key, lo, hi))
    return float(value)


def _seat(obj, key):
    value = obj.get(key, 0)
    if type(value) is not int or not 0 <= value < 2**32:
        raise Malformed('"%s" must be an integer in 0..%d' % (key, 2**32 - 1))
    return value


def parse_label(line):
    """One JSONL line -> a pb.Preference or pb.Outcome; raises Malformed."""
    if b"\0" in line:
        raise Malformed("contains a NUL byte")
    try:
        obj = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Malformed("not valid JSON: %s" % e) from None
    if not isinstance(obj, dict):
        raise Malformed("not a JSON object")
    is_pref, is_outcome = bool(PREF_KEYS & obj.keys()), bool(OUTCOME_KEYS & obj.keys())
    if is_pref == is_outcome:
        raise Malformed("mixes preference and outcome keys" if is_pref else
                        "neither a preference (transcript_a, transcript_b, preferred) "
                        "nor an outcome (transcript, label)")
    allowed = (PREF_KEYS if is_pref else OUTCOME_KEYS) | COMMON_KEYS
    unknown = sorted(obj.keys() - allowed)
    if unknown:
        raise Malformed('unknown key "%s"' % unknown[0])
    game = _string(obj, "game", MAX_GAME, default="")
    weight = _number(obj, "weight", 0, FLT_MAX, default=0)  # 0 means 1
    if not is_pref:
        item = pb.ScoreItem(transcript=_string(obj, "transcript", MAX_TRANSCRIPT),
                            seat=_seat(obj, "seat"), game=game)
        return pb.Outcome(item=item, label=_number(obj, "label", 0, 1), weight=weight)
    preferred = obj.get("preferred")
    if not (preferred in ("a", "b") or (type(preferred) is int and preferred in (0, 1))):
        raise Malformed('"preferred" must be "a", "b", 0 or 1')
    a = pb.ScoreItem(transcript=_string(obj, "transcript_a", MAX_TRANSCRIPT),
                     seat=_seat(obj, "seat_a"), game=game)
    b = pb.ScoreItem(transcript=_string(obj, "transcript_b", MAX_TRANSCRIPT),
                     seat=_seat(obj, "seat_b"), game=game)
    return pb.Preference(a=a, b=b, preferred=1 if preferred in ("b", 1) else 0, weight=weight)


def bounded_lines(f):
    """Yield (line, length): a line longer than MAX_LINE is cut there (its
    length says so) and the rest of it skipped, so no line costs more memory."""
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        length, rest = len(line.rstrip(b"\n")), line
        while not rest.endswith(b"\n"):
            rest = f.readline(MAX_LINE + 1)
            if not rest:
                break
            length += len(rest.rstrip(b"\n"))
        yield line[:MAX_LINE], length


def read_labels(f, counts, batch):
    """Yield lists of valid labels (at most `batch`, and small enough for one
    message), reporting malformed lines on stderr as NAME:LINE: reason."""
    labels, size = [], 0
    for lineno, (line, length) in enumerate(bounded_lines(f), start=1):
        counts["lines"] = lineno
        if not line.strip():
            continue
        try:
            if length > MAX_LINE:
                raise Malformed("line is %d bytes, longer than any valid label can be" % length)
            label = parse_label(line)
        except Malformed as e:
            counts["malformed"] += 1
            print("%s:%d: %s; skipped" % (f.name, lineno, e), file=sys.stderr)
            continue
        cost = label.ByteSize() + 6  # field tag and length prefix
        if labels and size + cost > MAX_MESSAGE - 1024:
            yield labels
            labels, size = [], 0
        labels.append(label)
        size += cost
        if len(labels) == batch:
            yield labels
            labels, size = [], 0
    if labels:
        yield labels


class RewardClient:
    """One DEALER, one request in flight, a fresh request_id per attempt."""

    def __init__(self, endpoint, timeout_ms, tries):
        self.endpoint, self.timeout_ms, self.tries = endpoint, timeout_ms, tries
        self.ids = itertools.count(int(time.time() * 1000) << 16)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.connect(endpoint)

    def call(self, **body):
        """Send a RewardRequest with the given body; return the RewardReply.
        Raises TimeoutError after `tries` unanswered attempts. Every attempt
        carries the same body: a Label with a batch_id is learnt once however
        often it is resent."""
        for _ in range(self.tries):
            req = pb.RewardRequest(protocol_version=PROTOCOL_VERSION, request_id=next(self.ids),
                                   **body)
            if not self.sock.poll(self.timeout_ms, zmq.POLLOUT):
                continue
            self.sock.send(req.SerializeToString())
            deadline = time.monotonic() + self.timeout_ms / 1000
            while self.sock.poll(max(0, deadline - time.monotonic()) * 1000):
                try:
                    reply = pb.RewardReply.FromString(self.sock.recv_multipart()[-1])
                except Exception:
                    continue  # not a RewardReply: not an answer to anything
                if reply.request_id in (req.request_id, 0):  # 0: our bytes did not decode
                    return reply
        raise TimeoutError("no reply from %s after %d tries" % (self.endpoint, self.tries))


def post(client, model, labels, batch_id, max_wait_s):
    """One LabelRequest; resent with a growing pause while the server is OVERLOADED."""
    body = pb.LabelRequest(model=model, batch_id=batch_id,
                           preferences=[x for x in labels if isinstance(x, pb.Preference)],
                           outcomes=[x for x in labels if isinstance(x, pb.Outcome)])
    pause, waited = 0.1, 0.0
    while True:
        reply = client.call(label=body)
        if reply.WhichOneof("body") == "label":
            return reply.label
        if reply.WhichOneof("body") != "error":
            raise RuntimeError("unexpected reply %s" % reply.WhichOneof("body"))
        if reply.error.code != pb.ERROR_OVERLOADED or waited + pause > max_wait_s:
            raise RuntimeError("%s: %s" % (pb.ErrorCode.Name(reply.error.code),
                                           reply.error.message))
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, 5.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="JSONL labels, - for stdin")
    parser.add_argument("--reward", required=True, help="e.g. tcp://127.0.0.1:5560")
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=MAX_LABELS, choices=range(1, MAX_LABELS + 1),
                        metavar="1..256")
    parser.add_argument("--timeout-ms", type=int, default=5000)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="seconds to keep resending while the server is OVERLOADED")
    args = parser.parse_args()
    if not 1 <= len(args.model.encode()) <= 64:
        parser.error("a model name is 1..64 bytes")

    counts = dict(lines=0, malformed=0, sent=0, accepted=0, rejected=0, duplicate=0)
    status = 0
    f = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    client = RewardClient(args.reward, args.timeout_ms, args.tries)
    run = secrets.token_hex(8)  # a new run posts the file again, as a user expects
    try:
        for n, labels in enumerate(read_labels(f, counts, args.batch)):
            counts["sent"] += len(labels)
            reply = post(client, args.model, labels, "label_pairs/%s/%d" % (run, n), args.max_wait)
            counts["accepted"] += reply.accepted
            counts["rejected"] += reply.rejected
            counts["duplicate"] += reply.duplicate
    except (TimeoutError, RuntimeError) as e:
        print("label_pairs: %s" % e, file=sys.stderr)
        status = 2
    finally:
        client.sock.close(linger=0)
    print(" ".join("%s=%d" % kv for kv in counts.items()))
    if status == 0 and (counts["malformed"] or counts["rejected"]
                        or counts["accepted"] < counts["sent"]):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
