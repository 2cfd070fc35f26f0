"""`mlc-secret`: create a key and seal secrets for ml-connector settings."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from ml_connector_core.secrets import KEY_FILE_ENV, SEALED_PREFIX, SecretKeyError, generate_key, seal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlc-secret", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser(
        "generate-key", help="print a new key, or write it to a file; keep it outside the project (env var or key file)")
    generate.add_argument(
        "--output", metavar="PATH", type=Path,
        help=f"write the key to this new file (mode 0600; missing folders are created with mode 0700) instead of "
             f"printing it; then point {KEY_FILE_ENV} at it. An existing file is never overwritten.")
    seal_parser = commands.add_parser(
        "seal", help="read a secret (prompted, or from standard input when piped) and print its sealed form"
    )
    seal_parser.add_argument("--stdin", action="store_true", help="read the secret from standard input")
    seal_parser.add_argument(
        "--json", action="store_true",
        help="read a JSON object from standard input and print it with every text value sealed: an object setting "
             "whose values are secrets (target-teams' webhooks, target-databricks' storage_options)")
    args = parser.parse_args(argv)

    if args.command == "generate-key":
        if args.output is None:
            print(generate_key())
            return 0
        output = args.output.expanduser().absolute()
        try:
            write_key_file(output, generate_key())
        except FileExistsError as exc:
            print(f"mlc-secret: {exc.filename or output} already exists: not overwritten (a key in use would be lost)",
                  file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"mlc-secret: cannot write the key to {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"key written to {output}; set {KEY_FILE_ENV}={output}", file=sys.stderr)
        return 0
    if args.json:
        return _seal_json(sys.stdin.read())
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


def _seal_json(text: str) -> int:
    try:
        document = json.loads(text)
    except ValueError as exc:
        print(f"mlc-secret: standard input is not JSON ({exc.msg} at character {exc.pos})", file=sys.stderr)
        return 2
    if not isinstance(document, dict):
        print("mlc-secret: --json seals the values of a JSON object; standard input holds another JSON value",
              file=sys.stderr)
        return 2

    def sealed(value):
        if isinstance(value, str):
            return value if value.startswith(SEALED_PREFIX) else seal(value)
        if isinstance(value, dict):
            return {name: sealed(item) for name, item in value.items()}
        if isinstance(value, list):
            return [sealed(item) for item in value]
        return value

    try:
        print(json.dumps(sealed(document)))
    except SecretKeyError as exc:
        print(f"mlc-secret: {exc}", file=sys.stderr)
        return 2
    return 0


def write_key_file(path: Path, key: str) -> None:
    """Create ``path`` holding ``key``: missing folders mode 0700, the file 0600 from the moment it exists (created
    with that mode and O_EXCL, so it is never readable by others, not even briefly, and never replaces a file)."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        os.mkdir(folder, 0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
