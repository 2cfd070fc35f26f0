"""The README as a newcomer meets it: every section's ```bash blocks run as written, in bash, in a fresh copy of the
project (sharing only .venv and Meltano's plugin environments), on a free range of ports (MLC_SANDBOX_PORT_BASE), with
nothing on PATH from .venv and no TAP_/TARGET_/MELTANO_/MLC_ variable inherited. Each section must exit 0 and show its
effect in the stand-ins it started (through their /_admin interfaces) or in the audit trail and Meltano's state; then
every background stand-in it started is stopped with its process group.

A block is skipped only when the line before it is `<!-- not run: reason -->`. To stay well inside CI's time, the test
sets the sandbox knobs the README documents under "Faster, for trying things out" (a smaller IFS data set, the
stand-ins' and plugins' rate limits lifted); the commands themselves are the README's, character for character.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from ml_connector_core.audit import AuditTrail
from support.meltano import PROJECT_ROOT, fresh_copy
from support.ports import free_port_base

pytestmark = pytest.mark.meltano  # the sections run Meltano

README = PROJECT_ROOT / "README.md"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")
OFFSETS = {"ifs": 0, "databricks": 100, "teams": 200, "jira": 300, "salesforce": 400, "jaggaer": 500}

# Documented in the README ("Faster, for trying things out"); test_the_knobs_are_documented holds it to that.
KNOBS = {
    "MLC_SANDBOX_IFS_SCALE": "200",
    "MLC_SANDBOX_IFS_RATE_LIMIT": "0", "MLC_SANDBOX_JIRA_RATE_LIMIT": "0", "MLC_SANDBOX_JAGGAER_RATE_LIMIT": "0",
    **{f"{plugin}_REQUESTS_PER_MINUTE": "100000" for plugin in (
        "TAP_IFSCLOUD", "TARGET_IFSCLOUD", "TARGET_JIRA", "TAP_JIRACLOUD", "TARGET_SALESFORCE", "TAP_SFDC",
        "TARGET_JAGGAER", "TAP_JAGGAER")},
}
INHERITED_PREFIXES = ("TAP_", "TARGET_", "MELTANO_", "MLC_")
SECRET_TYPED_IN = "typed-in-ifs-client-secret"


@dataclass
class Section:
    title: str
    blocks: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)


def readme_sections(text: str) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    section: Section | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = sections.setdefault(line[3:].strip(), Section(line[3:].strip()))
        elif line.strip().startswith("```"):
            language = line.strip()[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if language == "bash":
                assert section is not None, f"README line {i + 1}: a bash block before any section"
                before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                reason = NOT_RUN.match(before)
                if reason:
                    section.not_run.append(reason.group(1))
                else:
                    section.blocks.append("\n".join(lines[i + 1:end]))
            i = end
        i += 1
    return sections


SECTIONS = readme_sections(README.read_text())


@dataclass
class Walk:
    """One section run in its own copy of the project."""

    copy: Path
    base: int
    output: str
    returncode: int
    process_group: int
    out_dir: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.base + OFFSETS[name]}"

    def admin(self, name: str, route: str) -> dict:
        response = requests.get(f"{self.url(name)}/_admin/{route}", timeout=30)
        assert response.ok, f"{name} /_admin/{route}: {response.status_code} {response.text[:300]}"
        return response.json()

    def audit(self) -> AuditTrail:
        return AuditTrail(f"sqlite:///{self.copy / '.ml-connector' / 'audit.sqlite'}")

    def meltano(self, *args: str) -> str:
        completed = subprocess.run([str(self.copy / ".venv" / "bin" / "meltano"), *args], cwd=self.copy,
                                   env=self.env, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    env: dict = field(default_factory=dict)


def newcomer_env(home: Path, base: int) -> dict:
    venv_bin = str(PROJECT_ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(INHERITED_PREFIXES) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(venv_bin).resolve())
    return {**env, "HOME": str(home), "MLC_SANDBOX_PORT_BASE": str(base), **KNOBS}


@pytest.fixture
def walk(tmp_path):
    """walk(title, stdin=..., epilogue=...) runs the section; its stand-ins are stopped afterwards."""
    groups: list[int] = []

    def run(title: str, *, stdin: str = "", epilogue: str = "") -> Walk:
        section = SECTIONS[title]
        assert section.blocks, f"README section {title!r} has no bash block to run"
        copy = fresh_copy(tmp_path / "project")
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        (tmp_path / "home").mkdir()
        base = free_port_base()
        env = newcomer_env(tmp_path / "home", base)
        script = tmp_path / "section.sh"
        script.write_text("set -euo pipefail\n" + "\n".join(section.blocks) + "\n" + epilogue + "\n")
        log = tmp_path / "section.log"
        with log.open("wb") as output:
            process = subprocess.Popen(["bash", str(script)], cwd=copy, env={**env, "README_TEST_OUT": str(out_dir)},
                                       stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            groups.append(process.pid)
            process.communicate(stdin.encode(), timeout=900)
        return Walk(copy, base, log.read_text(errors="replace"), process.returncode, process.pid, out_dir, env)

    yield run
    for group in groups:
        _stop_group(group)


def _stop_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)


def succeeded(result: Walk) -> None:
    assert result.returncode == 0, f"the section failed (exit {result.returncode}):\n{result.output[-6000:]}"
    assert "Traceback" not in result.output, result.output[-6000:]


def ifs_writes(result: Walk) -> list[dict]:
    return [r for r in result.admin("ifs", "requests")["requests"]
            if r.get("kind") == "data" and r["method"] in ("PATCH", "POST")]


# One check per section that runs; test_every_section_is_walked_or_marked keeps this list and the README in step.


def test_teams_notifications(walk):
    result = walk("Teams notifications")
    succeeded(result)
    messages = result.admin("teams", "messages")["messages"]
    assert messages, "no card reached the Teams stand-in"
    assert f"{len(messages)} cards posted" in result.output
    with result.audit() as trail:
        assert [run.flow for run in trail.runs()] == ["ifs-to-teams"]


def test_ifs_cloud_jira(walk):
    result = walk("IFS Cloud ⇄ Jira")
    succeeded(result)
    issues = result.admin("jira", "issues")["issues"]
    assert issues, "no issue reached the Jira stand-in"
    keys = [label for issue in issues for label in issue["fields"].get("labels", []) if label.startswith("ifs-")]
    assert len(keys) == len(set(keys)) == len(issues), "each IFS order is one issue, found by the key on it"
    written_back = [r for r in ifs_writes(result) if r["method"] == "PATCH"]
    assert len(written_back) == len(issues), "every issue's key and status went back into IFS"
    assert "ifs-to-jira" in result.output and "jira-to-ifs" in result.output  # mlc-audit runs --limit 2


def test_ifs_cloud_salesforce(walk):
    result = walk("IFS Cloud ⇄ Salesforce")
    succeeded(result)
    accounts = result.admin("salesforce", "records/Account")["records"]
    orders = result.admin("salesforce", "records/Order")["records"]
    assert any(a.get("IFS_Supplier_Id__c") for a in accounts) and any(a.get("IFS_Customer_Id__c") for a in accounts)
    assert orders and all(o.get("IFS_Order_No__c") for o in orders)
    assert "ifs-to-salesforce" in result.output and "salesforce-to-ifs" in result.output


def jaggaer_refusals(result: Walk) -> list[str]:
    with result.audit() as trail:
        return [entry.error for entry in trail.failures(stream="jaggaer_purchase_orders")]


def test_ifs_cloud_jaggaer(walk):
    result = walk("IFS Cloud ⇄ JAGGAER")
    succeeded(result)
    suppliers = result.admin("jaggaer", "suppliers")["items"]
    orders = result.admin("jaggaer", "purchase-orders")["items"]
    refused = jaggaer_refusals(result)
    assert suppliers and orders
    # the README: JAGGAER refuses orders of blocked suppliers and unit prices with more than 10 decimals, on purpose
    assert refused and all("SUPPLIER_BLOCKED" in e or "more than 10 decimal places" in e for e in refused)
    assert 0.05 < len(refused) / (len(refused) + len(orders)) < 0.3
    assert all(Decimal(str(line["unitPrice"])).as_tuple().exponent >= -10 for o in orders for line in o["lines"])
    assert "ifs-to-jaggaer" in result.output and "jaggaer-to-ifs" in result.output


def test_the_audit_trail_and_replay(walk):
    result = walk("The audit trail and replay")
    succeeded(result)
    refused = jaggaer_refusals(result)
    assert refused
    assert "ifs-to-jaggaer" in result.output  # runs
    assert refused[0].splitlines()[0][:60] in result.output  # failures shows JAGGAER's message
    assert re.search(r"^entry:\s+1$", result.output, re.MULTILINE) and '"path": "/api/v1/suppliers"' in result.output
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith('{"type":"RECORD"')]
    assert len(records) == len(refused) and {r["stream"] for r in records} == {"jaggaer_purchase_orders"}


def test_reading_again_from_a_bookmark(walk):
    result = walk("Reading again from a bookmark")
    succeeded(result)
    state_id = "sandbox:tap-ifscloud-to-target-databricks"
    assert '"singer_state":{"bookmarks":{' in result.output.replace(" ", "")  # state get after the first run
    reads = [requests.utils.unquote(r["path"]) for r in result.admin("ifs", "requests")["requests"]
             if r.get("kind") == "data" and "/PurchaseOrderSet?" in r["path"] and "$filter" in r["path"]]
    # the second run read purchase orders from the rewound bookmark, less the tap's 5-minute look-back
    assert any("ChangedDate ge 2026-09-30T23:55:00Z" in path for path in reads), reads
    bookmarks = json.loads(result.meltano("state", "get", state_id))["singer_state"]["bookmarks"]
    assert bookmarks["purchase_orders"]["replication_key"] == "ChangedDate"
    assert bookmarks["purchase_orders"]["replication_key_value"] > "2026-10-01T00:00:00Z"
    assert "suppliers" in bookmarks  # read again from the beginning, as the README says of `state set`


def test_secrets(walk):
    result = walk("Secrets", stdin=SECRET_TYPED_IN + "\n",
                  epilogue='printf %s "$IFS_CLIENT_SECRET_SEALED" > "$README_TEST_OUT/sealed"')
    succeeded(result)
    home = Path(result.env["HOME"])
    key_file = home / ".config" / "ml-connector" / "key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    sealed = (result.out_dir / "sealed").read_text()
    assert sealed.startswith("sealed:v1:") and SECRET_TYPED_IN not in result.output
    opened = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "python"), "-c",
         "import sys; from ml_connector_core.secrets import unseal; print(unseal(sys.argv[1], setting_name='x'))",
         sealed], env={**result.env, "MLC_SECRET_KEY_FILE": str(key_file)}, capture_output=True, text=True)
    assert opened.stdout.strip() == SECRET_TYPED_IN, opened.stderr


WALKED = {"Teams notifications", "IFS Cloud ⇄ Jira", "IFS Cloud ⇄ Salesforce", "IFS Cloud ⇄ JAGGAER",
          "The audit trail and replay", "Reading again from a bookmark", "Secrets"}


def test_every_section_is_walked_or_marked():
    runnable = {title for title, section in SECTIONS.items() if section.blocks}
    assert runnable == WALKED, "a README section with bash blocks needs a check here, or a <!-- not run: ... --> marker"
    assert all(not (s.blocks and s.not_run) for s in SECTIONS.values()), "a section runs all of its blocks or none"
    marked = {title for title, section in SECTIONS.items() if section.not_run}
    assert marked == {"Two commands on a fresh machine (Python 3.11+)", "Benchmarks",
                      "Using the plugins outside this repository", "Running against a real tenant and workspace",
                      "Corporate CA / TLS"}


def test_the_knobs_are_documented():
    text = README.read_text()
    assert all(name in text for name in KNOBS), [name for name in KNOBS if name not in text]
