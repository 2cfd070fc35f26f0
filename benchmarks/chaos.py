"""Chaos: every flow's load SIGKILLed at random moments (the whole process group) and rerun, through real `mlc-run`
processes against the stand-ins on loopback; per flow the records lost and duplicated (by key, source against
destination), the records re-read after each kill, and the runs left `running`.

    .venv/bin/python benchmarks/chaos.py --quick                      # every flow, small loads: a smoke run
    .venv/bin/python benchmarks/chaos.py                              # every flow, loads of about a minute, 20 kills
    .venv/bin/python benchmarks/chaos.py --flows delta,jira --kills 20 --seed 7 --scale delta=60000
    .venv/bin/python benchmarks/chaos.py --quick --fault-rate 0.07    # each flow without and with 7% injected faults

Per flow and fault rate: first one uninterrupted load (a fresh destination) measures how many audit entries the load
makes and how long it takes; the baseline of what a kill cost before checkpoints comes from the kills themselves.
Then, on a fresh destination, one load is killed at --kills random moments: moment i is a random share of the load
(seeded), reached when the audit trail holds that share of the uninterrupted load's entries, plus a random time within
one batch's time. Each kill is followed by a rerun (`mlc-run <job>`, which settles the killed run in Meltano at once),
which is the next one killed; a final rerun goes to completion. Then:

- lost: records of the source the destination does not hold (or, for updates into IFS, does not hold as the source
  says), by key; a record the destination refuses on purpose (JAGGAER's refused orders) is not lost while the audit
  trail holds it as failed, to be redone, nor is a Teams card whose delivery is unknown (a lost answer: failed as
  'delivery unknown', for a person to look in the channel and replay);
- duplicated: keys the destination holds more than once (a second Delta or warehouse row, Jira issue, Salesforce
  record, JAGGAER object, Teams card, IFS posting proposal);
- re-read: per rerun, the records it was sent that the runs before had already written (the audit trail's entries of
  keys written before, and its `unchanged`/`skipped_duplicate` entries): the largest per stream against the target's
  batch size (the aim: at most one batch per stream), and the mean per kill; beside it the baseline without
  checkpoints, where every killed run left the state `{}` and the rerun read everything written before the kill again;
- left running: audit runs still `running` as `mlc-audit runs` shows them (and as stored), and Meltano's runs still
  RUNNING.

Exit status 1 if any flow lost or duplicated a record, left a run running, or did not finish.

With --fault-rate R, every flow is measured twice, without faults and with a share R of requests failing on both
sides: the IFS and Databricks stand-ins' random fault rates (5xx, 429, dropped connections, cut-off bodies, delays;
failed statements, expiring tokens) and, for Jira, Salesforce, JAGGAER and Teams, their fault queues fed at that rate
as requests arrive (see FaultFeeder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from databricks_pipeline import duckdb_with_delta, load, private_sys_dir
from ifs_standin import CLIENT_ID, CLIENT_SECRET, REALM
from kill_runs import (audit_entries, audit_run_ids, audited_rows, kill_group, meltano_run_states, saved_bookmarks,
                       start_run)

from ml_connector_core.audit import AuditTrail
from ml_connector_core.secrets import generate_key, seal
from mlc_sandbox.databricks.sandbox import DatabricksSandboxProcess
from mlc_sandbox.ifs.sandbox import IfsSandboxProcess
from mlc_sandbox.jaggaer.sandbox import JaggaerSandboxProcess
from mlc_sandbox.jira.sandbox import JiraSandboxProcess
from mlc_sandbox.salesforce.sandbox import SalesforceSandboxProcess
from mlc_sandbox.teams.sandbox import TeamsSandboxProcess

API = "/main/ifsapplications/projection/v1"
UNLIMITED = "1000000"  # requests a minute: the plugins' own budgets lifted, as the stand-ins' limits are
EXIT_UNDELIVERED = 3  # a target read its whole input but could not deliver some records (README: Exit statuses)
POLL_SECONDS = 0.05

# Every IFS entity set a flow reads or writes: projection, entity set, key properties.
IFS_SETS = {
    "purchase_orders": ("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"]),
    "purchase_order_lines": ("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", ["OrderNo", "LineNo", "ReleaseNo"]),
    "suppliers": ("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"]),
    "customers": ("CustomerHandling", "CustomerInfoSet", ["CustomerId"]),
    "posting_proposals": ("ManSuppInvoiceHandling", "PostingProposalHeadSet", ["Company", "InvoiceNo"]),
    "posting_proposal_lines": ("ManSuppInvoiceHandling", "PostingProposalLineSet", ["Company", "InvoiceNo", "LineNo"]),
    "gl_accounts": ("AccountsHandling", "AccountSet", ["Company", "Account"]),
    "vouchers": ("VoucherHandling", "VoucherSet", ["Company", "VoucherType", "AccountingYear", "VoucherNo"]),
    "voucher_rows": ("VoucherHandling", "VoucherRowSet", ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"]),
    "accounting_dimensions": ("CodePartValuesHandling", "CodePartValueSet", ["Company", "CodePart", "CodePartValue"]),
    "work_orders": ("ActiveWorkOrdersHandling", "ActiveSeparateSet", ["WoNo"]),
}

#: Each set's change timestamp (tap-ifscloud's replication key): what the look-back window is measured on.
CHANGE_COLUMNS = {"purchase_orders": "ChangedDate", "purchase_order_lines": "LastActivityDate",
                  "suppliers": "ChangedDate", "customers": "ChangedDate", "posting_proposals": "Rowversion",
                  "posting_proposal_lines": "Rowversion", "gl_accounts": "ChangedDate", "vouchers": "DateChanged",
                  "voucher_rows": "DateChanged", "accounting_dimensions": "ChangedDate",
                  "work_orders": "LastActivityDate"}


# --- Reading IFS as any OData client would: the truth the destinations are compared with ---


class IfsReader:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def _token(self) -> str:
        response = self.http.post(f"{self.base_url}/auth/realms/{REALM}/protocol/openid-connect/token", timeout=60,
                                  data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                        "client_secret": CLIENT_SECRET})
        response.raise_for_status()
        return response.json()["access_token"]

    def rows(self, name: str, fields: list[str] | None = None, where: str | None = None) -> list[dict]:
        """Every row of the set (its key properties and `fields`), paged by $skip on a quiet server, in UTC."""
        projection, entity_set, keys = IFS_SETS[name]
        headers = {"Authorization": f"Bearer {self._token()}", "X-Ifs-Time-Zone-Aware-Request": "true"}
        select = ",".join(dict.fromkeys(keys + (fields or [])))
        rows: list[dict] = []
        while True:
            query = f"$select={select}&$orderby={','.join(keys)}&$top=1000&$skip={len(rows)}"
            if where:
                query += f"&$filter={quote(where, safe='()$:')}"
            response = self.http.get(f"{self.base_url}{API}/{projection}.svc/{entity_set}?{query}", headers=headers,
                                     timeout=120)
            if response.status_code in (403, 404):  # a projection this tenant does not have or grant
                return rows
            response.raise_for_status()
            page = response.json()["value"]
            if not page:
                return rows
            rows += page

    def keys(self, name: str, where: str | None = None) -> list[str]:
        return [key_text(row, IFS_SETS[name][2]) for row in self.rows(name, where=where)]


def key_text(row: dict, keys: list[str]) -> str:
    return "/".join(str(row[k]) for k in keys)


def lost_and_duplicated(expected: list[str], found: list[str]) -> tuple[list[str], list[str]]:
    held = Counter(found)
    return sorted(set(expected) - set(held)), sorted(k for k, n in held.items() if n > 1)


# --- Faults on both sides ---


def ifs_fault_rates(rate: float) -> dict[str, float]:
    """A share `rate` of the IFS stand-in's data requests fails, spread over its kinds."""
    return {"status_5xx": rate * 0.3, "rate_limit": rate * 0.3, "drop": rate * 0.15, "malformed": rate * 0.1,
            "delay": rate * 0.15}


def databricks_fault_rates(rate: float) -> dict[str, float]:
    return {"status_5xx": rate * 0.2, "rate_limit": rate * 0.2, "drop": rate * 0.1, "drop_response": rate * 0.1,
            "statement_failed": rate * 0.2, "slow_statement": rate * 0.1, "token_expired": rate * 0.1}


class FaultFeeder:
    """Random faults at `rate` for a stand-in whose faults are a queue (the next N matching requests suffer them):
    Jira, Salesforce, JAGGAER and Teams. Watches its request log and, for each request that arrived since, queues one
    fault with probability `rate` (kinds drawn from `kinds`), so that about that share of its requests fail."""

    def __init__(self, stand_in, rate: float, kinds: list[dict], seed: int):
        self.stand_in, self.rate, self.kinds = stand_in, rate, kinds
        self.chance = random.Random(f"feeder:{seed}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self.queued = 0

    def __enter__(self) -> "FaultFeeder":
        self.stand_in.admin("DELETE", "requests")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.stand_in.clear_faults()

    def _feed(self) -> None:
        while not self._stop.wait(0.05):
            try:  # what arrived since the last look (a request between the two calls goes uncounted)
                arrived = len(self.stand_in.requests())
                self.stand_in.admin("DELETE", "requests")
            except Exception:  # noqa: BLE001 - the stand-in is busy or stopping: try again
                continue
            for _ in range(arrived):
                if self.chance.random() < self.rate:
                    self.stand_in.add_fault(**self.chance.choice(self.kinds))
                    self.queued += 1


# --- One load: a folder, the stand-ins' URLs and sealed credentials, the runs ---


@dataclass
class Session:
    """One load of one flow: a folder of its own (Meltano's system database and run folder, the audit trail, Delta
    tables, logs) and the environment of `meltano.yml`'s sandbox environment pointed at this load's stand-ins."""

    folder: Path
    key: str
    env: dict[str, str] = field(default_factory=dict)
    stand_ins: list = field(default_factory=list)  # started for this load: stopped with it

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True)
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith(("TAP_", "TARGET_", "MELTANO_", "MLC_"))}
        self.env.update({
            "MELTANO_ENVIRONMENT": "sandbox",
            "MELTANO_SYS_DIR_ROOT": str(private_sys_dir(self.folder)),
            "MELTANO_DATABASE_URI": f"sqlite:///{self.meltano_db}",
            "MLC_AUDIT_URL": f"sqlite:///{self.audit_db}",
            "MLC_SECRET_KEY": self.key,
            **{f"{prefix}_REQUESTS_PER_MINUTE": UNLIMITED for prefix in (
                "TAP_IFSCLOUD", "TARGET_IFSCLOUD", "TARGET_JIRA", "TAP_JIRACLOUD", "TARGET_SALESFORCE", "TAP_SFDC",
                "TARGET_JAGGAER", "TAP_JAGGAER")},
        })

    @property
    def meltano_db(self) -> Path:
        return self.folder / "meltano.db"

    @property
    def audit_db(self) -> Path:
        return self.folder / "audit.sqlite"

    @property
    def log(self) -> Path:
        return self.folder / "meltano.log"

    def sealed(self, value: str) -> str:
        return seal(value, key=self.key.encode())

    def use_ifs(self, ifs) -> None:
        self.env["MLC_SANDBOX_IFS_URL"] = ifs.base_url
        self.env["MLC_SANDBOX_IFS_CLIENT_SECRET_SEALED"] = self.sealed(CLIENT_SECRET)

    def start(self, job: str) -> Any:
        return start_run(["mlc-run", job], self.env, self.log)

    def close(self) -> None:
        for stand_in in self.stand_ins:
            stand_in.stop()


def ended_well(process, session: Session, log_from: int, undelivered_ok: bool) -> bool:
    """Exit status 0; or, where a destination refuses records on purpose, Meltano's failure because the target
    could not deliver some of them (exit status 3) and for no other reason."""
    if process.returncode == 0:
        return True
    with open(session.log, "rb") as log:
        log.seek(log_from)
        said = log.read().decode(errors="replace")
    return undelivered_ok and f"Exit status {EXIT_UNDELIVERED}: the input was read to the end" in said


def run_to_end(session: Session, job: str, undelivered_ok: bool = False) -> float:
    started, log_from = time.perf_counter(), session.log.stat().st_size if session.log.exists() else 0
    process = session.start(job)
    process.wait()
    if not ended_well(process, session, log_from, undelivered_ok):
        raise RuntimeError(f"mlc-run {job} failed ({process.returncode}):\n" + session.log.read_text()[-4000:])
    return time.perf_counter() - started


# --- The flows ---


class Flow:
    """A flow as a user runs it (`mlc-run <job>` in the sandbox environment): its source, made once per flow, and
    a fresh destination for every load; `check` compares the two by key."""

    name: str  # as given to --flows
    label: str
    job: str
    batch: int  # the target's batch size: what a kill may cost per stream
    quick_batch: int | None = None  # with --quick, where the target's batch size is a setting
    scale: int  # IFS stand-in scale of a load of about a minute on a 2-core machine
    quick_scale: int
    undelivered_ok = False  # whether a run to completion may end with records the destination refused
    lookback_seconds = 300  # the tap's look-back window (tap-ifscloud's default): re-read by every run, killed or not
    tap_streams: dict[str, str] = {}  # the target's stream -> the tap's, where a mapping renames them

    def __init__(self, scale: int, quick: bool, seed: int, data_dir: Path, key: str, folder: Path):
        self.scale, self.seed, self.data_dir, self.key, self.folder = scale, seed, data_dir, key, folder
        self.batch = (quick and self.quick_batch) or self.batch
        self.ifs_sources: list = []  # IFS stand-ins the source is, or was made from (faults go there too)

    def start_ifs(self) -> IfsSandboxProcess:
        return IfsSandboxProcess(scale=self.scale, seed=self.seed, data_dir=self.data_dir, rate_limit=0)

    def open_source(self) -> None:
        """Start the source's stand-ins and read what the destination must end up holding (before any fault)."""
        raise NotImplementedError

    def open_destination(self, session: Session) -> None:
        """Start a fresh destination for this load and point the session at source and destination."""
        raise NotImplementedError

    def check(self, session: Session) -> tuple[int, dict[str, list[str]], dict[str, list[str]]]:
        """(records expected, lost keys per stream or object, duplicated keys per stream or object)."""
        raise NotImplementedError

    def fault_targets(self, session: Session) -> tuple[list, list, list]:
        """(IFS stand-ins, Databricks stand-ins, (queue stand-in, fault kinds) pairs) this load's faults go to."""
        return self.ifs_sources, [], []

    def change_moment(self, stream: str, audit_key: str) -> dt.datetime | None:
        """The source's change timestamp of the record an audit entry without one is about, where it can be told."""
        return None

    def close(self) -> None:
        for stand_in in self.ifs_sources:
            stand_in.stop()


class IfsOut(Flow):
    """Out of IFS: the IFS stand-in is the source for every load of the flow; what it holds is read once."""

    def open_source(self) -> None:
        ifs = self.start_ifs()
        self.ifs_sources.append(ifs)
        self.reader = IfsReader(ifs.base_url)
        self.truth = self.read_truth()

    def read_truth(self) -> dict[str, list[str]]:
        raise NotImplementedError

    def open_destination(self, session: Session) -> None:
        session.use_ifs(self.ifs_sources[0])

    @cached_property
    def _change_moments(self) -> dict[str, dict[str, dt.datetime]]:
        """Per tap stream: each record's key (its values joined by '-', and sorted, joined by '|') → its change
        timestamp, read from the source once."""
        moments: dict[str, dict[str, dt.datetime]] = {}
        for tap_stream in set(self.tap_streams.values()) or set(IFS_SETS):
            column, keys = CHANGE_COLUMNS[tap_stream], IFS_SETS[tap_stream][2]
            by_key = moments[tap_stream] = {}
            for row in self.reader.rows(tap_stream, fields=[column]):
                moment = moment_of(row.get(column))
                values = [str(row[k]) for k in keys]
                by_key["-".join(values)] = by_key["|".join(sorted(values))] = moment
        return moments

    def change_moment(self, stream: str, audit_key: str) -> dt.datetime | None:
        """An API target's entries carry no change timestamp: take the source record's. Audit keys name the record
        by a field of the destination made of the IFS key (`P1000000-1-1`, `PurchaseOrder:P1000000`) or by the IFS
        key fields themselves."""
        by_key = self._change_moments.get(self.tap_streams.get(stream, stream), {})
        try:
            fields = json.loads(audit_key)
        except ValueError:
            return None
        values = [str(v) for v in fields.values()] if isinstance(fields, dict) else [str(fields)]
        if len(values) == 1:
            return by_key.get(values[0].rpartition(":")[2])
        return by_key.get("|".join(sorted(values)))


class Delta(IfsOut):
    name, label, job = "delta", "IFS → Databricks (Delta)", "ifs-to-databricks"
    scale, quick_scale, batch, quick_batch = 6000, 300, 1000, 100

    def read_truth(self) -> dict[str, list[str]]:
        return {name: self.reader.keys(name) for name in IFS_SETS}

    def open_destination(self, session: Session) -> None:
        super().open_destination(session)
        session.env.update({"TARGET_DATABRICKS_LOAD_METHOD": "delta",
                            "TARGET_DATABRICKS_DELTA_ROOT": str(session.folder / "delta"),
                            "TARGET_DATABRICKS_BATCH_SIZE_ROWS": str(self.batch)})

    def table_keys(self, session: Session, stream: str) -> list[str]:
        location = session.folder / "delta" / "ifscloud" / stream
        if not (location / "_delta_log").is_dir():
            return []
        keys = IFS_SETS[stream][2]
        return ["/".join(map(str, row)) for row in duckdb_with_delta().execute(
            f"SELECT {', '.join(keys)} FROM delta_scan('{location}')").fetchall()]

    def check(self, session: Session):
        lost, duplicated = {}, {}
        for stream, expected in self.truth.items():
            lost[stream], duplicated[stream] = lost_and_duplicated(expected, self.table_keys(session, stream))
        return sum(map(len, self.truth.values())), lost, duplicated


class Warehouse(Delta):
    """The same load through the SQL warehouse path, into the Databricks stand-in (Statement Execution API)."""

    name, label = "warehouse", "IFS → Databricks (SQL warehouse)"
    scale, quick_scale, batch, quick_batch = 3000, 300, 1000, 100

    def open_destination(self, session: Session) -> None:
        IfsOut.open_destination(self, session)
        databricks = DatabricksSandboxProcess(data_dir=session.folder / "warehouse")
        session.stand_ins.append(databricks)
        session.databricks = databricks
        session.env.update({"TARGET_DATABRICKS_LOAD_METHOD": "warehouse",
                            "TARGET_DATABRICKS_WORKSPACE_HOST": databricks.base_url,
                            "TARGET_DATABRICKS_TOKEN": session.sealed(databricks.token),
                            "TARGET_DATABRICKS_WAREHOUSE_ID": databricks.warehouse_id,
                            "TARGET_DATABRICKS_BATCH_SIZE_ROWS": str(self.batch)})

    def table_keys(self, session: Session, stream: str) -> list[str]:
        keys = IFS_SETS[stream][2]
        tables = {(t["schema"], t["table"]): t["duckdb_name"] for t in session.databricks.tables()}
        if ("ifscloud", stream) not in tables:
            return []
        return ["/".join(map(str, row)) for row in session.databricks.sql(
            f"SELECT {', '.join(keys)} FROM {tables['ifscloud', stream]}")]

    def fault_targets(self, session: Session):
        return self.ifs_sources, [session.databricks], []


# What each stand-in with a fault queue suffers at random (FaultFeeder): throttling, server errors, dropped
# connections, and for JAGGAER and Teams a write carried out whose answer is lost.
JIRA_FAULTS = [{"kind": "rate_limit"}, {"kind": "status", "status": 503}, {"kind": "status", "status": 500},
               {"kind": "drop"}]
SALESFORCE_FAULTS = [{"kind": "busy"}, {"kind": "status", "status": 500}, {"kind": "drop"}, {"kind": "session"}]
JAGGAER_FAULTS = [{"kind": "rate_limit"}, {"kind": "status", "status": 503}, {"kind": "drop"},
                  {"kind": "lost_answer"}]
TEAMS_FAULTS = [{"kind": "rate_limit"}, {"kind": "status", "status": 502}, {"kind": "drop"}, {"kind": "lost_answer"}]


class IfsToJira(IfsOut):
    name, label, job = "jira", "IFS → Jira", "ifs-to-jira"
    scale, quick_scale, batch = 1500, 150, 100  # target-jira's batch (sink max size)
    # An issue whose create got a 5xx or no answer is not created again in that run (Jira may have made it: Jira has
    # no idempotency key); it is audited failed and the next run finds it by its label or creates it. With faults a
    # run to completion may therefore exit 3; those records are not lost while the audit trail holds them failed.
    undelivered_ok = True
    tap_streams = {"jira_purchase_orders": "purchase_orders", "jira_work_orders": "work_orders"}

    def read_truth(self) -> dict[str, list[str]]:
        return {"issues": [f"PurchaseOrder:{k}" for k in self.reader.keys("purchase_orders")]
                + [f"WorkOrder:{k}" for k in self.reader.keys("work_orders")]}

    def open_destination(self, session: Session) -> None:
        super().open_destination(session)
        jira = JiraSandboxProcess(rate_limit=0)
        session.stand_ins.append(jira)
        session.jira = jira
        session.env.update({"MLC_SANDBOX_JIRA_URL": jira.base_url,
                            "MLC_SANDBOX_JIRA_API_TOKEN_SEALED": session.sealed(jira.api_token)})

    def check(self, session: Session):
        with AuditTrail(f"sqlite:///{session.audit_db}") as trail:  # failed, to be redone by the next run
            to_redo = {e.key["ifs_key"] for e in trail.failures()}
        field_id = session.jira.field_ids()["IFS Key"]
        found = [issue["fields"].get(field_id) for issue in session.jira.issues()]
        lost, duplicated = lost_and_duplicated([k for k in self.truth["issues"] if k not in to_redo], found)
        return len(self.truth["issues"]) - len(to_redo), {"issues": lost}, {"issues": duplicated}

    def fault_targets(self, session: Session):
        return self.ifs_sources, [], [(session.jira, JIRA_FAULTS)]


class IfsToSalesforce(IfsOut):
    name, label, job = "salesforce", "IFS → Salesforce", "ifs-to-salesforce"
    scale, quick_scale, batch = 2000, 150, 200  # target-salesforce's batch_size (one Collections call)
    tap_streams = {"sf_supplier_accounts": "suppliers", "sf_customer_accounts": "customers",
                   "sf_orders": "purchase_orders", "sf_order_items": "purchase_order_lines"}
    # sObject and external id field of each stream, and how its value is made from the IFS record
    OBJECTS = {"supplier Accounts": ("Account", "IFS_Supplier_Id__c", "suppliers"),
               "customer Accounts": ("Account", "IFS_Customer_Id__c", "customers"),
               "Orders": ("Order", "IFS_Order_No__c", "purchase_orders"),
               "OrderItems": ("OrderItem", "IFS_Line_Key__c", "purchase_order_lines")}

    def read_truth(self) -> dict[str, list[str]]:
        return {name: [key.replace("/", "-") for key in self.reader.keys(stream)]
                for name, (_, _, stream) in self.OBJECTS.items()}

    def open_destination(self, session: Session) -> None:
        super().open_destination(session)
        salesforce = SalesforceSandboxProcess(daily_api_limit=1_000_000_000)
        session.stand_ins.append(salesforce)
        session.salesforce = salesforce
        session.env.update({"MLC_SANDBOX_SALESFORCE_URL": salesforce.base_url,
                            "MLC_SANDBOX_SALESFORCE_CLIENT_SECRET_SEALED": session.sealed(salesforce.client_secret)})

    def check(self, session: Session):
        lost, duplicated = {}, {}
        for name, (sobject, external_id, _) in self.OBJECTS.items():
            found = [r[external_id] for r in session.salesforce.records(sobject) if r.get(external_id)]
            lost[name], duplicated[name] = lost_and_duplicated(self.truth[name], found)
        return sum(map(len, self.truth.values())), lost, duplicated

    def fault_targets(self, session: Session):
        return self.ifs_sources, [], [(session.salesforce, SALESFORCE_FAULTS)]


class IfsToJaggaer(IfsOut):
    name, label, job = "jaggaer", "IFS → JAGGAER", "ifs-to-jaggaer"
    scale, quick_scale, batch = 1500, 150, 100  # target-jaggaer's batch_size
    undelivered_ok = True  # JAGGAER refuses some orders on purpose (README: IFS Cloud ⇄ JAGGAER)
    tap_streams = {"jaggaer_suppliers": "suppliers", "jaggaer_purchase_orders": "purchase_orders"}

    def read_truth(self) -> dict[str, list[str]]:
        return {"suppliers": self.reader.keys("suppliers"), "purchase orders": self.reader.keys("purchase_orders")}

    def open_destination(self, session: Session) -> None:
        super().open_destination(session)
        jaggaer = JaggaerSandboxProcess(rate_limit=0)
        session.stand_ins.append(jaggaer)
        session.jaggaer = jaggaer
        session.env.update({"MLC_SANDBOX_JAGGAER_URL": jaggaer.base_url,
                            "MLC_SANDBOX_JAGGAER_CLIENT_SECRET_SEALED": session.sealed(jaggaer.client_secret)})

    def check(self, session: Session):
        with AuditTrail(f"sqlite:///{session.audit_db}") as trail:  # refused by JAGGAER, failed, to be redone
            refused = {e.key["externalId"] for e in trail.failures(stream="jaggaer_purchase_orders")}
        orders = [o for o in self.truth["purchase orders"] if o not in refused]
        lost, duplicated = {}, {}
        lost["suppliers"], duplicated["suppliers"] = lost_and_duplicated(
            self.truth["suppliers"], [s["externalId"] for s in session.jaggaer.suppliers()])
        lost["purchase orders"], duplicated["purchase orders"] = lost_and_duplicated(
            orders, [p["externalId"] for p in session.jaggaer.purchase_orders()])
        return len(self.truth["suppliers"]) + len(orders), lost, duplicated

    def fault_targets(self, session: Session):
        return self.ifs_sources, [], [(session.jaggaer, JAGGAER_FAULTS)]


class IfsToTeams(IfsOut):
    name, label, job = "teams", "IFS → Teams", "ifs-to-teams"
    scale, quick_scale, batch = 3000, 300, 2000  # target-teams's batch: a month-end surge is one batch
    # A card whose answer was lost (a 5xx, a dropped connection: Workflows cannot be asked whether it posted it) is
    # failed in the audit trail as 'delivery unknown', for a person to look and replay, and the run exits 3.
    undelivered_ok = True
    NOTABLE = {  # teams-notable (mappers/notifications.meltano.yml): which records become cards
        "posting_proposals": "Objstate eq 'Preliminary' or Objstate eq 'AwaitingAuthorization'",
        "purchase_orders": "Objstate eq 'Planned' or Objstate eq 'Received' or Objstate eq 'Closed'",
        "vouchers": "Objstate eq 'AwaitingApproval'",
    }

    def read_truth(self) -> dict[str, list[str]]:
        return {stream: self.reader.keys(stream, where) for stream, where in self.NOTABLE.items()}

    def open_destination(self, session: Session) -> None:
        super().open_destination(session)
        teams = TeamsSandboxProcess()
        session.stand_ins.append(teams)
        session.teams = teams
        session.env.update({"TARGET_TEAMS_DIGEST": "off",  # a card per record, so that each is counted
                            "TARGET_TEAMS_WEBHOOKS": json.dumps({channel: session.sealed(url)
                                                                 for channel, url in teams.webhooks().items()})})

    def check(self, session: Session):
        # A card names its record in its title (its first text); the audit entry of each record delivered names
        # the card's message. Cards are counted per channel and title.
        titles = [(m.get("channel_id") or m.get("channel"), card_title(m)) for m in session.teams.messages()]
        with AuditTrail(f"sqlite:///{session.audit_db}") as trail:
            delivered = {(e.stream, key_text(e.key, IFS_SETS[e.stream][2]))
                         for e in trail.entries(outcome="succeeded") if e.operation in ("insert", "update")}
            # Not lost either: failed as 'delivery unknown' (the card may be in the channel), waiting for a person,
            # or refused by Teams (a fault of the last run), audited failed and resent by the next run.
            unknown = {(e.stream, key_text(e.key, IFS_SETS[e.stream][2])) for e in trail.failures()} - delivered
        lost = {stream: sorted(k for k in keys if (stream, k) not in delivered | unknown)
                for stream, keys in self.truth.items()}
        held = Counter(titles)
        duplicated = {"cards": sorted(f"{channel}: {title}" for (channel, title), n in held.items() if n > 1)}
        missing_cards = sum(map(len, self.truth.values())) - len(unknown) - len(held)
        if missing_cards > 0 and not any(lost.values()):
            lost["cards"] = [f"{missing_cards} records audited as posted have no card of their own"]
        return sum(map(len, self.truth.values())), lost, duplicated

    def fault_targets(self, session: Session):
        return self.ifs_sources, [], [(session.teams, TEAMS_FAULTS)]


class IntoIfs(Flow):
    """A return flow into IFS: its source stand-in is made once per flow (from an IFS stand-in, through the flow out
    of IFS where one exists); every load writes into a fresh IFS stand-in with the same data."""

    def open_source(self) -> None:
        self.ifs_sources.append(self.start_ifs())
        self.reader = IfsReader(self.ifs_sources[0].base_url)
        prepared = Session(self.folder / "source", self.key)
        try:
            prepared.use_ifs(self.ifs_sources[0])
            self.make_source(prepared)
        finally:
            prepared.close()

    def make_source(self, session: Session) -> None:
        raise NotImplementedError

    def open_destination(self, session: Session) -> None:
        ifs = self.start_ifs()
        session.stand_ins.append(ifs)
        session.ifs = ifs
        session.use_ifs(ifs)
        self.use_source(session)

    def use_source(self, session: Session) -> None:
        raise NotImplementedError

    def destination(self, session: Session) -> IfsReader:
        return IfsReader(session.ifs.base_url)


class JiraToIfs(IntoIfs):
    name, label, job = "jira-to-ifs", "Jira → IFS", "jira-to-ifs"
    # target-ifscloud writes record by record: what a kill may cost is the tap's STATE interval (state_interval_records)
    scale, quick_scale, batch = 1500, 150, 100
    # tap-jiracloud's lookback_minutes (2), and JQL compares minutes: the window reaches up to 3 minutes back
    lookback_seconds = 180
    tap_streams = {"ifs_purchase_order_jira_status": "issues", "ifs_work_order_jira_status": "issues"}

    def make_source(self, session: Session) -> None:
        """The issues of IFS → Jira, made by that flow from the IFS stand-in's orders."""
        self.jira = JiraSandboxProcess(rate_limit=0)
        self.use_source(session)
        run_to_end(session, "ifs-to-jira")
        field_id = self.jira.field_ids()["IFS Key"]
        issues = self.jira.issues()
        self.truth = {issue["fields"][field_id]: issue["key"] for issue in issues}
        self.updated = {issue["fields"][field_id]: jira_moment(issue["fields"]["updated"]) for issue in issues}

    def change_moment(self, stream: str, audit_key: str) -> dt.datetime | None:
        """When the issue whose status an entry wrote into IFS last changed (target-ifscloud's entries carry ETags)."""
        fields = json.loads(audit_key)
        ifs_key = f"PurchaseOrder:{fields['OrderNo']}" if "OrderNo" in fields else f"WorkOrder:{fields.get('WoNo')}"
        return self.updated.get(ifs_key)

    def use_source(self, session: Session) -> None:
        session.env.update({"MLC_SANDBOX_JIRA_URL": self.jira.base_url,
                            "MLC_SANDBOX_JIRA_API_TOKEN_SEALED": session.sealed(self.jira.api_token)})

    def check(self, session: Session):
        ifs = self.destination(session)
        held = {f"PurchaseOrder:{r['OrderNo']}": r.get("Cf_Jira_Key") for r in ifs.rows("purchase_orders", ["Cf_Jira_Key"])}
        held |= {f"WorkOrder:{r['WoNo']}": r.get("Cf_Jira_Key") for r in ifs.rows("work_orders", ["Cf_Jira_Key"])}
        lost = sorted(ifs_key for ifs_key, issue in self.truth.items() if held.get(ifs_key) != issue)
        # an update in place: a record cannot be doubled; a second write of the same values is a re-read
        return len(self.truth), {"orders": lost}, {}

    def fault_targets(self, session: Session):
        return [session.ifs], [], [(self.jira, JIRA_FAULTS)]

    def close(self) -> None:
        super().close()
        if getattr(self, "jira", None):
            self.jira.stop()


class SalesforceToIfs(IntoIfs):
    name, label, job = "salesforce-to-ifs", "Salesforce → IFS", "salesforce-to-ifs"
    scale, quick_scale, batch = 20000, 1000, 100  # the tap's STATE interval, as for Jira → IFS
    lookback_seconds = 0

    def make_source(self, session: Session) -> None:
        """A customer Account for every IFS customer, its name edited in Salesforce: each one an update for IFS."""
        self.salesforce = SalesforceSandboxProcess(daily_api_limit=1_000_000_000)
        self.truth = {}
        for customer in self.reader.rows("customers", ["Name", "Country", "AssociationNo"]):
            name = f"{customer['Name']} (edited in Salesforce)"[:100]
            self.salesforce.insert("Account", {"Name": name, "IFS_Customer_Id__c": customer["CustomerId"],
                                               "BillingCountry": customer.get("Country"),
                                               "AccountNumber": customer.get("AssociationNo")})
            self.truth[customer["CustomerId"]] = name

    def use_source(self, session: Session) -> None:
        session.env.update({"MLC_SANDBOX_SALESFORCE_URL": self.salesforce.base_url,
                            "MLC_SANDBOX_SALESFORCE_CLIENT_SECRET_SEALED":
                                session.sealed(self.salesforce.client_secret)})

    def check(self, session: Session):
        held = {r["CustomerId"]: r.get("Name") for r in self.destination(session).rows("customers", ["Name"])}
        lost = sorted(c for c, name in self.truth.items() if held.get(c) != name)
        return len(self.truth), {"customers": lost}, {}

    def fault_targets(self, session: Session):
        return [session.ifs], [], [(self.salesforce, SALESFORCE_FAULTS)]

    def close(self) -> None:
        super().close()
        if getattr(self, "salesforce", None):
            self.salesforce.stop()


class JaggaerToIfs(IntoIfs):
    name, label, job = "jaggaer-to-ifs", "JAGGAER → IFS", "jaggaer-to-ifs"
    scale, quick_scale, batch = 1500, 150, 100  # the tap's STATE interval, as for Jira → IFS
    lookback_seconds = 60  # tap-jaggaer's lookback_seconds
    tap_streams = {"ifs_posting_proposals": "invoices", "ifs_posting_proposal_lines": "invoices",
                   "ifs_suppliers_from_jaggaer": "suppliers"}

    def make_source(self, session: Session) -> None:
        """The orders of IFS → JAGGAER, made by that flow, and an invoice for each open one (its lines as ordered)."""
        self.jaggaer = JaggaerSandboxProcess(rate_limit=0)
        self.use_source(session)
        run_to_end(session, "ifs-to-jaggaer", undelivered_ok=True)
        self.truth = {}  # (Company, InvoiceNo) -> lines
        for n, order in enumerate(o for o in self.jaggaer.purchase_orders() if o["status"] == "OPEN" and o["lines"]):
            invoice = self.jaggaer.submit_invoice(invoice_for(order, f"INV-{n + 1}"))
            self.truth[f"{invoice['companyCode']}/{invoice['supplierExternalId']}:{invoice['invoiceNumber']}"] = \
                len(invoice["lines"])

    def use_source(self, session: Session) -> None:
        session.env.update({"MLC_SANDBOX_JAGGAER_URL": self.jaggaer.base_url,
                            "MLC_SANDBOX_JAGGAER_CLIENT_SECRET_SEALED": session.sealed(self.jaggaer.client_secret)})

    def check(self, session: Session):
        ifs = self.destination(session)
        heads = Counter(ifs.keys("posting_proposals"))
        lines = Counter(key.rsplit("/", 1)[0] for key in ifs.keys("posting_proposal_lines"))
        lost = sorted(k for k, n in self.truth.items() if heads[k] == 0 or lines[k] < n)
        duplicated = sorted(k for k, n in self.truth.items() if heads[k] > 1 or lines[k] > n)
        return len(self.truth), {"posting proposals": lost}, {"posting proposals": duplicated}

    def fault_targets(self, session: Session):
        return [session.ifs], [], [(self.jaggaer, JAGGAER_FAULTS)]

    def close(self) -> None:
        super().close()
        if getattr(self, "jaggaer", None):
            self.jaggaer.stop()


def invoice_for(order: dict, number: str) -> dict:
    """A JAGGAER invoice of an order as ordered (quantities, prices, GL accounts of its lines)."""
    from decimal import Decimal

    lines = []
    for n, line in enumerate(order["lines"], start=1):
        quantity, price = Decimal(str(line["quantity"])), Decimal(str(line["unitPrice"]))
        lines.append({"lineNumber": n, "description": line["description"], "quantity": str(quantity),
                      "unitPrice": str(price), "amount": str(quantity * price), "glAccount": line["glAccount"],
                      "costCenter": line.get("costCenter"), "poLineNumber": line["lineNumber"]})
    net = sum(Decimal(line["amount"]) for line in lines)
    return {"invoiceNumber": number, "supplierExternalId": order["supplierExternalId"],
            "purchaseOrderExternalId": order["externalId"], "invoiceDate": "2026-11-20", "dueDate": "2026-12-20",
            "netAmount": str(net), "taxAmount": str(net / 4), "grossAmount": str(net * 5 / 4), "lines": lines}


def card_title(message: dict) -> str:
    """The first text of a posted card (the record it is about: "Purchase order P1000012 ...")."""
    def first_text(node):
        if isinstance(node, dict):
            if node.get("type") == "TextBlock" and node.get("text"):
                return node["text"]
            for value in node.values():
                found = first_text(value)
                if found:
                    return found
        elif isinstance(node, list):
            for item in node:
                found = first_text(item)
                if found:
                    return found
        return None
    return first_text(message) or json.dumps(message)[:200]


FLOWS: dict[str, type[Flow]] = {flow.name: flow for flow in (Delta, Warehouse, IfsToJira, IfsToSalesforce,
                                                             IfsToJaggaer, IfsToTeams, JiraToIfs,
                                                             SalesforceToIfs, JaggaerToIfs)}


# --- Killing a load at random moments ---


@dataclass
class Kill:
    moment: float  # the share of the load it was aimed at
    entries_at_kill: int
    written_before: int  # distinct records written before it: what a rerun without checkpoints read again
    bookmarks: dict[str, str]  # as Meltano had saved them when it was killed
    re_read: dict[str, int] = field(default_factory=dict)  # per stream, by the rerun after it
    look_back: dict[str, int] = field(default_factory=dict)  # of those, in the tap's look-back window


@dataclass
class Result:
    flow: str
    fault_rate: float
    records: int
    uninterrupted_seconds: float
    chain_seconds: float
    kills: list[Kill]
    kills_wanted: int
    lost: dict[str, list[str]]
    duplicated: dict[str, list[str]]
    audit_running: int
    audit_running_stored: int
    meltano_running: int
    batch: int
    faults_queued: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def lost_count(self) -> int:
        return sum(map(len, self.lost.values()))

    @property
    def duplicated_count(self) -> int:
        return sum(map(len, self.duplicated.values()))


def written_keys(entries) -> set[tuple[str, str]]:
    return {(stream, key) for _, stream, key, _, _, outcome in entries if outcome == "succeeded"}


def jira_moment(text: str) -> dt.datetime:
    """Jira's timestamp (2026-12-07T10:15:30.123+0100) in UTC."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(dt.timezone.utc)


def moment_of(text: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:  # an ETag, not a change timestamp
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def in_look_back(flow: Flow, kill: Kill, stream: str, version: str | None) -> bool:
    """Whether a record re-read after `kill` is one the tap's look-back window re-reads on every run: its change
    timestamp (the entry's version) within look-back of the bookmark saved when the run was killed."""
    bookmark = moment_of(kill.bookmarks.get(flow.tap_streams.get(stream, stream)))
    changed = moment_of(version)
    return bool(bookmark and changed and bookmark - dt.timedelta(seconds=flow.lookback_seconds) <= changed <= bookmark)


def measure_re_reads(flow: Flow, session: Session, runs_of: list[set[str]], kills: list[Kill]) -> None:
    """For each kill, the records the rerun after it (the next Meltano run's audit runs) was sent that earlier runs
    had already written: keys written before, or entries the target found unchanged or already posted; apart, those
    of them the tap's look-back window re-reads anyway."""
    entries = audit_entries(session.audit_db)
    by_run: dict[str, list] = defaultdict(list)
    for entry in entries:
        by_run[entry[0]].append(entry)
    written: set[tuple[str, str]] = set()
    for n, run_ids in enumerate(runs_of):
        mine = [e for run_id in run_ids for e in by_run.get(run_id, [])]
        if n > 0:
            re_read: Counter = Counter()
            look_back: Counter = Counter()
            at_bookmark: set[str] = set()
            for _, stream, key, version, operation, _ in mine:
                if (stream, key) in written or operation in ("unchanged", "skipped_duplicate"):
                    if moment_of(version) is None and (changed := flow.change_moment(stream, key)) is not None:
                        version = changed.isoformat()
                    if in_look_back(flow, kills[n - 1], stream, version):
                        look_back[stream] += 1
                    elif version is None and stream not in at_bookmark:
                        # The tap reads its bookmark's own timestamp again (>=, as Singer taps do: records may share
                        # it), so every run re-reads the record at the bookmark. Where entries carry no change
                        # timestamp (the API targets') it cannot be told apart: one such record per stream is
                        # counted as look-back.
                        at_bookmark.add(stream)
                        look_back[stream] += 1
                    else:
                        re_read[stream] += 1
            kills[n - 1].re_read, kills[n - 1].look_back = dict(re_read), dict(look_back)
        if n < len(kills):
            written |= written_keys(mine)
            kills[n].written_before = len(written)


def audit_left_running(session: Session) -> tuple[int, int]:
    if not session.audit_db.exists():
        return 0, 0
    with AuditTrail(f"sqlite:///{session.audit_db}") as trail:
        runs = trail.runs(limit=None)
    return (sum(1 for r in runs if r.status == "running"),
            sum(1 for r in runs if (r.recorded_status or r.status) == "running"))


def apply_faults(flow: Flow, session: Session, rate: float, seed: int) -> list[FaultFeeder]:
    ifs_stand_ins, databricks_stand_ins, queued = flow.fault_targets(session)
    for ifs in ifs_stand_ins:
        ifs.change_settings(fault_rates=ifs_fault_rates(rate))
    for databricks in databricks_stand_ins:
        databricks.fault_rates(**databricks_fault_rates(rate))
    return [FaultFeeder(stand_in, rate, kinds, seed).__enter__() for stand_in, kinds in queued]


def clear_faults(flow: Flow, session: Session, feeders: list[FaultFeeder]) -> int:
    ifs_stand_ins, databricks_stand_ins, _ = flow.fault_targets(session)
    for ifs in ifs_stand_ins:
        ifs.change_settings(fault_rates=ifs_fault_rates(0))
    for databricks in databricks_stand_ins:
        databricks.fault_rates(**databricks_fault_rates(0))
    for feeder in feeders:
        feeder.__exit__()
    return sum(f.queued for f in feeders)


def measure(flow: Flow, kills: int, seed: int, fault_rate: float, key: str, folder: Path) -> Result:
    label = f"{flow.name}, faults {fault_rate:.0%}"
    chance = random.Random(f"{seed}:{flow.name}:{fault_rate}")

    # The uninterrupted load: how many entries a load makes and how long it takes (faults as in the kills).
    first = Session(folder / "uninterrupted", key)
    try:
        flow.open_destination(first)
        feeders = apply_faults(flow, first, fault_rate, seed) if fault_rate else []
        try:
            started, process = time.perf_counter(), first.start(flow.job)
            log_from = 0
            startup = None  # until the target has begun its audit run: Meltano's start, the tap's discovery
            while process.poll() is None:
                if startup is None and audit_run_ids(first.audit_db):
                    startup = time.perf_counter() - started
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
            if not ended_well(process, first, log_from, flow.undelivered_ok):
                raise RuntimeError(f"mlc-run {flow.job} failed ({process.returncode}):\n"
                                   + first.log.read_text()[-4000:])
        finally:
            clear_faults(flow, first, feeders)
        entries = audited_rows(first.audit_db)
    finally:
        first.close()
    startup = startup or 0.0
    print(f"  {label}: uninterrupted load {entries:,} audit entries in {seconds:.1f} s, {startup:.1f} s of them "
          f"before the target began ({load()})", flush=True)
    if not entries:
        raise RuntimeError(f"{flow.name}: the uninterrupted load audited nothing: see {first.log}")
    # A kill at a random moment: once the audit trail holds a random share of the load (or, for a target that
    # audits a long batch at its end, once the run has taken that share of the load's time after its start-up), a
    # random time within one batch's time later. The shares stop short of the last batch, which the load ends with.
    batch_seconds = min((seconds - startup) / 4, (seconds - startup) * flow.batch / entries)
    # A load of one batch (Teams' month-end surge, the return flows' record-by-record writes under one STATE) is
    # audited as it goes or at its end: its kills are aimed by time alone, over the first three quarters of its work.
    one_batch = entries <= flow.batch
    last = 0.75 if one_batch else 1 - flow.batch / entries

    session = Session(folder / "killed", key)
    try:
        flow.open_destination(session)
        feeders = apply_faults(flow, session, fault_rate, seed) if fault_rate else []
        done: list[Kill] = []
        runs_of: list[set[str]] = []
        notes = []
        started = time.perf_counter()
        try:
            for moment in sorted(chance.random() * last for _ in range(kills)):
                before = audit_run_ids(session.audit_db)
                process = session.start(flow.job)
                deadline = time.monotonic() + startup + moment * (seconds - startup)
                while ((one_batch or audited_rows(session.audit_db) < moment * entries)
                       and time.monotonic() < deadline and process.poll() is None):
                    time.sleep(POLL_SECONDS)
                if process.poll() is None:
                    time.sleep(chance.uniform(0, batch_seconds))
                if process.poll() is not None:
                    notes.append(f"the load ended (exit status {process.returncode}) before the kill at "
                                 f"{moment:.0%}")
                    runs_of.append(audit_run_ids(session.audit_db) - before)
                    break
                kill_group(process)
                runs_of.append(audit_run_ids(session.audit_db) - before)
                done.append(Kill(moment, audited_rows(session.audit_db), 0, saved_bookmarks(session.meltano_db)))
            before = audit_run_ids(session.audit_db)
            if not notes:
                run_to_end(session, flow.job, flow.undelivered_ok)
                runs_of.append(audit_run_ids(session.audit_db) - before)
        finally:
            queued = clear_faults(flow, session, feeders)
        chain_seconds = time.perf_counter() - started
        measure_re_reads(flow, session, runs_of, done)
        records, lost, duplicated = flow.check(session)
        audit_running, audit_stored = audit_left_running(session)
        meltano_running = meltano_run_states(session.meltano_db).get("RUNNING", 0)
    finally:
        session.close()
    print(f"  {label}: {len(done)} kills, then a run to the end, in {chain_seconds:.1f} s ({load()})", flush=True)
    return Result(flow.name, fault_rate, records, seconds, chain_seconds, done, kills, lost, duplicated,
                  audit_running, audit_stored, meltano_running, flow.batch, queued, notes)


# --- The report ---


def outcome_line(r: Result) -> str:
    re_read = max((n for k in r.kills for n in k.re_read.values()), default=0)
    mean = statistics.mean(sum(k.re_read.values()) for k in r.kills) if r.kills else 0
    without = statistics.mean(k.written_before for k in r.kills) if r.kills else 0
    return (f"{r.flow}, faults {r.fault_rate:.0%}: {r.lost_count:,} lost, {r.duplicated_count:,} duplicated, "
            f"re-read at most {re_read:,} per stream (batch {r.batch:,}), {mean:,.0f} per kill on average against "
            f"{without:,.0f} without checkpoints, after {len(r.kills)}/{r.kills_wanted} kills, "
            f"{r.audit_running + r.meltano_running} runs left running")


def print_table(results: list[Result], labels: dict[str, str]) -> None:
    header = ("flow", "faults", "records", "kills", "lost", "duplicated", "re-read max/stream", "re-read mean",
              "batch", "look-back mean", "without checkpoints mean", "left running audit/Meltano", "load s",
              "kills+reruns s")
    rows = []
    for r in results:
        per_stream = [n for k in r.kills for n in k.re_read.values()]
        totals = [sum(k.re_read.values()) for k in r.kills]
        rows.append((labels[r.flow], f"{r.fault_rate:.0%}", f"{r.records:,}", f"{len(r.kills)}/{r.kills_wanted}",
                     f"{r.lost_count:,}", f"{r.duplicated_count:,}", f"{max(per_stream, default=0):,}",
                     f"{statistics.mean(totals) if totals else 0:,.0f}", f"{r.batch:,}",
                     f"{statistics.mean(sum(k.look_back.values()) for k in r.kills) if r.kills else 0:,.0f}",
                     f"{statistics.mean(k.written_before for k in r.kills) if r.kills else 0:,.0f}",
                     f"{r.audit_running} ({r.audit_running_stored} stored)/{r.meltano_running}",
                     f"{r.uninterrupted_seconds:.0f}", f"{r.chain_seconds:.0f}"))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(str(cell).ljust(w) if i < 2 else str(cell).rjust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))))


def findings(results: list[Result], labels: dict[str, str]) -> list[str]:
    found = []
    for r in results:
        where = f"{labels[r.flow]} (faults {r.fault_rate:.0%})"
        for what, groups in (("lost", r.lost), ("duplicated", r.duplicated)):
            for stream, keys in groups.items():
                if keys:
                    found.append(f"{where}: {len(keys):,} {what} in {stream}, e.g. {', '.join(keys[:5])}")
        if r.audit_running or r.meltano_running:
            found.append(f"{where}: runs left running: {r.audit_running} in the audit trail, {r.meltano_running} "
                         "in Meltano")
        for n, kill in enumerate(r.kills):
            over = {s: c for s, c in kill.re_read.items() if c > r.batch}
            if over:
                found.append(f"{where}: the rerun after kill {n + 1} (at {kill.moment:.0%}) re-read more than one "
                             f"batch ({r.batch:,}): {over}")
        found += [f"{where}: {note}" for note in r.notes]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", default=",".join(FLOWS), help=f"which flows, of {', '.join(FLOWS)}")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per load")
    parser.add_argument("--seed", type=int, default=42, help="seed of the kill moments, the data and the faults")
    parser.add_argument("--quick", action="store_true", help="small loads, for a smoke run")
    parser.add_argument("--scale", action="append", default=[], metavar="FLOW=N",
                        help="IFS stand-in scale of a flow (purchase orders; other sets follow)")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="also measure every flow with this share of requests failing on both sides (e.g. 0.07)")
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"))
    parser.add_argument("--keep", action="store_true", help="keep the loads' folders (logs, audit trails, tables)")
    args = parser.parse_args()
    names = [n.strip() for n in args.flows.split(",") if n.strip()]
    unknown = [n for n in names if n not in FLOWS]
    if unknown:
        parser.error(f"unknown flows {unknown}: choose from {', '.join(FLOWS)}")
    scales = {}
    for given in args.scale:
        name, _, value = given.partition("=")
        if name not in FLOWS or not value.isdigit():
            parser.error(f"--scale {given}: expected FLOW=N with FLOW one of {', '.join(FLOWS)}")
        scales[name] = int(value)

    # Stopped with SIGTERM (kill, a CI timeout): unwind as on Ctrl-C, so that the stand-ins started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {os.cpu_count()} cores, {load()} (other work on the machine skews the times, not the counts)")
    key = generate_key()
    results: list[Result] = []
    labels = {name: FLOWS[name].label for name in names}
    folder = Path(tempfile.mkdtemp(prefix="mlc-chaos-"))
    failed = []
    try:
        for name in names:
            kind = FLOWS[name]
            scale = scales.get(name) or (kind.quick_scale if args.quick else kind.scale)
            print(f"{kind.label} (mlc-run {kind.job}, scale {scale:,}) ...", flush=True)
            flow = kind(scale, args.quick, args.seed, args.data_dir, key, folder / name)
            try:
                flow.open_source()
                for rate in ([0.0, args.fault_rate] if args.fault_rate else [0.0]):
                    results.append(measure(flow, args.kills, args.seed, rate, key,
                                           folder / name / f"faults-{rate:g}"))
                    # at once, so that a long run stopped part-way still has the flows measured before
                    print(f"  {outcome_line(results[-1])}", flush=True)
            except Exception as exc:  # noqa: BLE001 - the other flows still run; the exit status says so
                failed.append(f"{kind.label}: {type(exc).__name__}: {str(exc)[-3000:]}")
                print(f"  FAILED: {failed[-1]}", flush=True)
            finally:
                flow.close()
    finally:
        if args.keep:
            print(f"the loads' folders are kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print_table(results, labels)
    print("\nrecords: what the destination must hold; re-read: records a rerun was sent that had been written before "
          "the kill (largest per stream, mean per kill; aim: at most one batch per stream), apart from look-back: "
          "those the tap's look-back window (and its >= bookmark) re-reads on every run, killed or not; without "
          "checkpoints: what each rerun read again before checkpoints (every record written before the kill, mean per kill); left "
          "running: audit runs shown running (stored running) / Meltano runs RUNNING after the last run.")
    problems = findings(results, labels) + failed
    if problems:
        print("\nFINDINGS:")
        for problem in problems:
            print(f"- {problem}")
        raise SystemExit(1)
    print("\nno record lost or duplicated, no run left running")


if __name__ == "__main__":
    main()
