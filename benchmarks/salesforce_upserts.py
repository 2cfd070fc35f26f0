"""target-salesforce against the Salesforce stand-in: records upserted per second (supplier Accounts, Orders referencing
them, three OrderItems per order), and two reruns.

The first run creates the records, a rerun of the same records updates every one of them (a Salesforce upsert always
writes, and target-salesforce sends unchanged records again on purpose, see its README), a run with 10% of the records
changed does the same with different values; each is compared with a plain requests loop doing the minimum a correct
client must do for the same records.

    .venv/bin/python benchmarks/salesforce_upserts.py --records 60000

N supplier Accounts (stream `sf_supplier_accounts`, external id `IFS_Supplier_Id__c`), N/10 Orders (`sf_orders`,
`IFS_Order_No__c`) naming their supplier by external id (`"Account.IFS_Supplier_Id__c": "S..."`, as a stream map
writes it) and 3 OrderItems per order (`sf_order_items`, `IFS_Line_Key__c`, `"Order": {"IFS_Order_No__c": "P..."}`);
Orders get the standard price book and OrderItems its entry from the stream defaults, as in target-salesforce's tests.
Each sender gets a fresh Salesforce stand-in of its own (`mlc-sandbox serve salesforce`, a child process) and goes
through three runs in a row on it:
  1. create: every record is new,
  2. same: the same records again (all updates, same values),
  3. changed: the same records with every tenth record of each stream changed (name and payment terms of Accounts,
     description of Orders, unit price of OrderItems).

target-salesforce runs as Meltano runs it: its own process reading Singer messages on stdin, parents' streams first,
with one audit trail (SQLite) for its three runs. Its rates are given over the whole process and again without its
start-up (the time of a run with no records). Its peak RSS is the kernel's high-water mark (VmHWM) polled from /proc
(see databricks_pipeline.peak_rss_mb for why not wait4()).

The plain loop (in this process, one requests.Session per run, as a new process would have) does per run: one
client-credentials token, then `PATCH /services/data/v62.0/composite/sobjects/<Type>/<ExtIdField>` with `allOrNone:
false` and 200 records at a time, Accounts, then Orders, then OrderItems (parents first, so that every reference
resolves), with the same bodies as the target (built with target-salesforce's own salesforce_body), checking that
every record's result is a success. On 401 it gets one new token and tries again, on 503 it waits Retry-After; the
stand-in is not asked for faults, so neither happens here.

API calls are counted twice: from the stand-in's request log (by kind; the token endpoint does not count against the
org's limit) and as the rise of the org's API usage counter (what Sforce-Limit-Info reports); a difference between
the two is printed as a warning. At the end the records of both stand-ins are compared field by field (references by
their parent's external id).

Run 3 costs what run 2 does, by design: both senders send every record of every run. The stand-in answers in a few
milliseconds, so the figures show the senders' own costs; a real org takes roughly 0.5-2 s per collections call.
Beyond about 140,000 Accounts per run (1,000 calls) target-salesforce's default client-side budget
(requests_per_minute 1000) starts pacing it while the plain loop is not paced, and the stand-in's default daily
limit (15,000 calls, the target stops new work at 90%) bounds N over the three runs to about 600,000.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
import requests

from mlc_sandbox.salesforce import SalesforceSandboxProcess
from plugin_runs import benchmark_arguments, fed_target, json_encoder, shown_mb, total
from target_salesforce.writer import Route, salesforce_body

API_VERSION = "v62.0"
COLLECTION_LIMIT = 200  # records per sObject Collections call, Salesforce's limit
STANDARD_PRICEBOOK = "01s000000000001AAA"  # seeded in the stand-in, as every org has its standard price book
STANDARD_ENTRY = "01u000000000001AAA"
ORDERS_PER_SUPPLIERS = 10  # N/10 orders
ITEMS_PER_ORDER = 3
CHANGED_EVERY = 10  # run 3 changes every tenth record of each stream
PRICE_RAISE = Decimal("1.25")

TEXT = {"type": ["string", "null"]}
# Parents first, as Salesforce needs them: the order of the Singer input and of the plain loop's calls.
STREAMS = {
    "sf_supplier_accounts": {
        "route": Route("sf_supplier_accounts", "Account", "IFS_Supplier_Id__c"),
        "schema": {name: TEXT for name in ("IFS_Supplier_Id__c", "Name", "Type", "BillingCountry", "CurrencyIsoCode",
                                           "Payment_Terms__c", "IFS_Company__c")},
    },
    "sf_orders": {
        "route": Route("sf_orders", "Order", "IFS_Order_No__c", defaults={"Pricebook2Id": STANDARD_PRICEBOOK}),
        "schema": {"IFS_Order_No__c": TEXT, "EffectiveDate": {"type": ["string", "null"], "format": "date"},
                   "Status": TEXT, "Description": TEXT, "IFS_Status__c": TEXT, "Account.IFS_Supplier_Id__c": TEXT},
    },
    "sf_order_items": {
        "route": Route("sf_order_items", "OrderItem", "IFS_Line_Key__c", defaults={"PricebookEntryId": STANDARD_ENTRY}),
        "schema": {"IFS_Line_Key__c": TEXT, "Quantity": {"type": ["number", "null"]},
                   "UnitPrice": {"type": ["number", "null"]}, "Description": TEXT,
                   "Order": {"type": ["object", "null"], "properties": {"IFS_Order_No__c": TEXT}}},
    },
}
COUNTRIES = (("10", "SE", "SEK"), ("20", "US", "USD"), ("30", "DE", "EUR"), ("40", "NO", "NOK"))
SUPPLIER_NAMES = ("Nordic Steel", "Acme Fasteners", "Rhein Hydraulik", "Bergen Marine", "Lund Electronics")
TERMS = ("30 days net", "45 days net", "60 days net")


def supplier_id(n: int) -> str:
    return f"S{100000 + n}"


def input_records(count: int, *, changed: bool = False) -> dict[str, list[dict]]:
    """Records per stream as the stream maps in mappers/ shape them; `changed` alters every tenth of each stream."""
    accounts = []
    for n in range(count):
        company, country, currency = COUNTRIES[n % len(COUNTRIES)]
        revised = changed and n % CHANGED_EVERY == 0
        accounts.append({
            "IFS_Supplier_Id__c": supplier_id(n),
            "Name": f"{SUPPLIER_NAMES[n % len(SUPPLIER_NAMES)]} {n}" + (" (renamed)" if revised else ""),
            "Type": "Supplier", "BillingCountry": country, "CurrencyIsoCode": currency,
            "Payment_Terms__c": "90 days net" if revised else TERMS[n % len(TERMS)], "IFS_Company__c": company})
    orders, items = [], []
    for n in range(max(1, count // ORDERS_PER_SUPPLIERS)):
        order_no = f"P{1000000 + n}"
        orders.append({
            "IFS_Order_No__c": order_no, "EffectiveDate": f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}", "Status": "Draft",
            "Description": f"Purchase order {order_no}" + (", revised" if changed and n % CHANGED_EVERY == 0 else ""),
            "IFS_Status__c": "Released", "Account.IFS_Supplier_Id__c": supplier_id(n * 7 % count)})
        for line in range(1, ITEMS_PER_ORDER + 1):
            price = Decimal(10 + (n * 13 + line) % 500) + Decimal((n * 7 + line) % 100) / 100
            if changed and len(items) % CHANGED_EVERY == 0:
                price += PRICE_RAISE
            items.append({"IFS_Line_Key__c": f"{order_no}-{line}", "Quantity": Decimal(1 + (n + line) % 5),
                          "UnitPrice": price, "Description": f"Line {line}", "Order": {"IFS_Order_No__c": order_no}})
    return {"sf_supplier_accounts": accounts, "sf_orders": orders, "sf_order_items": items}


@dataclass
class RunFigures:
    records: int
    seconds: float
    api_calls: int = 0  # from the request log, token endpoint excluded
    usage_counted: int = 0  # the rise of the org's API usage counter (Sforce-Limit-Info)
    by_kind: dict[str, int] = field(default_factory=dict)
    outcomes: str = ""
    peak_mb: float | None = None


def request_kind(entry: dict) -> str:
    path = entry["path"]
    if path == "/services/oauth2/token":
        return "token"
    if "/composite/sobjects/" in path and entry["method"] == "PATCH":
        return f"{path.split('/composite/sobjects/')[1].split('/')[0]} upsert"
    return "other"


def take_request_log(sf: SalesforceSandboxProcess, figures: RunFigures, usage_before: int) -> int:
    """Counts the run's requests from the stand-in's log and its usage counter, then clears the log for the next
    run; returns the counter now. Any refusal, of a call or of one record in it, stops the benchmark."""
    entries = sf.requests()
    sf.admin("DELETE", "requests")
    usage_now = sf.info()["api_used"]
    figures.usage_counted = usage_now - usage_before
    kinds: dict[str, int] = {}
    for entry in entries:
        kinds[request_kind(entry)] = kinds.get(request_kind(entry), 0) + 1
    figures.by_kind = kinds
    figures.api_calls = len(entries) - kinds.get("token", 0)
    errors = [e for e in entries if e["status"] is None or e["status"] >= 400 or e.get("error_codes")]
    if errors:
        raise SystemExit(f"the stand-in refused requests or records: {errors[:3]}")
    return usage_now


# --- target-salesforce ---


def target_config(sf: SalesforceSandboxProcess, workdir: Path) -> dict:
    return {"base_url": sf.base_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
            "sobjects": {stream: {"sobject": s["route"].sobject, "external_id_field": s["route"].external_id_field,
                                  **({"defaults": dict(s["route"].defaults)} if s["route"].defaults else {})}
                         for stream, s in STREAMS.items()},
            "audit_url": f"sqlite:///{workdir / 'audit.sqlite'}"}


def target_run(config: Path, rows: dict[str, list[dict]], workdir: Path, name: str) -> RunFigures:
    """One `target-salesforce` process fed the records on stdin; wall seconds, its outcome line and its peak RSS."""
    messages = []
    for stream, spec in STREAMS.items():
        messages.append({"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": spec["schema"]},
                         "key_properties": [spec["route"].external_id_field]})
        messages += [{"type": "RECORD", "stream": stream, "record": r} for r in rows.get(stream, [])]
    elapsed, peak, outcome = fed_target("target-salesforce", config, messages, workdir, name, "Salesforce upserts: ")
    return RunFigures(total(rows), elapsed, outcomes=outcome, peak_mb=peak)


# --- The plain loop ---


class PlainClient:
    """The least a correct client does: a client-credentials token, one session, a new token once on 401, Retry-After
    on 503."""

    def __init__(self, sf: SalesforceSandboxProcess) -> None:
        self.sf = sf
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        self.new_token()

    def new_token(self) -> None:
        answer = self.session.post(self.sf.token_url, data={"grant_type": "client_credentials", "client_id":
                                   self.sf.client_id, "client_secret": self.sf.client_secret},
                                   headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
        if not answer.ok:
            raise SystemExit(f"plain loop: the token endpoint answered {answer.status_code}: {answer.text[:300]}")
        token = answer.json()
        self.api = f"{token['instance_url']}/services/data/{API_VERSION}"
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def upsert(self, sobject: str, external_id_field: str, bodies: list[dict]) -> list[dict]:
        data = json_encoder.encode({"allOrNone": False,
                                "records": [{"attributes": {"type": sobject}, **body} for body in bodies]})
        renewed = False
        while True:
            response = self.session.patch(f"{self.api}/composite/sobjects/{sobject}/{external_id_field}", data=data,
                                          timeout=120)
            if response.status_code == 401 and not renewed:
                renewed = True
                self.new_token()
            elif response.status_code == 503:
                time.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                break
        if not response.ok:
            raise SystemExit(f"plain loop: {sobject} upsert answered {response.status_code}: {response.text[:300]}")
        results = response.json()
        if len(results) != len(bodies):
            raise SystemExit(f"plain loop: {len(results)} results for {len(bodies)} {sobject} records")
        return results


def plain_run(sf: SalesforceSandboxProcess, rows: dict[str, list[dict]]) -> RunFigures:
    started = time.perf_counter()
    client = PlainClient(sf)
    created = updated = 0
    for stream, spec in STREAMS.items():
        route = spec["route"]
        bodies = [salesforce_body(route, record) for record in rows.get(stream, [])]
        for start in range(0, len(bodies), COLLECTION_LIMIT):
            chunk = bodies[start:start + COLLECTION_LIMIT]
            for body, result in zip(chunk, client.upsert(route.sobject, route.external_id_field, chunk)):
                if not result.get("success"):
                    raise SystemExit(f"plain loop: {route.sobject} {body[route.external_id_field]} refused: "
                                     f"{result.get('errors')}")
                if result.get("created"):
                    created += 1
                else:
                    updated += 1
    figures = RunFigures(total(rows), time.perf_counter() - started)
    figures.outcomes = f"{created} insert, {updated} update"
    return figures


# --- Both ---


def org_essence(sf: SalesforceSandboxProcess) -> dict[str, dict[str, tuple]]:
    """What each record holds, by its external id, references by their parent's external id: to check that both
    senders left the same records behind."""
    accounts = {a["Id"]: a for a in sf.records("Account")}
    orders = {o["Id"]: o for o in sf.records("Order")}
    account_ext = {i: a.get("IFS_Supplier_Id__c") for i, a in accounts.items()}
    order_ext = {i: o.get("IFS_Order_No__c") for i, o in orders.items()}

    def number(value) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    return {
        "Account": {a["IFS_Supplier_Id__c"]: (a["Name"], a["Type"], a["BillingCountry"], a["CurrencyIsoCode"],
                                              a["Payment_Terms__c"], a["IFS_Company__c"])
                    for a in accounts.values() if a.get("IFS_Supplier_Id__c")},
        "Order": {o["IFS_Order_No__c"]: (o["EffectiveDate"], o["Status"], o["Description"], o["IFS_Status__c"],
                                         o["Pricebook2Id"], account_ext.get(o["AccountId"]), number(o["TotalAmount"]))
                  for o in orders.values() if o.get("IFS_Order_No__c")},
        "OrderItem": {i["IFS_Line_Key__c"]: (number(i["Quantity"]), number(i["UnitPrice"]), i["Description"],
                                             i["PricebookEntryId"], order_ext.get(i["OrderId"]))
                      for i in sf.records("OrderItem") if i.get("IFS_Line_Key__c")},
    }


def expected_essence(rows: dict[str, list[dict]]) -> dict[str, set[str]]:
    return {STREAMS[stream]["route"].sobject: {r[STREAMS[stream]["route"].external_id_field] for r in records}
            for stream, records in rows.items()}


def report(plain: RunFigures, target: RunFigures, startup: float) -> None:
    def rate(who: str, f: RunFigures, seconds: float) -> str:
        return f"  {who:<32}: {f.records:>7,} records in {seconds:6.2f} s = {f.records / seconds:>8,.1f} records/s"

    def sent(f: RunFigures) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(f.by_kind.items()) if k != "token")
        return f"; {f.api_calls} API calls ({kinds}) + {f.by_kind.get('token', 0)} token"

    steady = max(target.seconds - startup, 1e-9)
    print(rate("plain requests loop", plain, plain.seconds) + sent(plain) + f"\n      {plain.outcomes}")
    print(rate("target-salesforce (subprocess)", target, target.seconds) + sent(target)
          + f"\n      {target.outcomes}; peak RSS {shown_mb(target.peak_mb)}")
    print(rate(f"  less start-up ({startup:4.2f} s)", target, steady))
    print(f"  speed target / plain            : {plain.seconds / target.seconds:.2f}  "
          f"(without start-up: {plain.seconds / steady:.2f}); API calls target / plain: "
          f"{target.api_calls / max(plain.api_calls, 1):.2f}")
    for who, f in (("plain", plain), ("target-salesforce", target)):
        if f.usage_counted != f.api_calls:
            print(f"  WARNING: {who}: the org's usage counter rose by {f.usage_counted}, the request log has "
                  f"{f.api_calls} API calls")


def main() -> None:
    args = benchmark_arguments(__doc__.splitlines()[0], 60000,
                               "supplier Accounts (N); N/10 Orders and 3 OrderItems per order come with them")
    records = args.records

    runs = {"create": input_records(records), "same": input_records(records),
            "changed": input_records(records, changed=True)}
    sizes = {stream: len(records) for stream, records in runs["create"].items()}
    print(f"Salesforce stand-in (child process); {sizes['sf_supplier_accounts']:,} supplier Accounts, "
          f"{sizes['sf_orders']:,} Orders, {sizes['sf_order_items']:,} OrderItems ({total(runs['create']):,} records) "
          f"per run, three runs each: create, same records, every {CHANGED_EVERY}th record changed ...")

    plain: dict[str, RunFigures] = {}
    with SalesforceSandboxProcess(port=0) as sf:
        usage = sf.info()["api_used"]
        for name, rows in runs.items():
            plain[name] = plain_run(sf, rows)
            usage = take_request_log(sf, plain[name], usage)
        plain_org = org_essence(sf)

    target: dict[str, RunFigures] = {}
    with SalesforceSandboxProcess(port=0) as sf, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "config.json"
        config.write_text(msgspec.json.encode(target_config(sf, workdir)).decode())
        usage = sf.info()["api_used"]
        startup = target_run(config, {}, workdir, "empty").seconds
        usage = take_request_log(sf, RunFigures(0, 0), usage)
        for name, rows in runs.items():
            target[name] = target_run(config, rows, workdir, name)
            usage = take_request_log(sf, target[name], usage)
        target_org = org_essence(sf)
        if args.keep_trail:
            shutil.copyfile(workdir / "audit.sqlite", args.keep_trail)

    for number, name in enumerate(runs, start=1):
        print(f"run {number}: {name}")
        report(plain[name], target[name], startup)
    first_plain, first_target = plain["create"], target["create"]
    print(f"records/s in run 1                : plain {first_plain.records / first_plain.seconds:,.1f}, "
          f"target-salesforce {first_target.records / first_target.seconds:,.1f} "
          f"({first_target.records / max(first_target.seconds - startup, 1e-9):,.1f} without start-up)")
    print(f"API calls over three runs         : plain {sum(f.api_calls for f in plain.values())}, target-salesforce "
          f"{sum(f.api_calls for f in target.values())} (org usage counter: plain "
          f"{sum(f.usage_counted for f in plain.values())}, target-salesforce "
          f"{sum(f.usage_counted for f in target.values())})")
    print("target-salesforce peak memory     : " + ", ".join(f"{n} {shown_mb(target[n].peak_mb)}" for n in runs)
          + " (max RSS)")
    same = plain_org == target_org
    wanted = expected_essence(runs["changed"])
    complete = all(set(target_org[sobject]) == keys for sobject, keys in wanted.items())
    print("records left behind               : " + ", ".join(
        f"{sobject} plain {len(plain_org[sobject]):,} / target {len(target_org[sobject]):,}" for sobject in wanted)
        + f"; {'identical' if same else 'DIFFERENT'} field by field")
    if not same or not complete:
        differing = [(sobject, key) for sobject in wanted for key in set(plain_org[sobject]) | set(target_org[sobject])
                     if plain_org[sobject].get(key) != target_org[sobject].get(key) or key not in wanted[sobject]]
        print(f"WARNING: {len(differing)} record(s) differ between the senders or from the input, e.g. {differing[:3]}")


if __name__ == "__main__":
    main()
