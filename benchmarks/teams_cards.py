"""target-teams against the Teams stand-in: cards per second delivered through Workflows webhooks, versus a plain
requests loop posting the same card envelopes to the same webhook URLs.

    .venv/bin/python benchmarks/teams_cards.py --records 2000

One in-process Teams stand-in (it validates every card: Adaptive Card 1.5 schema, Teams' rules, size) serves both
senders in the same run. The plain loop gets the envelopes ready-made (rendered beforehand with target_teams.cards,
exactly as the target renders them) and only posts them, from a child process of its own like the target, so neither
client shares the stand-in's interpreter. target-teams runs as Meltano runs it: its own process reading Singer
messages on stdin, one card per record (digest off), each send written to its audit trail (SQLite). Its rate is
given over the whole process and again without its start-up (the time of a run with no records).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec

from mlc_sandbox.teams import TeamsSandbox
from plugin_runs import CLOSING_STATE, target_command
from target_teams import cards
from target_teams.target import TargetTeams

BIN = Path(sys.executable).parent
STREAM = "posting_proposals"
KEYS = ["Company", "InvoiceNo"]
SCHEMA = {
    "Company": {"type": ["string"]}, "InvoiceNo": {"type": ["string"]}, "Identity": {"type": ["string", "null"]},
    "PurchaseOrderNo": {"type": ["string", "null"]}, "GrossAmount": {"type": ["number", "null"]},
    "CurrencyCode": {"type": ["string", "null"]}, "Objstate": {"type": ["string", "null"]},
    "AuthorizerId": {"type": ["string", "null"]}, "InvoiceDate": {"type": ["string", "null"], "format": "date"},
    "DueDate": {"type": ["string", "null"], "format": "date"}, "Rowversion": {"type": ["string"], "format": "date-time"},
    "etag": {"type": ["string", "null"]},
}
COMPANIES = (("10", "SEK"), ("20", "USD"), ("30", "EUR"), ("40", "NOK"))  # 40 has no channel of its own: general
CHANNELS = {"10": "company-10", "20": "company-20", "30": "company-30", "*": "general"}
_encoder = msgspec.json.Encoder(decimal_format="number")  # decimals as JSON numbers, as a Singer tap writes them


def records(count: int) -> list[dict]:
    out = []
    for n in range(count):
        company, currency = COMPANIES[n % len(COMPANIES)]
        out.append({"Company": company, "InvoiceNo": f"SI-{n:07d}", "Identity": f"S{10000 + n % 500}",
                    "PurchaseOrderNo": f"P{1000000 + n}" if n % 5 else None,
                    "GrossAmount": Decimal(1000 + n * 37) + Decimal("0.2500"), "CurrencyCode": currency,
                    "Objstate": "AwaitingAuthorization" if n % 3 else "Preliminary", "AuthorizerId": None,
                    "InvoiceDate": "2026-11-02", "DueDate": "2026-12-02",
                    "Rowversion": f"2026-11-02T10:{n // 60 % 60:02d}:{n % 60:02d}Z", "etag": f'W/"{n}:1"'})
    return out


def config_for(teams: TeamsSandbox, workdir: Path, name: str) -> dict:
    return {"channels": CHANNELS, "webhooks": teams.webhooks(), "ifs_base_url": "https://acme.ifs.cloud",
            "digest": "off", "audit_url": f"sqlite:///{workdir / f'{name}.sqlite'}"}


def envelopes(teams: TeamsSandbox, rows: list[dict]) -> list[tuple[str, dict]]:
    """(webhook URL, message) per record: the card the target would render, in the Workflows envelope."""
    target = TargetTeams(config={"channels": CHANNELS, "ifs_base_url": "https://acme.ifs.cloud"})
    template, webhooks = cards.load_template(STREAM, None), teams.webhooks()
    out = []
    for record in rows:
        key = {k: record.get(k) for k in KEYS}
        card = cards.render(template, record, {"ifs_url": target.link_for(STREAM, record),
                                               "stream_title": STREAM.replace("_", " ").title(),
                                               "record_title": " ".join(str(v) for v in key.values())})
        out.append((webhooks[target.channel_for(record)], cards.workflows_message(card)))
    return out


def plain_worker(path: str) -> None:
    """Child process: post each envelope with one requests.Session; print the loop's seconds."""
    import requests

    jobs = json.loads(Path(path).read_text())
    session = requests.Session()
    started = time.perf_counter()
    for url, message in jobs:
        response = session.post(url, json=message, timeout=30)
        if response.status_code != 202:
            raise SystemExit(f"the stand-in answered {response.status_code}: {response.text[:300]}")
    print(time.perf_counter() - started)


def plain_loop(teams: TeamsSandbox, rows: list[dict], workdir: Path) -> float:
    jobs = workdir / "envelopes.json"
    jobs.write_text(json.dumps(envelopes(teams, rows), default=str))
    done = subprocess.run([sys.executable, __file__, "--plain-worker", str(jobs)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"plain loop failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def target_run(teams: TeamsSandbox, rows: list[dict], workdir: Path, name: str) -> float:
    config = workdir / f"{name}-config.json"
    config.write_text(json.dumps(config_for(teams, workdir, name)))
    messages = [{"type": "SCHEMA", "stream": STREAM, "schema": {"type": "object", "properties": SCHEMA},
                 "key_properties": KEYS, "bookmark_properties": ["Rowversion"]}]
    messages += [{"type": "RECORD", "stream": STREAM, "record": r} for r in rows]
    messages.append(CLOSING_STATE)  # as a tap's complete sync ends (without it the empty run is failed: no input)
    stdin = b"".join(_encoder.encode(m) + b"\n" for m in messages)
    started = time.perf_counter()
    done = subprocess.run(target_command("target-teams", config, name), input=stdin, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"target-teams exited {done.returncode}:\n{done.stderr.decode()[-3000:]}")
    return elapsed


def delivered(teams: TeamsSandbox) -> int:
    count = len(teams.messages())
    if teams.rejections():
        raise SystemExit(f"the stand-in refused cards: {teams.rejections()[:3]}")
    teams.reset()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--plain-worker", help=argparse.SUPPRESS)
    parser.add_argument("--keep-trail", type=Path, default=None,
                        help="copy target-teams' audit trail (SQLite) there at the end (benchmarks/audit_trail.py --trail)")
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(args.plain_worker)
        return

    rows = records(args.records)
    with TeamsSandbox(port=0) as teams, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"Teams stand-in at {teams.base_url}; {args.records:,} supplier invoices over "
              f"{len(set(CHANNELS.values()))} channels, one card each (digest off) ...")
        startup = target_run(teams, [], workdir, "empty")
        delivered(teams)
        plain_seconds = plain_loop(teams, rows, workdir)
        plain_cards = delivered(teams)
        target_seconds = target_run(teams, rows, workdir, "run")
        target_cards = delivered(teams)
        if args.keep_trail:
            shutil.copyfile(workdir / "run.sqlite", args.keep_trail)

    plain_rate, target_rate = plain_cards / plain_seconds, target_cards / target_seconds
    steady_rate = target_cards / max(target_seconds - startup, 1e-9)
    print(f"plain requests loop         : {plain_cards:>7,} cards in {plain_seconds:6.2f} s = {plain_rate:>7,.0f} cards/s")
    print(f"target-teams (subprocess)   : {target_cards:>7,} cards in {target_seconds:6.2f} s = {target_rate:>7,.0f} cards/s")
    print(f"  less start-up ({startup:4.2f} s)    : {target_cards:>7,} cards in {target_seconds - startup:6.2f} s = "
          f"{steady_rate:>7,.0f} cards/s")
    print(f"ratio target / plain        : {target_rate / plain_rate:.2f}  (without start-up: {steady_rate / plain_rate:.2f})")
    if target_cards != args.records or plain_cards != args.records:
        print(f"WARNING: cards delivered differ from records (target {target_cards:,}, plain {plain_cards:,}, "
              f"records {args.records:,})")


if __name__ == "__main__":
    main()
