"""target-teams against the Teams stand-in: the right cards in the right channels, never the same record version
twice, one update card that says what changed, digests, a 429 storm survived, failed sends resent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml_connector_core.audit import AuditEntry, AuditTrail
from mlc_sandbox.teams import TeamsSandbox
from support.singer import record_message, run_target, schema_message, state_message

PROPOSAL = {
    "Company": {"type": ["string"]}, "InvoiceNo": {"type": ["string"]}, "Identity": {"type": ["string", "null"]},
    "PurchaseOrderNo": {"type": ["string", "null"]}, "GrossAmount": {"type": ["number", "null"]},
    "CurrencyCode": {"type": ["string", "null"]}, "Objstate": {"type": ["string", "null"]},
    "AuthorizerId": {"type": ["string", "null"]}, "InvoiceDate": {"type": ["string", "null"], "format": "date"},
    "DueDate": {"type": ["string", "null"], "format": "date"}, "Rowversion": {"type": ["string"], "format": "date-time"},
    "etag": {"type": ["string", "null"]},
}


def proposal(no: str, company: str = "10", state: str = "AwaitingAuthorization", amount: str = "1500.5",
             etag: str = "v1") -> dict:
    return {"Company": company, "InvoiceNo": no, "Identity": "S10001", "PurchaseOrderNo": "P1000001",
            "GrossAmount": Decimal(amount), "CurrencyCode": "SEK", "Objstate": state, "AuthorizerId": "ERIK",
            "InvoiceDate": "2026-11-02", "DueDate": "2026-12-02", "Rowversion": "2026-11-02T10:00:00Z",
            "etag": f'W/"{no}:{etag}"'}


@pytest.fixture
def teams():
    with TeamsSandbox(port=0) as stand_in:
        yield stand_in


def config_for(teams, tmp_path, **extra) -> dict:
    return {"channels": {"10": "company-10", "20": "company-20", "*": "general"},
            "webhooks": teams.webhooks(), "ifs_base_url": "https://acme.ifs.cloud",
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


def send(tmp_path, config, records, **kwargs):
    messages = [schema_message("posting_proposals", PROPOSAL, ["Company", "InvoiceNo"], bookmark="Rowversion")]
    messages += [r if r.get("type") == "STATE" else record_message("posting_proposals", r) for r in records]
    return run_target(tmp_path, config, messages, executable="target-teams", **kwargs)


#: What the tap sends when no posting proposal changed: the SCHEMA, then the STATE that closes its sync.
NOTHING_NEW = [state_message({"bookmarks": {"posting_proposals": {"replication_key_value": "2026-11-30T00:00:00Z"}}})]


def test_cards_go_to_the_channel_of_the_company_with_finance_formatting(teams, tmp_path):
    send(tmp_path, config_for(teams, tmp_path), [proposal("INV-1"), proposal("INV-2", company="20", amount="99")])
    assert teams.rejections() == []
    [card] = teams.cards("company-10")
    assert card["body"][0]["text"] == "Supplier invoice INV-1"
    assert card["body"][1]["text"] == "1,500.50 SEK"
    assert card["actions"][0]["url"].startswith("https://acme.ifs.cloud/main/ifsapplications/web/page/ManualSupplierInvoice")
    assert "%20eq%20'INV-1'" in card["actions"][0]["url"]
    assert [c["body"][0]["text"] for c in teams.cards("company-20")] == ["Supplier invoice INV-2"]


def test_reruns_and_replays_post_nothing_new_and_a_change_posts_one_update(teams, tmp_path):
    config = config_for(teams, tmp_path)
    send(tmp_path, config, [proposal("INV-1")])
    send(tmp_path, config, [proposal("INV-1")])  # a rerun: same version
    assert len(teams.cards("company-10")) == 1
    send(tmp_path, config, [proposal("INV-1", state="Authorized", etag="v2")])
    send(tmp_path, config, [proposal("INV-1", state="Authorized", etag="v2")])
    cards = teams.cards("company-10")
    assert len(cards) == 2
    banner = cards[1]["body"][0]
    assert banner["items"][0]["text"] == "Updated"
    assert banner["items"][1]["text"] == "Status: AwaitingAuthorization → Authorized"
    trail = AuditTrail(config["audit_url"])
    operations = [e.operation for e in trail.entries(stream="posting_proposals")]
    assert operations == ["insert", "skipped_duplicate", "update", "skipped_duplicate"]


def test_a_new_version_that_changes_nothing_on_the_card_is_not_posted(teams, tmp_path):
    config = config_for(teams, tmp_path)
    send(tmp_path, config, [proposal("INV-1")])
    send(tmp_path, config, [proposal("INV-1", etag="v2")])  # e.g. a field the card does not show
    assert len(teams.cards("company-10")) == 1


def test_a_surge_becomes_one_digest_card_per_channel(teams, tmp_path):
    config = config_for(teams, tmp_path, digest_threshold=10)
    send(tmp_path, config, [proposal(f"INV-{n}") for n in range(25)] + [proposal("INV-US", company="20")])
    [digest] = teams.cards("company-10")
    assert digest["body"][1]["text"] == "25 records need attention"
    assert len(teams.cards("company-20")) == 1 and teams.rejections() == []
    send(tmp_path, config, [proposal(f"INV-{n}") for n in range(25)])  # the digest counts as posted
    assert len(teams.cards("company-10")) == 1


def test_a_429_storm_loses_nothing(teams, tmp_path):
    teams.throttle("company-10", count=4, retry_after=1)
    send(tmp_path, config_for(teams, tmp_path, digest="off"), [proposal(f"INV-{n}") for n in range(3)])
    assert sorted(c["body"][0]["text"] for c in teams.cards("company-10")) == [
        "Supplier invoice INV-0", "Supplier invoice INV-1", "Supplier invoice INV-2"]


def test_a_long_wait_is_announced_once_without_the_webhook_signature(teams, tmp_path):
    teams.throttle("company-10", count=1, retry_after=6)
    result = send(tmp_path, config_for(teams, tmp_path, digest="off"), [proposal("INV-1")])
    assert [c["body"][0]["text"] for c in teams.cards("company-10")] == ["Supplier invoice INV-1"]
    webhook = teams.webhook_url("company-10")
    waits = [line for line in result.stderr.splitlines() if "Waiting " in line]
    assert len(waits) == 1, result.stderr
    assert f"before retrying POST {webhook.split('?')[0]} (HTTP 429, Retry-After 6), attempt 2 of 8" in waits[0]
    signature = webhook.split("sig=")[1]
    assert "sig=" not in result.stderr and signature not in result.stderr


def test_short_waits_say_nothing(teams, tmp_path):
    teams.throttle("company-10", count=2, retry_after=1)
    result = send(tmp_path, config_for(teams, tmp_path, digest="off"), [proposal("INV-1")])
    assert len(teams.cards("company-10")) == 1
    assert "Waiting " not in result.stderr and "Backing off" not in result.stderr, result.stderr


def test_a_failed_send_is_audited_and_resent_first_by_the_next_run(teams, tmp_path):
    config = config_for(teams, tmp_path, max_tries=2)
    teams.add_fault("status", count=10, status=503, channel="company-10")
    result = send(tmp_path, config, [proposal("INV-9"), proposal("INV-10", company="20"),
                                     state_message({"bookmarks": {"posting_proposals": {"replication_key_value": "x"}}})],
                  check=False)
    # Not delivered is not success: exit status 3, after the STATE of the input (INV-10 was delivered, INV-9 is in
    # the audit trail and is resent first), with where to look.
    assert result.returncode == 3 and result.states == [{"bookmarks": {"posting_proposals": {"replication_key_value": "x"}}}]
    run_id = AuditTrail(config["audit_url"]).runs(1)[0].run_id
    assert "1 record(s) could not be posted to Teams" in result.stderr
    assert f"mlc-audit failures --run {run_id}" in result.stderr
    assert f"Teams cards: 1 insert, 1 not delivered (audit run {run_id})" in result.stderr
    trail = AuditTrail(config["audit_url"])
    [failed] = list(trail.failures(stream="posting_proposals"))
    assert failed.destination == "company-10" and "503" in failed.error
    teams.clear_faults()
    send(tmp_path, config, NOTHING_NEW)  # nothing new arrives, the failed card still goes out
    assert [c["body"][0]["text"] for c in teams.cards("company-10")] == ["Supplier invoice INV-9"]
    assert list(trail.failures(stream="posting_proposals")) == []


def test_webhook_urls_never_reach_the_logs(teams, tmp_path):
    config = config_for(teams, tmp_path)
    result = send(tmp_path, config, [proposal("INV-1")])
    for url in teams.webhooks().values():
        assert url.split("sig=")[1] not in result.stderr


def test_graph_delivery_with_an_app_token(teams, tmp_path):
    config = {"delivery": "graph", "channels": {"*": "general"}, "ifs_base_url": "https://acme.ifs.cloud",
              "graph_url": teams.graph_url, "graph_token_url": teams.token_url, "graph_client_id": teams.client_id,
              "graph_client_secret": teams.client_secret, "graph_team_id": teams.team_id,
              "graph_channel_ids": {"general": teams.graph_channel_id("general")},
              "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}
    send(tmp_path, config, [proposal("INV-G1", company="30")])
    assert teams.rejections() == []
    assert [c["body"][0]["text"] for c in teams.cards("general")] == ["Supplier invoice INV-G1"]


def test_graph_delivery_survives_a_revoked_token(teams, tmp_path):
    config = {"delivery": "graph", "channels": {"*": "general"}, "ifs_base_url": "https://acme.ifs.cloud",
              "graph_url": teams.graph_url, "graph_token_url": teams.token_url, "graph_client_id": teams.client_id,
              "graph_client_secret": teams.client_secret, "graph_team_id": teams.team_id,
              "graph_channel_ids": {"general": teams.graph_channel_id("general")}, "digest": "off",
              "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}
    teams.add_fault("status", count=1, status=401, api="graph")  # the first post is refused as unauthorised
    send(tmp_path, config, [proposal("INV-G2", company="30"), proposal("INV-G3", company="30")])
    assert sorted(c["body"][0]["text"] for c in teams.cards("general")) == [
        "Supplier invoice INV-G2", "Supplier invoice INV-G3"]


def test_a_webhook_sealed_with_another_key_is_one_line_naming_it(teams, tmp_path):
    from ml_connector_core.secrets import generate_key, seal

    webhooks = teams.webhooks()
    config = config_for(teams, tmp_path, webhooks={**webhooks, "company-10": seal(webhooks["company-10"],
                                                                                   generate_key().encode())})
    result = send(tmp_path, config, [proposal("INV-1")], env={"MLC_SECRET_KEY": generate_key()}, check=False)
    assert result.returncode == 1
    assert ("the sealed value of 'webhooks.company-10' cannot be opened with MLC_SECRET_KEY: it was sealed with "
            "another key, or is damaged") in result.stderr
    assert "Traceback" not in result.stderr and webhooks["company-10"].split("sig=")[1] not in result.stderr
    assert teams.cards("company-10") == []



def old_format_failures(config: dict, message: dict, count: int) -> None:
    """Failed sends as trails written before the record was kept with a failed send hold them: only the message."""
    with AuditTrail(config["audit_url"]) as trail:
        with trail.start_run(flow="ifs-to-teams", plugin="target-teams") as run:
            run.remember_schema("posting_proposals", {"type": "object", "properties": PROPOSAL}, ["Company", "InvoiceNo"])
            run.record([AuditEntry(stream="posting_proposals", key={"Company": "10", "InvoiceNo": f"INV-{n}"},
                                   operation="insert", outcome="failed", destination="company-10", payload=message,
                                   error="channel 'company-10' unreachable") for n in range(count)])

def test_failures_of_older_versions_that_kept_only_the_message_are_posted_once_per_message(teams, tmp_path):
    """Trails written before the record was kept with a failed send: each entry of a digest held the whole digest."""
    config = config_for(teams, tmp_path)
    digest = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                  "contentUrl": None, "content": {
        "type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Posting Proposals: 3 to review"}]}}]}
    old_format_failures(config, digest, 3)
    send(tmp_path, config, NOTHING_NEW)
    assert [c["body"][0]["text"] for c in teams.cards("company-10")] == ["Posting Proposals: 3 to review"]
    assert list(AuditTrail(config["audit_url"]).failures()) == []
