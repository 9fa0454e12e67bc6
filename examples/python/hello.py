#!/usr/bin/env python3
"""Ask an agora environment server what it hosts; print the HelloReply as JSON.

    python3 hello.py tcp://127.0.0.1:5570
    python3 hello.py tcp://127.0.0.1:5570 --wait 10   # retry until it answers

Exits 0 once the server answered, 2 if it did not within --wait seconds.
"""

import argparse
import json
import sys
import time

from google.protobuf import json_format

from env_client import EnvClient, EnvError


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="keep trying for this many seconds (default: one try)")
    args = parser.parse_args()

    deadline = time.monotonic() + args.wait
    while True:
        try:
            # A short timeout per try: an unstarted server costs 200 ms a try.
            with EnvClient(args.endpoint, timeout_ms=200, tries=1) as env:
                hello = env.hello("agora-python-hello")
            break
        except EnvError as e:
            if time.monotonic() >= deadline:
                print("hello: %s" % e, file=sys.stderr)
                return 2
    print(json.dumps(json_format.MessageToDict(hello), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
