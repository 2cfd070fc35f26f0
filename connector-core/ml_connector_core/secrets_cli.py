"""`mlc-secret`: create a key and seal secrets for ml-connector settings."""

from __future__ import annotations

import argparse
import getpass
import sys

from ml_connector_core.secrets import SecretKeyError, generate_key, seal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlc-secret", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("generate-key", help="print a new key; keep it outside the project (env var or key file)")
    seal_parser = commands.add_parser(
        "seal", help="read a secret (prompted, or from standard input when piped) and print its sealed form"
    )
    seal_parser.add_argument("--stdin", action="store_true", help="read the secret from standard input")
    args = parser.parse_args(argv)

    if args.command == "generate-key":
        print(generate_key())
        return 0
    plaintext = sys.stdin.readline().rstrip("\n") if args.stdin or not sys.stdin.isatty() else getpass.getpass("secret: ")
    if not plaintext:
        print("mlc-secret: nothing to seal (empty secret)", file=sys.stderr)
        return 2
    try:
        print(seal(plaintext))
    except SecretKeyError as exc:
        print(f"mlc-secret: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
