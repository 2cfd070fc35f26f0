"""Render target-teams cards to PNG, as a person sees them in Teams: the official Adaptive Cards JS renderer
(npm `adaptivecards`, with Teams' light host config and markdown-it for TextBlock markdown) in headless Chromium.

    cd docs/cards && npm ci            # once: adaptivecards, markdown-it, playwright-core (node_modules is not committed)
    apt-get install chromium           # once, if /usr/bin/chromium is missing (playwright's own browser download is not used)
    .venv/bin/python docs/cards/render_cards.py

Each card is built from a sample IFS-like record through target_teams.cards (the packaged templates, the same update
banner and digest the target sends), posted to an in-process Teams stand-in that validates it, written to an HTML page
under docs/cards/build/ (ignored), and captured by screenshot.mjs at two widths: `<name>.png` at a desktop card width and
`<name>-narrow.png` at a phone-like width.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from html import escape
from pathlib import Path

import requests

from mlc_sandbox.teams import TeamsSandbox
from target_teams import cards
from target_teams.target import TargetTeams

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
DESKTOP_WIDTH = 450  # about the width Teams desktop gives a card in a channel conversation (no msteams.width "Full")
NARROW_WIDTH = 320  # a phone: 360 px screen less Teams' margins

# Sample records in the shapes the IFS stand-in (and so tap-ifscloud) emits: amounts as exact decimals with the
# scale IFS sends (GrossAmount carries 4 decimals), dates as ISO text, ids rather than names where IFS gives ids.
INVOICE = {
    "Company": "10", "InvoiceNo": "SI-2026-004187", "InvoiceId": 7000004187, "Identity": "S10001",
    "PurchaseOrderNo": "P1000427", "GrossAmount": Decimal("1234567.5000"), "CurrencyCode": "SEK",
    "Objstate": "AwaitingAuthorization", "AuthorizerId": None, "InvoiceDate": "2026-11-02", "DueDate": "2026-12-02",
    "etag": 'W/"SI-2026-004187:v1"',
}
PURCHASE_ORDER = {
    "OrderNo": "P1000427", "Company": "20", "Contract": "US-DE", "VendorNo": "S20044",
    "SupplierName": "Great Lakes Precision Machining and Industrial Fasteners Inc.", "Objstate": "Planned",
    "BuyerCode": "DANA", "AuthorizeCode": None, "TotalGrossAmount": Decimal("12450000.00000000000000000000"),
    "CurrencyCode": "USD", "OrderDate": "2026-11-03", "WantedReceiptDate": "2026-12-15",
}
VOUCHER = {
    "Company": "30", "VoucherType": "M", "AccountingYear": 2026, "VoucherNo": 104233, "Objstate": "AwaitingApproval",
    "VoucherDate": "2026-10-31", "VoucherText": "Period allocation: freight and customs accruals for October, "
    "cost centres 4100-4190 (Hamburg distribution centre)", "UserId": "FATIMA", "ApprovedByUserid": None,
    "TotalAmount": Decimal("-987654321.09"), "CurrencyCode": "EUR",
}
OTHER = {"Company": "10", "RequisitionNo": "R-55012", "Objstate": "Released"}  # a stream with no template of its own


def target() -> TargetTeams:
    """A configured target, only for its 'Open in IFS' links (nothing is started or sent)."""
    return TargetTeams(config={"channels": {"*": "general"}, "ifs_base_url": "https://acme.ifs.cloud"},
                       validate_config=True)


def card_for(teams: TargetTeams, stream: str, record: dict, keys: list[str]) -> tuple[dict, dict]:
    """The card and its digest line, built as TeamsSink does."""
    key = {k: record.get(k) for k in keys}
    url = teams.link_for(stream, record)
    card = cards.render(cards.load_template(stream, None), record,
                        {"ifs_url": url, "stream_title": stream.replace("_", " ").title(),
                         "record_title": " ".join(str(v) for v in key.values())})
    line = {"text": f"{card['body'][0].get('text', '')}: {cards.facts(card).get('Status', '')}", "url": url}
    return card, line


def build_cards() -> list[tuple[str, str, dict]]:
    """(file name, caption, card) for each card to look at."""
    teams = target()
    invoice, _ = card_for(teams, "posting_proposals", INVOICE, ["Company", "InvoiceNo"])
    order, _ = card_for(teams, "purchase_orders", PURCHASE_ORDER, ["OrderNo"])
    voucher, _ = card_for(teams, "vouchers", VOUCHER, ["Company", "VoucherType", "AccountingYear", "VoucherNo"])
    other, _ = card_for(teams, "purchase_requisitions", OTHER, ["RequisitionNo"])

    # an update: the invoice was authorised by ERIK and its amount corrected
    changed_invoice = {**INVOICE, "Objstate": "Authorized", "AuthorizerId": "ERIK",
                       "GrossAmount": Decimal("1234000.0000"), "etag": 'W/"SI-2026-004187:v2"'}
    after, _ = card_for(teams, "posting_proposals", changed_invoice, ["Company", "InvoiceNo"])
    update = cards.with_update_banner(after, cards.changes(cards.facts(invoice), cards.facts(after)))

    # a month-end surge of 57 invoices in one channel: one digest card (40 rows shown, then a count)
    lines = []
    for n in range(57):
        record = {**INVOICE, "InvoiceNo": f"SI-2026-{4200 + n:06d}", "GrossAmount": Decimal(1000 + 137 * n),
                  "Objstate": "Preliminary" if n % 3 else "AwaitingAuthorization"}
        _, line = card_for(teams, "posting_proposals", record, ["Company", "InvoiceNo"])
        if n == 5:  # one of them is an update of a card posted earlier, as the sink words it
            line["text"] += " (updated: Status: Preliminary → AwaitingAuthorization)"
        lines.append(line)
    digest = cards.digest_card(f"Posting Proposals: {len(lines)} to review", lines)

    return [
        ("supplier-invoice", "Supplier invoice (posting_proposals)", invoice),
        ("purchase-order", "Purchase order (purchase_orders)", order),
        ("gl-journal-entry", "GL journal entry (vouchers)", voucher),
        ("update", "Update of the supplier invoice (banner)", update),
        ("digest", "Digest of 57 supplier invoices", digest),
        ("default", "A stream without a template (default.json)", other),
    ]


def validate(built: list[tuple[str, str, dict]]) -> None:
    """Every card goes through the Teams stand-in's checks (Adaptive Card 1.5 schema, Teams' rules, size)."""
    with TeamsSandbox(port=0) as teams:
        url = teams.webhooks()["general"]
        for name, _, card in built:
            response = requests.post(url, json=cards.workflows_message(card), timeout=30)
            if response.status_code != 202:
                raise SystemExit(f"the Teams stand-in refused the {name} card: {response.status_code} {response.text}")
        assert len(teams.cards("general")) == len(built)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="../teams-like.css">
<script src="../node_modules/markdown-it/dist/markdown-it.min.js"></script>
<script src="../node_modules/adaptivecards/dist/adaptivecards.min.js"></script>
</head><body>
<div id="frame"><div class="caption"><b>IFS Notifications</b> &middot; {title}</div>
<div id="card" class="teams-card" style="width: {width}px"></div></div>
<script>
const card = {card};
const hostConfig = {host_config};
const md = window.markdownit();
AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {{
  result.outputHtml = md.render(text); result.didProcess = true;
}};
const adaptiveCard = new AdaptiveCards.AdaptiveCard();
adaptiveCard.hostConfig = new AdaptiveCards.HostConfig(hostConfig);
const context = new AdaptiveCards.SerializationContext();
adaptiveCard.parse(card, context);
const problems = [];
for (let i = 0; i < context.eventCount; i++) problems.push(context.getEventAt(i).message);
const validation = adaptiveCard.validateProperties();
for (let i = 0; i < validation.validationEvents.length; i++) problems.push(validation.validationEvents[i].message);
document.getElementById("card").appendChild(adaptiveCard.render());
window.cardProblems = problems;
document.fonts.ready.then(() => {{ window.cardRendered = true; }});
</script></body></html>
"""


def write_pages(built: list[tuple[str, str, dict]], out: Path) -> list[dict]:
    BUILD.mkdir(exist_ok=True)
    host_config = (HERE / "teams-light-hostconfig.json").read_text(encoding="utf-8")
    jobs = []
    for name, caption, card in built:
        for suffix, width in (("", DESKTOP_WIDTH), ("-narrow", NARROW_WIDTH)):
            page = BUILD / f"{name}{suffix}.html"
            page.write_text(PAGE.format(title=escape(caption), width=width, host_config=host_config,
                                        card=json.dumps(card, ensure_ascii=False, default=str).replace("</", "<\\/")),
                            encoding="utf-8")
            jobs.append({"html": str(page), "png": str(out / f"{name}{suffix}.png")})
    return jobs


def screenshot(jobs: list[dict]) -> list[dict]:
    if not (HERE / "node_modules" / "adaptivecards").is_dir():
        print("installing the renderer (npm ci in docs/cards) ...")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    if not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"):
        raise SystemExit("Chromium is missing: apt-get install chromium")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(jobs, handle)
    done = subprocess.run(["node", str(HERE / "screenshot.mjs"), handle.name], cwd=HERE, capture_output=True, text=True)
    Path(handle.name).unlink()
    if done.returncode != 0:
        raise SystemExit(f"screenshot.mjs failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs (default: docs/cards)")
    parser.add_argument("--no-validate", action="store_true", help="skip the Teams stand-in's checks")
    args = parser.parse_args()
    built = build_cards()
    if not args.no_validate:
        validate(built)
        print(f"{len(built)} cards accepted by the Teams stand-in")
    args.out.mkdir(parents=True, exist_ok=True)
    results = screenshot(write_pages(built, args.out))
    trouble = 0
    for result in results:
        notes = result["problems"] + result["console"]
        trouble += bool(notes)
        print(f"{Path(result['png']).name}: {'; '.join(notes) if notes else 'rendered, no renderer warnings'}")
    sys.exit(1 if trouble else 0)


if __name__ == "__main__":
    main()
