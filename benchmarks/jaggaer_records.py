"""target-jaggaer and tap-jaggaer against the JAGGAER stand-in: records per second written (suppliers, purchase orders
with three lines) over three runs, and invoices per second read back, each against a plain requests loop.

    .venv/bin/python benchmarks/jaggaer_records.py --records 1200

Writing. N suppliers (stream `jaggaer_suppliers`) and N purchase orders with 3 lines each (`jaggaer_purchase_orders`,
lines as JSON text with decimal strings and IFS midnight timestamps, as mappers/jaggaer.meltano.yml writes them), each
order naming one of the suppliers. Each sender gets a fresh JAGGAER stand-in of its own (`mlc-sandbox serve jaggaer
--rate-limit 0`, a child process: the stand-in does not pace anyone) and goes through three runs in a row on it:
  1. create: every record is new (a lookup and a POST each),
  2. same: the same records again (nothing differs: lookups only, nothing written),
  3. changed: the same records with every tenth record of each stream changed (supplier name, a line's unit price):
     a lookup each, a PUT for the changed ones.

target-jaggaer runs as Meltano runs it: its own process reading Singer messages on stdin, with one audit trail
(SQLite) for its three runs. Its input comes in the order tap-ifscloud emits the streams (by name: purchase orders
before suppliers), so it holds the orders until the suppliers are written, as in a real run. It is given
`requests_per_minute` 1000000, i.e. no client-side pacing, so that the figures show its own costs; what its default
budget of 300 requests/minute implies is printed separately. Its rates are given over the whole process and again
without its start-up (the time of a run with no records). Its peak RSS is the kernel's high-water mark (VmHWM) polled
from /proc (see databricks_pipeline.peak_rss_mb for why not wait4()).

The plain loop (in this process, one requests.Session per run, as a new process would have) does per run: one
client-credentials token, then per record, suppliers first, `GET /api/v1/<collection>?externalId=<key>`, then `POST`
when JAGGAER has no such record, or `PUT` (a full replace, fields we do not send kept as JAGGAER holds them) only when a
field we send differs, compared as exact decimals; that is the least a correct client can do without writing unchanged
records (each write moves lastModified and would send the record back to IFS). Bodies, comparison and replace body are
target-jaggaer's own (jaggaer_body, differences, replacement_body), so both send exactly the same. On 401 it gets one
new token and tries again, on 429 it waits Retry-After; the stand-in is not asked for faults, so neither happens here.

Reading. Then M = 2N invoices with 3 lines are submitted through the stand-in's admin (as suppliers would, two per
purchase order: the orders as run 3 left them, every fifth invoice at a unit price its order does not have) into the
stand-in target-jaggaer wrote to, and both readers read them all on it:
- tap-jaggaer (its own process, stdout to /dev/null): streams invoices and invoice_lines, pages of 500, the
  invoice/purchase order check fetching each order once (`requests_per_minute` 1000000 again); records emitted are
  taken from its METRIC record_count lines, its start-up from a run that reads nothing;
- the plain loop: `GET /api/v1/invoices?modifiedSince=...&page=n&pageSize=500` until hasMore is false, decoded with
  exact decimals, each referenced order fetched once (`GET /api/v1/purchase-orders?externalId=`), each invoice checked
  with tap-jaggaer's own po_discrepancies and written with its lines as JSON lines to /dev/null.

Requests are counted from the stand-in's request log (which keeps the last 5,000: beyond that a warning says so and the
senders' own counts are shown; target-jaggaer's is the api_requests of its audit run summary). At the end the records
both writers left behind are compared field by field, and the invoices both readers flagged.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from ml_connector_core.audit import AuditTrail
from mlc_sandbox.jaggaer import JaggaerSandboxProcess
from plugin_runs import BIN, fed_target, json_encoder, records_argument, shown_mb, total, watched
from tap_jaggaer.streams import po_discrepancies
from target_jaggaer.writer import PURCHASE_ORDER, SUPPLIER, Route, differences, jaggaer_body, replacement_body

UNPACED = 1_000_000  # requests_per_minute given to the plugins: no client-side pacing
DEFAULT_BUDGET = 300  # requests_per_minute the plugins default to
REQUEST_LOG_SIZE = 5000  # the stand-in's request log keeps this many
PAGE_SIZE = 500  # JAGGAER's largest page
LINES_PER_ORDER = 3
INVOICES_PER_ORDER = 2
CHANGED_EVERY = 10  # run 3 changes every tenth record of each stream
PRICE_RAISE = Decimal("1.25")
INVOICE_PRICE_OFF_EVERY = 5  # every fifth invoice bills a unit price its order does not have
AMOUNT_TOLERANCE = Decimal("0.01")  # tap-jaggaer's default
START = "2000-01-01T00:00:00Z"

TEXT = {"type": ["string", "null"]}
# Streams in the order tap-ifscloud emits them (by name); the plain loop writes suppliers first.
STREAMS = {
    "jaggaer_purchase_orders": {
        "route": Route("jaggaer_purchase_orders", PURCHASE_ORDER),
        "schema": {name: TEXT for name in ("externalId", "supplierExternalId", "companyCode", "orderDate", "currency",
                                           "buyer", "status", "lines")},
    },
    "jaggaer_suppliers": {
        "route": Route("jaggaer_suppliers", SUPPLIER),
        "schema": {name: TEXT for name in ("externalId", "name", "country", "currency", "status", "taxId",
                                           "category")},
    },
}
TARGET_STREAMS = {stream: {"object": spec["route"].kind.name} for stream, spec in STREAMS.items()}
SUPPLIERS_FIRST = ("jaggaer_suppliers", "jaggaer_purchase_orders")
COUNTRIES = (("10", "SE", "SEK"), ("20", "US", "USD"), ("30", "DE", "EUR"), ("40", "NO", "NOK"))
SUPPLIER_NAMES = ("Nordic Steel", "Acme Fasteners", "Rhein Hydraulik", "Bergen Marine", "Lund Electronics")
CATEGORIES = ("Components", "Raw material", "Services", "Packaging")
BUYERS = ("ANNA", "LARS", "MARIA", "ERIK")
UNITS = ("EA", "KG", "BOX")


def supplier_id(n: int) -> str:
    return f"S{100000 + n}"


def order_no(n: int) -> str:
    return f"P{1000000 + n}"


def order_supplier(n: int, count: int) -> int:
    return n * 7 % count


def order_lines(n: int, *, changed: bool = False) -> list[dict]:
    lines = []
    for line in range(1, LINES_PER_ORDER + 1):
        price = Decimal(10 + (n * 13 + line) % 500) + Decimal((n * 7 + line) % 100) / 100
        if changed and n % CHANGED_EVERY == 0 and line == 2:
            price += PRICE_RAISE
        lines.append({"lineNumber": line, "description": f"Item {line} of {order_no(n)}",
                      "quantity": str(1 + (n + line) % 20), "unitOfMeasure": UNITS[(n + line) % len(UNITS)],
                      "unitPrice": str(price), "glAccount": f"4{(n + line) % 90 + 10:03d}",
                      "costCenter": f"CC{100 + n % 40}", "deliveryDate": f"2026-04-{line + n % 25:02d}T00:00:00Z"})
    return lines


def input_records(count: int, *, changed: bool = False) -> dict[str, list[dict]]:
    """Records per stream as mappers/jaggaer.meltano.yml shapes them; `changed` alters every tenth of each stream."""
    suppliers = []
    for n in range(count):
        _, country, currency = COUNTRIES[n % len(COUNTRIES)]
        suppliers.append({
            "externalId": supplier_id(n),
            "name": f"{SUPPLIER_NAMES[n % len(SUPPLIER_NAMES)]} {n}" + (" (renamed)" if changed and n % CHANGED_EVERY == 0
                                                                        else ""),
            "country": country, "currency": currency, "status": "ACTIVE", "taxId": f"{country}{5560000000 + n}",
            "category": CATEGORIES[n % len(CATEGORIES)]})
    orders = []
    for n in range(count):
        supplier = order_supplier(n, count)
        company, _, currency = COUNTRIES[supplier % len(COUNTRIES)]
        orders.append({
            "externalId": order_no(n), "supplierExternalId": supplier_id(supplier), "companyCode": company,
            "orderDate": f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}T00:00:00Z", "currency": currency,
            "buyer": BUYERS[n % len(BUYERS)], "status": "OPEN",
            "lines": json.dumps(order_lines(n, changed=changed))})
    return {"jaggaer_purchase_orders": orders, "jaggaer_suppliers": suppliers}


def invoices_for(orders: list[dict]) -> list[dict]:
    """What suppliers submit: INVOICES_PER_ORDER invoices per order, billing its lines; every fifth at a unit price
    the order does not have (a discrepancy tap-jaggaer reports)."""
    invoices = []
    for invoice_round in range(INVOICES_PER_ORDER):
        for order in orders:
            number = len(invoices)
            lines = []
            for line in json.loads(order["lines"]):
                price = Decimal(line["unitPrice"])
                if number % INVOICE_PRICE_OFF_EVERY == 0 and line["lineNumber"] == 2:
                    price += Decimal("0.50")
                lines.append({"lineNumber": line["lineNumber"], "description": line["description"],
                              "quantity": line["quantity"], "unitPrice": str(price), "glAccount": line["glAccount"],
                              "costCenter": line["costCenter"], "poLineNumber": line["lineNumber"]})
            invoices.append({"invoiceNumber": f"INV-{invoice_round + 1}-{order['externalId']}",
                             "supplierExternalId": order["supplierExternalId"],
                             "purchaseOrderExternalId": order["externalId"], "invoiceDate": "2026-05-04",
                             "dueDate": "2026-06-03", "taxAmount": "0", "lines": lines})
    return invoices


@dataclass
class RunFigures:
    records: int
    seconds: float
    requests: int = 0  # API requests in the stand-in's log, token endpoint excluded
    own_count: int | None = None  # API requests as the sender counted them
    by_kind: dict[str, int] = field(default_factory=dict)
    log_full: bool = False
    outcomes: str = ""
    peak_mb: float | None = None

    @property
    def api_requests(self) -> int:
        """From the log, unless the log overflowed and the sender counted its own."""
        return self.own_count if self.log_full and self.own_count is not None else self.requests


def request_kind(entry: dict) -> str:
    path, method = entry["path"], entry["method"]
    if path.endswith("/oauth/token"):
        return "token"
    parts = path.split("/api/v1/", 1)[-1].split("/")
    collection = {"suppliers": "supplier", "purchase-orders": "order", "invoices": "invoice"}.get(parts[0], parts[0])
    if method == "GET" and len(parts) == 1:
        return f"{collection} lookup" if "externalId=" in (entry.get("query") or "") else f"{collection} page"
    return {"POST": f"{collection} create", "PUT": f"{collection} replace"}.get(method, f"{method} {collection}")


def take_request_log(jg: JaggaerSandboxProcess, figures: RunFigures) -> None:
    """Counts the run's requests from the stand-in's log, then clears it for the next run. Any refusal stops the
    benchmark: both senders must have done all their work."""
    entries = jg.requests()
    jg.clear_requests()
    kinds: dict[str, int] = {}
    for entry in entries:
        kinds[request_kind(entry)] = kinds.get(request_kind(entry), 0) + 1
    figures.by_kind = kinds
    figures.requests = len(entries) - kinds.get("token", 0)
    figures.log_full = len(entries) >= REQUEST_LOG_SIZE
    errors = [e for e in entries if e["status"] is None or e["status"] >= 400]
    if errors:
        raise SystemExit(f"the stand-in refused requests: {errors[:3]}")


# --- target-jaggaer ---


def target_config(jg: JaggaerSandboxProcess, workdir: Path) -> dict:
    return {"base_url": jg.base_url, "client_id": jg.client_id, "client_secret": jg.client_secret,
            "streams": TARGET_STREAMS, "requests_per_minute": UNPACED,
            "audit_url": f"sqlite:///{workdir / 'audit.sqlite'}"}


def target_run(config: Path, rows: dict[str, list[dict]], workdir: Path, name: str) -> RunFigures:
    """One `target-jaggaer` process fed the records on stdin; wall seconds, its outcome line, its own request count
    and its peak RSS."""
    messages = []
    for stream, spec in STREAMS.items():
        messages.append({"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": spec["schema"]},
                         "key_properties": ["externalId"]})
        messages += [{"type": "RECORD", "stream": stream, "record": r} for r in rows.get(stream, [])]
    elapsed, peak, outcome = fed_target("target-jaggaer", config, messages, workdir, name, "JAGGAER writes: ")
    figures = RunFigures(total(rows), elapsed, outcomes=outcome, peak_mb=peak)
    summary = AuditTrail(json.loads(config.read_text())["audit_url"]).runs(1)[0].summary or {}
    figures.own_count = summary.get("api_requests")
    return figures


# --- The plain writing loop ---


class PlainClient:
    """The least a correct client does: a client-credentials token, one session, a new token once on 401,
    Retry-After on 429; answers decoded with exact decimals."""

    def __init__(self, jg: JaggaerSandboxProcess) -> None:
        self.jg = jg
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        self.sent = 0
        self.new_token()

    def new_token(self) -> None:
        answer = self.session.post(self.jg.token_url, data={"grant_type": "client_credentials", "client_id":
                                   self.jg.client_id, "client_secret": self.jg.client_secret}, timeout=60)
        if not answer.ok:
            raise SystemExit(f"plain loop: the token endpoint answered {answer.status_code}: {answer.text[:300]}")
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        data = json_encoder.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        renewed = False
        while True:
            self.sent += 1
            response = self.session.request(method, f"{self.jg.api_url}/{path}", params=params, data=data,
                                            headers=headers, timeout=60)
            if response.status_code == 401 and not renewed:
                renewed = True
                self.new_token()
            elif response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                break
        if not response.ok:
            raise SystemExit(f"plain loop: {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json(parse_float=Decimal)


def plain_run(jg: JaggaerSandboxProcess, rows: dict[str, list[dict]]) -> RunFigures:
    started = time.perf_counter()
    client = PlainClient(jg)
    created = replaced = unchanged = 0
    for stream in SUPPLIERS_FIRST:
        route = STREAMS[stream]["route"]
        kind = route.kind
        for record in rows.get(stream, []):
            body = jaggaer_body(route, record)
            found = client.call("GET", kind.collection, params={"externalId": body["externalId"]})
            current = next((i for i in found.get("items") or [] if i.get("externalId") == body["externalId"]), None)
            if current is None:
                client.call("POST", kind.collection, body=body)
                created += 1
            elif differences(body, current):
                client.call("PUT", f"{kind.collection}/{current['id']}", body=replacement_body(kind, body, current))
                replaced += 1
            else:
                unchanged += 1
    figures = RunFigures(total(rows), time.perf_counter() - started, own_count=client.sent)
    figures.outcomes = f"{created:,} insert, {replaced:,} update, {unchanged:,} unchanged"
    return figures


# --- Reading invoices ---


def submit_invoices(jg: JaggaerSandboxProcess, invoices: list[dict]) -> float:
    started = time.perf_counter()
    for invoice in invoices:
        jg.submit_invoice(invoice)
    return time.perf_counter() - started


def tap_catalog(config_path: Path, workdir: Path) -> Path:
    discovered = subprocess.run([str(BIN / "tap-jaggaer"), "--config", str(config_path), "--discover"],
                                capture_output=True, text=True)
    if discovered.returncode != 0:
        raise SystemExit(f"tap-jaggaer --discover exited with status {discovered.returncode}:\n"
                         f"{discovered.stderr[-3000:]}")
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in ("invoices", "invoice_lines")
    path = workdir / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def tap_run(jg: JaggaerSandboxProcess, workdir: Path, name: str, start_date: str) -> RunFigures:
    """One `tap-jaggaer` process reading invoices and their lines from `start_date`, stdout to /dev/null; records
    emitted per stream from its METRIC record_count lines."""
    config_path = workdir / f"tap-{name}.json"
    config_path.write_text(json.dumps({
        "base_url": jg.base_url, "client_id": jg.client_id, "client_secret": jg.client_secret,
        "start_date": start_date, "page_size": PAGE_SIZE, "requests_per_minute": UNPACED}))
    catalog = tap_catalog(config_path, workdir)
    jg.clear_requests()  # discovery sends no API requests; the log should hold the run only all the same
    stderr_path = workdir / f"tap-{name}.stderr"
    elapsed, peak, status = watched([str(BIN / "tap-jaggaer"), "--config", str(config_path), "--catalog",
                                     str(catalog)], stderr_path=stderr_path)
    log = stderr_path.read_text(errors="replace")
    if status != 0:
        raise SystemExit(f"tap-jaggaer ({name}) exited with status {status}:\n{log[-3000:]}")
    emitted: dict[str, int] = {}
    for metric in re.findall(r"METRIC: (\{[^\n]*\})", log):
        point = json.loads(metric)
        if point.get("metric") == "record_count":
            stream = point.get("tags", {}).get("stream", "?")
            emitted[stream] = emitted.get(stream, 0) + int(point.get("value") or 0)
    figures = RunFigures(emitted.get("invoices", 0), elapsed, peak_mb=peak)
    figures.outcomes = ", ".join(f"{n:,} {stream}" for stream, n in sorted(emitted.items())) or "no records"
    return figures


def plain_read(jg: JaggaerSandboxProcess) -> tuple[RunFigures, int]:
    """Every invoice since START, each order it names fetched once, checked, written with its lines to /dev/null;
    returns the figures and how many invoices differ from their order."""
    started = time.perf_counter()
    client = PlainClient(jg)
    orders: dict[str, dict | None] = {}
    invoices = lines = flagged = 0
    with open("/dev/null", "wb") as sink:
        page = 1
        while True:
            answer = client.call("GET", "invoices", params={"modifiedSince": START, "page": page,
                                                            "pageSize": PAGE_SIZE})
            for invoice in answer.get("items") or []:
                reference = invoice.get("purchaseOrderExternalId")
                if reference and reference not in orders:
                    found = client.call("GET", "purchase-orders", params={"externalId": reference}).get("items") or []
                    orders[reference] = next((o for o in found if o.get("externalId") == reference), None)
                problems = po_discrepancies(invoice, orders[reference], reference, AMOUNT_TOLERANCE) if reference else []
                flagged += bool(problems)
                sink.write(json_encoder.encode({**invoice, "po_matched": not problems,
                                            "po_discrepancies": "; ".join(problems)}) + b"\n")
                for line in invoice.get("lines") or []:
                    sink.write(json_encoder.encode({"invoiceId": invoice["id"], **line}) + b"\n")
                    lines += 1
                invoices += 1
            if not answer.get("hasMore") or not answer.get("items"):
                break
            page += 1
    figures = RunFigures(invoices, time.perf_counter() - started, own_count=client.sent)
    figures.outcomes = f"{invoices:,} invoices, {lines:,} invoice_lines, {len(orders):,} orders fetched"
    return figures, flagged


# --- Both ---


def instance_essence(jg: JaggaerSandboxProcess) -> dict[str, dict[str, tuple]]:
    """What each supplier and order holds, by its externalId (ids left out: each stand-in numbers its own), to check
    that both writers left the same records behind, and no duplicate."""
    suppliers = jg.suppliers()
    orders = jg.purchase_orders()
    line_fields = ("lineNumber", "description", "quantity", "unitOfMeasure", "unitPrice", "amount", "glAccount",
                   "costCenter", "deliveryDate")
    return {
        "suppliers": {s["externalId"]: tuple(s.get(f) for f in SUPPLIER.fields) for s in suppliers},
        "orders": {o["externalId"]: (tuple(o.get(f) for f in PURCHASE_ORDER.fields if f not in ("supplierId", "lines"))
                                     + (o.get("totalAmount"),)
                                     + tuple(tuple(line.get(f) for f in line_fields) for line in o.get("lines") or []))
                   for o in orders},
        "counts": {"suppliers": len(suppliers), "orders": len(orders)},
    }


def sent(f: RunFigures, own_label: str) -> str:
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(f.by_kind.items()) if k != "token")
    text = f"; {f.requests:,} API requests ({kinds}) + {f.by_kind.get('token', 0)} token"
    if f.log_full:
        text += f" [log full: only the last {REQUEST_LOG_SIZE:,}; {own_label} counted {f.own_count:,}]"
    return text


def budget_seconds(requests_sent: int, per_minute: int = DEFAULT_BUDGET) -> float:
    """The least time `requests_sent` requests take under a sliding-window budget: each minute's share may go at
    once, the next share a minute after."""
    return max(0, (requests_sent - 1) // per_minute) * 60.0


def steady_seconds(f: RunFigures, startup: float) -> float | None:
    """The run's time less the plugin's start-up; None when the rest is too small to tell from noise."""
    rest = f.seconds - startup
    return rest if rest >= max(0.1, 0.1 * f.seconds) else None


def report(plain: RunFigures, target: RunFigures, startup: float, unit: str, who: str) -> None:
    def rate(label: str, f: RunFigures, seconds: float) -> str:
        return f"  {label:<30}: {f.records:>7,} {unit} in {seconds:6.2f} s = {f.records / seconds:>8,.1f} {unit}/s"

    print(rate("plain requests loop", plain, plain.seconds) + sent(plain, "it") + f"\n      {plain.outcomes}")
    print(rate(f"{who} (subprocess)", target, target.seconds) + sent(target, who)
          + f"\n      {target.outcomes}; peak RSS {shown_mb(target.peak_mb)}")
    steady = steady_seconds(target, startup)
    if steady is None:
        print(f"    less start-up ({startup:4.2f} s)      : within the start-up's noise (use more --records)")
        without = "n/a"
    else:
        print(rate(f"  less start-up ({startup:4.2f} s)", target, steady))
        without = f"{plain.seconds / steady:.2f}"
    print(f"  speed {who} / plain : {plain.seconds / target.seconds:.2f}  (without start-up: {without}); "
          f"API requests {who} / plain: {target.api_requests / max(plain.api_requests, 1):.2f}")
    if not target.log_full and target.own_count is not None and target.own_count != target.requests:
        print(f"  WARNING: {who} counted {target.own_count} API requests, the stand-in's log has {target.requests}")


def budget_line(name: str, f: RunFigures, unit: str) -> str:
    requests_sent = f.api_requests
    floor = budget_seconds(requests_sent)
    at_least = max(floor, f.seconds)
    return (f"  {name:<8}: {requests_sent:>6,} requests -> at least {floor:6.0f} s of pacing, "
            f"at most {f.records / at_least:8,.1f} {unit}/s (measured unpaced: {f.records / f.seconds:,.1f})")


def main() -> None:
    records = records_argument(__doc__.splitlines()[0], 1200, "suppliers (N); N purchase orders with 3 lines "
                               "come with them, and 2N invoices are read")

    runs = {"create": input_records(records), "same": input_records(records),
            "changed": input_records(records, changed=True)}
    count = total(runs["create"])
    print(f"JAGGAER stand-in (child process, --rate-limit 0: it does not pace); {records:,} suppliers and "
          f"{records:,} purchase orders of {LINES_PER_ORDER} lines ({count:,} records) per run, three runs each: "
          f"create, same records, every {CHANGED_EVERY}th record changed; then {INVOICES_PER_ORDER * records:,} "
          f"invoices of {LINES_PER_ORDER} lines read back. target-jaggaer and tap-jaggaer run with "
          f"requests_per_minute {UNPACED:,} (no client-side pacing) ...", flush=True)

    plain: dict[str, RunFigures] = {}
    with JaggaerSandboxProcess(port=0, rate_limit=0) as jg:
        for name, rows in runs.items():
            plain[name] = plain_run(jg, rows)
            take_request_log(jg, plain[name])
        plain_instance = instance_essence(jg)

    target: dict[str, RunFigures] = {}
    with JaggaerSandboxProcess(port=0, rate_limit=0) as jg, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "config.json"
        config.write_text(json.dumps(target_config(jg, workdir)))
        startup = target_run(config, {}, workdir, "empty").seconds
        take_request_log(jg, RunFigures(0, 0))
        for name, rows in runs.items():
            target[name] = target_run(config, rows, workdir, name)
            take_request_log(jg, target[name])
        target_instance = instance_essence(jg)

        invoices = invoices_for(runs["changed"]["jaggaer_purchase_orders"])
        submit_seconds = submit_invoices(jg, invoices)
        jg.clear_requests()
        read_plain, plain_flagged = plain_read(jg)
        take_request_log(jg, read_plain)
        tap_startup = tap_run(jg, workdir, "empty", "2999-01-01T00:00:00Z").seconds
        take_request_log(jg, RunFigures(0, 0))
        read_tap = tap_run(jg, workdir, "invoices", START)
        take_request_log(jg, read_tap)
        expected_flagged = sum(1 for n in range(len(invoices)) if n % INVOICE_PRICE_OFF_EVERY == 0)

    print("Writing (records = suppliers + purchase orders; lines travel inside their order)")
    for number, name in enumerate(runs, start=1):
        print(f"run {number}: {name}")
        report(plain[name], target[name], startup, "records", "target-jaggaer")
    first_plain, first_target = plain["create"], target["create"]
    steady = steady_seconds(first_target, startup)
    print(f"records/s in run 1              : plain {first_plain.records / first_plain.seconds:,.1f}, target-jaggaer "
          f"{first_target.records / first_target.seconds:,.1f}"
          + (f" ({first_target.records / steady:,.1f} without start-up)" if steady else ""))
    print("target-jaggaer peak memory      : " + ", ".join(f"{n} {shown_mb(target[n].peak_mb)}" for n in runs)
          + " (max RSS)")
    same = plain_instance == target_instance
    counts = target_instance["counts"]
    complete = counts == {"suppliers": records, "orders": records}
    print(f"records left behind             : suppliers plain {plain_instance['counts']['suppliers']:,} / target "
          f"{counts['suppliers']:,}, orders plain {plain_instance['counts']['orders']:,} / target "
          f"{counts['orders']:,}; {'identical' if same else 'DIFFERENT'} field by field")
    if not same or not complete:
        differing = [(kind, key) for kind in ("suppliers", "orders")
                     for key in set(plain_instance[kind]) | set(target_instance[kind])
                     if plain_instance[kind].get(key) != target_instance[kind].get(key)]
        print(f"WARNING: {len(differing)} record(s) differ between the writers, or a count is not {records}, "
              f"e.g. {differing[:3]}")

    print(f"Reading ({len(invoices):,} invoices of {LINES_PER_ORDER} lines naming {records:,} orders, submitted "
          f"through the admin in {submit_seconds:.1f} s; pages of {PAGE_SIZE})")
    report(read_plain, read_tap, tap_startup, "invoices", "tap-jaggaer")
    print(f"  invoices flagged against their order: plain {plain_flagged:,} (expected {expected_flagged:,}); "
          f"tap-jaggaer's record counts: {read_tap.outcomes}")
    expected_tap = {"invoices": len(invoices), "invoice_lines": len(invoices) * LINES_PER_ORDER}
    if read_plain.records != len(invoices) or plain_flagged != expected_flagged or read_tap.outcomes != ", ".join(
            f"{n:,} {s}" for s, n in sorted(expected_tap.items())):
        print(f"WARNING: a reader did not read what was submitted: expected {expected_tap}")

    print(f"At the plugins' default requests_per_minute {DEFAULT_BUDGET} (a sliding minute: {DEFAULT_BUDGET} at once, "
          f"then {DEFAULT_BUDGET} a minute later; these runs were unpaced), target-jaggaer's runs above would take:")
    for name in runs:
        print(budget_line(name, target[name], "records"))
    print("  and tap-jaggaer's read:")
    print(budget_line("read", read_tap, "invoices"))
    print(f"  steady state: {DEFAULT_BUDGET / 60:.0f} requests/s = {DEFAULT_BUDGET / 120:.1f} new or changed records/s "
          f"(lookup + write), {DEFAULT_BUDGET / 60:.0f} unchanged records/s (lookup only), about "
          f"{DEFAULT_BUDGET / 60:.0f} orders checked per second when reading")


if __name__ == "__main__":
    main()
