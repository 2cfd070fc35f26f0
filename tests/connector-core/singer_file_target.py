"""A tiny Singer target for the replay tests, run as its own process.

It appends every message line it reads, exactly as received, to the file named by --output, and exits 3 on a
record carrying "fail_replay": true (after writing what came before it), or 4 on a RECORD before its stream's SCHEMA.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    schemas: set[str] = set()
    with open(args.output, "a", encoding="utf-8") as output:
        for line in sys.stdin:
            message = json.loads(line, parse_float=Decimal)
            if message["type"] == "SCHEMA":
                schemas.add(message["stream"])
            elif message["type"] == "RECORD":
                if message["stream"] not in schemas:
                    print(f"target: RECORD for stream {message['stream']} before its SCHEMA", file=sys.stderr)
                    return 4
                if message["record"].get("fail_replay") is True:
                    print("target: loading batch", file=sys.stderr)
                    print(f"target: refusing record {message['record'].get('id')} (fail_replay)", file=sys.stderr)
                    return 3
            output.write(line)
    print("target: done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
