"""target-jira against the Jira stand-in at Jira Cloud's rate limit: issues created per second, and two reruns.

The first run creates the issues, a rerun of the same records has nothing to send, a run with 10% of the amounts
changed updates those; each is compared with a plain requests loop doing the minimum a correct client must do for the
same records.

    .venv/bin/python benchmarks/jira_issues.py --records 3500

Each sender gets a fresh Jira stand-in of its own (`mlc-sandbox serve jira`, a child process), limited to 600 requests
per minute per user in a sliding window, and goes through three runs in a row on it:
  1. create: N new purchase orders (no issue exists yet),
  2. unchanged: the same N records again (every issue is found and equal: only searches go out),
  3. changed: the same N records with every tenth amount raised (a PUT of the changed fields for those).
The stand-in's window spans the runs, as Jira's quota spans processes, so the third run may meet 429s left over from
the first two; both senders see the same history.

Why 600 a minute: Atlassian publishes no fixed per-minute figure for API-token (Basic) traffic; it is governed by burst
limits per endpoint (token buckets, about ten requests a second sustained) on top of per-issue write limits. The
stand-in's default, 600 requests per minute per user (10 a second), models that; target-jira is given the same figure
as its client-side budget (`requests_per_minute`), so it paces itself rather than meeting 429s.

target-jira runs as Meltano runs it: its own process reading Singer messages (stream `jira_purchase_orders`, key
`ifs_key`) on stdin, with one audit trail (SQLite) for its three runs. Its rates are given over the whole process and
again without its start-up (the time of a run with no records). Its peak RSS is the kernel's high-water mark (VmHWM)
polled from /proc: wait4()'s ru_maxrss would not do, since Linux carries the parent's high-water mark over fork and
exec, and this script holds every record of the three runs.

The plain loop (in this process, requests.Session, Basic auth) does per run: GET /field and GET createmeta (a new
process must learn the site's field and issue type ids, as the target does), one POST /search/jql per 100 keys asking
for the same fields as the target, then POST /issue/bulk 50 at a time with the same bodies (built with target-jira's
own functions) for what was not found, or a PUT of the amount and description where Jira's amount differs. It honours
Retry-After on 429 and paces itself no further. Requests and 429s are counted from the stand-in's request log; at the
end the issues of both stand-ins are compared field by field. "Busiest minute" is the most requests the stand-in saw
in any 60 seconds of a sender's three runs (from its log, to the second): how close the sender came to the limit.
"""

from __future__ import annotations

import calendar
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
import requests

from mlc_sandbox.jira import JiraSandboxProcess
from plugin_runs import fed_target, records_argument, shown_mb
from target_jira import issues
from target_jira.writer import BULK_CHUNK, SEARCH_CHUNK, SYSTEM_FIELDS

RATE_LIMIT = 600  # requests per minute per user: the stand-in's default, see above
STREAM, KEY = "jira_purchase_orders", "ifs_key"
PROJECT, ISSUE_TYPE = "PUR", "Purchase Order"
CUSTOM_FIELDS = {"ifs_key": "IFS Key", "gl_account": "GL Account", "cost_center": "Cost Center",
                 "ifs_url": "IFS Link", "amount": "Order Amount"}  # target-jira's defaults
PRIORITIES = {"Tier 1": "High", "Tier 3": "Low"}
DEFAULT_PRIORITY = "Medium"
CHANGED_EVERY = 10  # run 3 raises the amount of every tenth record
AMOUNT_RAISE = Decimal("125.00")
SCHEMA = {
    "ifs_key": {"type": ["string"]}, "summary": {"type": ["string"]}, "company": {"type": ["string", "null"]},
    "site": {"type": ["string", "null"]}, "tier_or_category": {"type": ["string", "null"]},
    "gl_account": {"type": ["string", "null"]}, "cost_center": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]}, "currency": {"type": ["string", "null"]},
    "status": {"type": ["string", "null"]}, "ifs_url": {"type": ["string", "null"]},
    "description_fields": {"type": ["object", "null"], "additionalProperties": {"type": ["string", "null"]}},
}
COMPANIES = (("10", "SEK"), ("20", "USD"), ("30", "EUR"), ("40", "NOK"))
TIERS = ("Tier 1", "Tier 2", "Tier 3")
SUPPLIERS = ("Nordic Steel AB", "Acme Fasteners Inc", "Rhein Hydraulik GmbH", "Bergen Marine AS", "Lund Electronics AB")
BUYERS = ("Anna Berg", "Lars Holm", "Maria Lind", "Erik Dahl")


def purchase_orders(count: int, *, changed: bool = False) -> list[dict]:
    """Records as the stream maps in mappers/ shape them; `changed` raises every tenth amount."""
    out = []
    for n in range(count):
        order_no = f"P{1000000 + n}"
        company, currency = COMPANIES[n % len(COMPANIES)]
        supplier = SUPPLIERS[n % len(SUPPLIERS)]
        amount = Decimal(1000 + n * 37) + Decimal("0.50")
        if changed and n % CHANGED_EVERY == 0:
            amount += AMOUNT_RAISE
        out.append({
            "ifs_key": f"PurchaseOrder:{order_no}", "summary": f"PO {order_no}: {supplier}, {1 + n % 7} lines",
            "company": company, "site": f"{company}A", "tier_or_category": TIERS[n % len(TIERS)],
            "gl_account": f"4{n % 90 + 10:03d}", "cost_center": f"CC{100 + n % 40}", "amount": amount,
            "currency": currency, "status": "Released",
            "ifs_url": f"https://acme.ifs.cloud/main/ifsapplications/web/page/PurchaseOrder/Form?OrderNo={order_no}",
            "description_fields": {"Supplier": supplier, "Buyer": BUYERS[n % len(BUYERS)], "Order date": "2026-11-02"},
        })
    return out


@dataclass
class RunFigures:
    records: int
    seconds: float
    requests: int = 0
    throttled: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    outcomes: str = ""
    peak_mb: float | None = None
    request_times: list[float] = field(default_factory=list)


def request_kind(entry: dict) -> str:
    method, path = entry["method"], entry["path"]
    if path.endswith("/search/jql"):
        return "search"
    if path.endswith("/issue/bulk"):
        return "bulk create"
    if method == "PUT":
        return "edit"
    if method == "POST" and path.endswith("/issue"):
        return "create"
    return "other"


def take_request_log(jira: JiraSandboxProcess, figures: RunFigures) -> None:
    """Counts the run's requests from the stand-in's log (429s included), then clears the log for the next run."""
    entries = jira.requests()
    jira.admin("DELETE", "requests")
    figures.requests = len(entries)
    figures.request_times = [calendar.timegm(time.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ")) for e in entries]
    figures.throttled = sum(1 for e in entries if e["status"] == 429)
    kinds: dict[str, int] = {}
    for entry in entries:
        if entry["status"] != 429:
            kinds[request_kind(entry)] = kinds.get(request_kind(entry), 0) + 1
    figures.by_kind = kinds
    errors = [e for e in entries if e["status"] is None or (e["status"] >= 400 and e["status"] != 429)]
    if errors:
        raise SystemExit(f"the stand-in refused requests: {errors[:3]}")


# --- target-jira ---


def target_config(jira: JiraSandboxProcess, workdir: Path) -> dict:
    return {"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
            "default_project": PROJECT, "issue_types": {STREAM: ISSUE_TYPE}, "priorities": PRIORITIES,
            "requests_per_minute": RATE_LIMIT, "audit_url": f"sqlite:///{workdir / 'audit.sqlite'}"}


def target_run(config: Path, rows: list[dict], workdir: Path, name: str) -> RunFigures:
    """One `target-jira` process fed the records on stdin; wall seconds, its outcome line and its peak RSS."""
    messages = [{"type": "SCHEMA", "stream": STREAM, "schema": {"type": "object", "properties": SCHEMA},
                 "key_properties": [KEY]}]
    messages += [{"type": "RECORD", "stream": STREAM, "record": r} for r in rows]
    elapsed, peak, outcome = fed_target("target-jira", config, messages, workdir, name, "Jira issues: ")
    return RunFigures(len(rows), elapsed, outcomes=outcome, peak_mb=peak)


# --- The plain loop ---


class PlainClient:
    """The least a correct client does: Basic auth, one session, wait Retry-After on 429 and try again."""

    def __init__(self, jira: JiraSandboxProcess) -> None:
        self.api = f"{jira.base_url}/rest/api/3"
        self.session = requests.Session()
        self.session.auth = (jira.email, jira.api_token)
        self.session.headers["Accept"] = "application/json"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        while True:
            response = self.session.request(method, f"{self.api}/{path}", timeout=60, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        if not response.ok:
            raise SystemExit(f"plain loop: {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response


def plain_bodies(rows: list[dict], field_ids: dict[str, str], issue_type_id: str) -> list[tuple[str, dict, dict]]:
    """(label, fields we own, create body) per record, as target-jira builds them (same functions, same settings)."""
    out = []
    for record in rows:
        label = issues.issue_label(record[KEY])
        owned = {"summary": issues.one_line_summary(record["summary"]),
                 "description": issues.description_document(record),
                 "priority": {"name": PRIORITIES.get(record["tier_or_category"], DEFAULT_PRIORITY)},
                 "labels": [label]}
        for logical, field_id in field_ids.items():
            owned[field_id] = issues.jira_value(record.get(logical))
        body = {"project": {"key": PROJECT}, "issuetype": {"id": issue_type_id}}
        body.update({k: v for k, v in owned.items() if v is not None})
        out.append((label, owned, {"fields": body}))
    return out


def plain_run(jira: JiraSandboxProcess, rows: list[dict]) -> RunFigures:
    started = time.perf_counter()
    client = PlainClient(jira)
    by_name = {f["name"]: f["id"] for f in client.call("GET", "field").json()}
    field_ids = {logical: by_name[name] for logical, name in CUSTOM_FIELDS.items()}
    types = client.call("GET", f"issue/createmeta/{PROJECT}/issuetypes").json()["issueTypes"]
    issue_type_id = next(t["id"] for t in types if t["name"] == ISSUE_TYPE)
    planned = plain_bodies(rows, field_ids, issue_type_id)
    wanted = SYSTEM_FIELDS + sorted(field_ids.values())
    amount_id = field_ids["amount"]
    created = edited = 0
    for start in range(0, len(planned), SEARCH_CHUNK):
        chunk = planned[start:start + SEARCH_CHUNK]
        search = {"jql": issues.labels_jql(sorted(label for label, _, _ in chunk)), "fields": wanted,
                  "maxResults": SEARCH_CHUNK}
        found: dict[str, dict] = {}
        while True:
            page = client.call("POST", "search/jql", json=search).json()
            for issue in page.get("issues") or []:
                for label in issue["fields"].get("labels") or []:
                    found.setdefault(label, issue)
            if page.get("isLast", True) or not page.get("nextPageToken"):
                break
            search = {**search, "nextPageToken": page["nextPageToken"]}
        missing = [body for label, _, body in chunk if label not in found]
        for at in range(0, len(missing), BULK_CHUNK):
            answer = client.call("POST", "issue/bulk", json={"issueUpdates": missing[at:at + BULK_CHUNK]}).json()
            if answer.get("errors"):
                raise SystemExit(f"plain loop: bulk create refused elements: {answer['errors'][:3]}")
            created += len(answer["issues"])
        for label, owned, _ in chunk:
            issue = found.get(label)
            if issue is None:
                continue
            have = issue["fields"].get(amount_id)
            if have is None or Decimal(str(have)) != Decimal(str(owned[amount_id])):
                client.call("PUT", f"issue/{issue['key']}",
                            json={"fields": {amount_id: owned[amount_id], "description": owned["description"]}})
                edited += 1
    figures = RunFigures(len(rows), time.perf_counter() - started)
    figures.outcomes = f"{created} created, {edited} edited, {len(rows) - created - edited} unchanged"
    return figures


# --- Both ---


def issue_essence(jira: JiraSandboxProcess) -> dict[str, tuple]:
    """What each issue shows, by its label: to check that both senders left the same issues behind."""
    custom = jira.field_ids()
    out = {}
    for issue in jira.issues():
        fields = issue["fields"]
        label = next(label for label in fields["labels"] if label.startswith("ifs-"))
        out[label] = (fields["summary"], issues.document_essence(fields["description"]), fields["priority"]["name"],
                      fields["issuetype"]["name"], fields["project"]["key"], sorted(fields["labels"]),
                      tuple(fields.get(custom[name]) for name in CUSTOM_FIELDS.values()))
    return out


def busiest_minute(runs: dict[str, RunFigures]) -> int:
    times = sorted(t for figures in runs.values() for t in figures.request_times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def check_clean(jira: JiraSandboxProcess, who: str) -> None:
    violations = jira.violations()
    if violations:
        raise SystemExit(f"{who}: the stand-in recorded spec violations: {violations[:3]}")


def report(plain: RunFigures, target: RunFigures, startup: float) -> None:
    def rate(who: str, f: RunFigures, seconds: float) -> str:
        return f"  {who:<27}: {f.records:>6,} records in {seconds:6.2f} s = {f.records / seconds:>7,.1f} records/s"

    def sent(f: RunFigures) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(f.by_kind.items()))
        return f"; {f.requests} requests ({kinds}), {f.throttled} answered 429"

    steady = max(target.seconds - startup, 1e-9)
    print(rate("plain requests loop", plain, plain.seconds) + sent(plain) + f"\n      {plain.outcomes}")
    print(rate("target-jira (subprocess)", target, target.seconds) + sent(target) + f"\n      {target.outcomes}; "
          f"peak RSS {shown_mb(target.peak_mb)}")
    print(rate(f"  less start-up ({startup:4.2f} s)", target, steady))
    ratio, steady_ratio = plain.seconds / target.seconds, plain.seconds / steady
    print(f"  ratio target / plain        : {ratio:.2f}  (without start-up: {steady_ratio:.2f})")


def main() -> None:
    records = records_argument(__doc__.splitlines()[0], 3500)

    runs = {"create": purchase_orders(records), "unchanged": purchase_orders(records),
            "changed": purchase_orders(records, changed=True)}
    print(f"Jira stand-in (child process), {RATE_LIMIT} requests/minute per user; {records:,} purchase orders, "
          f"three runs each: create, unchanged, every {CHANGED_EVERY}th amount changed ...")

    plain: dict[str, RunFigures] = {}
    with JiraSandboxProcess(port=0, rate_limit=RATE_LIMIT) as jira:
        for name, rows in runs.items():
            plain[name] = plain_run(jira, rows)
            take_request_log(jira, plain[name])
        check_clean(jira, "plain loop")
        plain_issues = issue_essence(jira)

    target: dict[str, RunFigures] = {}
    with JiraSandboxProcess(port=0, rate_limit=RATE_LIMIT) as jira, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "config.json"
        config.write_text(msgspec.json.encode(target_config(jira, workdir)).decode())
        startup = target_run(config, [], workdir, "empty").seconds
        take_request_log(jira, RunFigures(0, 0))
        for name, rows in runs.items():
            target[name] = target_run(config, rows, workdir, name)
            take_request_log(jira, target[name])
        check_clean(jira, "target-jira")
        target_issues = issue_essence(jira)

    for number, name in enumerate(runs, start=1):
        print(f"run {number}: {name}")
        report(plain[name], target[name], startup)
    first_plain, first_target = plain["create"], target["create"]
    print(f"issues/s in run 1           : plain {first_plain.records / first_plain.seconds:,.1f}, "
          f"target-jira {first_target.records / first_target.seconds:,.1f} "
          f"({first_target.records / max(first_target.seconds - startup, 1e-9):,.1f} without start-up)")
    print(f"busiest minute              : plain {busiest_minute(plain)}, target-jira {busiest_minute(target)} "
          f"requests (limit {RATE_LIMIT})")
    print("target-jira peak memory     : " + ", ".join(f"{n} {shown_mb(target[n].peak_mb)}" for n in runs)
          + " (max RSS)")
    same = plain_issues == target_issues
    print(f"issues left behind          : plain {len(plain_issues):,}, target-jira {len(target_issues):,}; "
          f"{'identical' if same else 'DIFFERENT'} field by field")
    if not same or len(target_issues) != records:
        differing = [k for k in set(plain_issues) | set(target_issues) if plain_issues.get(k) != target_issues.get(k)]
        print(f"WARNING: {len(differing)} issue(s) differ between the senders or from the records, e.g. {differing[:3]}")


if __name__ == "__main__":
    main()
