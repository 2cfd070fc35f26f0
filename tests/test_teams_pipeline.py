"""IFS Cloud → Microsoft Teams end to end through Meltano: the notable records (stream maps in mappers/) as cards in
their company's channel, every card valid for Teams; a rerun posts nothing; a status change posts one update."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ml_connector_core.audit import AuditTrail
from mlc_sandbox.teams import TeamsSandbox
from support.ifs import CLIENT_SECRET
from support.sealed import sealed_env
from support.singer import BIN

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def teams():
    with TeamsSandbox(port=0) as stand_in:
        yield stand_in


def run_flow(env: dict) -> None:
    completed = subprocess.run(
        [str(BIN / "meltano"), "run", "tap-ifscloud-notifications", "teams-notable", "target-teams"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]


def posted(teams) -> list[dict]:
    return [card for channel in ("company-10", "company-20", "company-30", "general") for card in teams.cards(channel)]


def pipeline_env(ifs, teams, tmp_path, **extra: str) -> dict:
    return sealed_env({
        **os.environ, "TAP_IFSCLOUD_BASE_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_TEAMS_WEBHOOKS": json.dumps(teams.webhooks()), "TARGET_TEAMS_DIGEST": "off",
        "TARGET_TEAMS_AUDIT_URL": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MLC_SANDBOX_IFS_URL": ifs.base_url,  # the cards' "Open in IFS" links (meltano.yml's sandbox environment)
        **extra})


def test_notable_records_become_cards_once_and_changes_become_updates(ifs, teams, tmp_path):
    env = pipeline_env(ifs, teams, tmp_path)
    run_flow(env)
    notable = (
        ifs.count("ManSuppInvoiceHandling", "PostingProposalHeadSet",
                  "Objstate eq 'Preliminary' or Objstate eq 'AwaitingAuthorization'")
        + ifs.count("PurchaseOrderHandling", "PurchaseOrderSet",
                    "Objstate eq 'Planned' or Objstate eq 'Received' or Objstate eq 'Closed'")
        + ifs.count("VoucherHandling", "VoucherSet", "Objstate eq 'AwaitingApproval'")
    )
    cards = posted(teams)
    assert notable > 0 and len(cards) == notable
    assert teams.rejections() == []  # every card valid against the Adaptive Card 1.5 schema and Teams' rules
    invoice_cards = [c for c in teams.cards("company-10") if c["body"][0]["text"].startswith("Supplier invoice")]
    assert invoice_cards and all(c["body"][1]["text"].endswith((" SEK", " EUR", " USD", " NOK", " DKK", " GBP"))
                                 for c in invoice_cards)

    run_flow(env)  # a rerun: the look-back re-reads, nothing is posted again
    assert len(posted(teams)) == notable

    invoice_no = invoice_cards[0]["body"][0]["text"].removeprefix("Supplier invoice ")
    ifs.change("PostingProposalHeadSet", {"Company": "10", "InvoiceNo": invoice_no}, {"Objstate": "AwaitingAuthorization",
                                                                                       "AuthorizerId": "NEWAPPROVER"})
    run_flow(env)
    assert len(posted(teams)) == notable + 1
    update = teams.cards("company-10")[-1]  # the newest card of the invoice's channel
    assert update["body"][0]["items"][0]["text"] == "Updated"
    assert any("Authorizer" in item["text"] and "NEWAPPROVER" in item["text"] for item in update["body"][0]["items"])


def test_cards_teams_could_not_take_are_replayed_once_each_and_the_failed_run_says_so(ifs, tmp_path):
    """Teams down for a whole first run (digests included), then back: `mlc-audit replay` through `meltano invoke`
    posts each undelivered message once, what it prints agrees with the audit trail, and the failed run exited non-zero
    after saving the bookmarks of what it read."""
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "TAP_IFSCLOUD_BASE_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
           "MLC_SANDBOX_IFS_URL": ifs.base_url,
           "TARGET_TEAMS_MAX_TRIES": "2", "TARGET_TEAMS_AUDIT_URL": audit_url, "MLC_AUDIT_URL": audit_url,
           "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}"}
    teams = TeamsSandbox(port=0).start()
    port, env["TARGET_TEAMS_WEBHOOKS"] = teams.port, json.dumps(teams.webhooks())
    env = sealed_env(env)
    teams.stop()  # Teams unreachable for the whole run

    failed = subprocess.run([str(BIN / "meltano"), "run", "tap-ifscloud-notifications", "teams-notable", "target-teams"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert failed.returncode != 0
    with AuditTrail(audit_url) as trail:
        [run] = trail.runs()
        failures = list(trail.failures())
    assert run.status == "failed" and len(failures) > 20
    assert "could not be posted to Teams" in failed.stderr and f"mlc-audit failures --run {run.run_id}" in failed.stderr
    # The STATE of what was read was emitted and kept: the next run does not read it all again.
    state = subprocess.run([str(BIN / "meltano"), "state", "get", "sandbox:tap-ifscloud-notifications-to-target-teams"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert state.returncode == 0 and '"purchase_orders"' in state.stdout, state.stderr[-2000:]

    # One message per channel and batch was attempted; several entries share a digest.
    messages_per_channel: dict[str, set[str]] = {}
    for entry in failures:
        messages_per_channel.setdefault(entry.destination, set()).add(entry.payload_json)
    assert sum(map(len, messages_per_channel.values())) < len(failures)  # digests were among them

    with TeamsSandbox(port=port) as teams:
        replay = subprocess.run([str(BIN / "mlc-audit"), "replay", "--run", run.run_id, "--target-command",
                                 "meltano invoke target-teams"], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=900)
        assert replay.returncode == 0, replay.stdout + replay.stderr[-4000:]
        assert f"replayed {len(failures)} entries" in replay.stdout
        assert {channel: len(teams.cards(channel)) for channel in messages_per_channel} == {
            channel: len(messages) for channel, messages in messages_per_channel.items()}
        assert teams.rejections() == []
        with AuditTrail(audit_url) as trail:
            assert list(trail.failures()) == []
            assert all(trail.entry(entry.id).outcome == "replayed" for entry in failures)
        audit_failures = subprocess.run([str(BIN / "mlc-audit"), "failures"], env=env, capture_output=True, text=True)
        assert "no failed entries" in audit_failures.stdout

        posted_before = len(posted(teams))
        rerun = subprocess.run([str(BIN / "meltano"), "run", "tap-ifscloud-notifications", "teams-notable",
                                "target-teams"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert rerun.returncode == 0, rerun.stderr[-4000:]
        assert len(posted(teams)) == posted_before  # nothing twice


def test_over_tls_trusting_the_ca_through_requests_ca_bundle(start_ifs, sandbox_tls, tmp_path):
    """IFS and Teams serve HTTPS with a test CA's certificate; no plugin sets ca_bundle, REQUESTS_CA_BUNDLE names the
    CA (as a company's machines often do): tap-ifscloud (whose streams send through singer-sdk's Session.send) and
    target-teams trust it."""
    ifs = start_ifs(tls=sandbox_tls)
    with TeamsSandbox(port=0, **sandbox_tls.server_options) as teams:
        env = pipeline_env(ifs, teams, tmp_path, REQUESTS_CA_BUNDLE=str(sandbox_tls.ca_file))
        assert not any(name.endswith("_CA_BUNDLE") and name.startswith(("TAP_", "TARGET_")) for name in env)
        assert all(url.startswith("https://") for url in teams.webhooks().values())
        run_flow(env)
        cards = posted(teams)
        assert cards and teams.rejections() == []
        assert len(cards) == ifs.count("VoucherHandling", "VoucherSet", "Objstate eq 'AwaitingApproval'") + ifs.count(
            "PurchaseOrderHandling", "PurchaseOrderSet", "Objstate eq 'Planned' or Objstate eq 'Received' or "
            "Objstate eq 'Closed'") + ifs.count("ManSuppInvoiceHandling", "PostingProposalHeadSet",
                                                "Objstate eq 'Preliminary' or Objstate eq 'AwaitingAuthorization'")
