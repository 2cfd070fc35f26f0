"""Never a card twice, also when Teams' answer is lost: a post is sent again only when it certainly did not reach
Teams (no connection, 429, 503 with Retry-After); after any other failure Graph's channel is read back for the
message, and a Workflows card is audited as 'delivery unknown', never posted again on its own, only by a replay."""

from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest

from ml_connector_core.audit import AuditTrail
from ml_connector_core.oauth import ClientCredentialsAuth
from mlc_sandbox.teams import TeamsSandbox
from support.replay import replay_run
from support.singer import BIN, _encode, record_message, schema_message, state_message
from target_teams.delivery import UNKNOWN_DELIVERY, DeliveryUnknown, GraphDelivery, WorkflowsDelivery
from test_delivery import (NOTHING_NEW, PROPOSAL, config_for, old_format_failures, proposal, send,  # noqa: F401
                           teams)  # the fixture

CLOSING_STATE = state_message({"bookmarks": {"posting_proposals": {"replication_key_value": "2026-11-30T00:00:00Z"}}})


def graph_config(teams, tmp_path) -> dict:
    return {"delivery": "graph", "channels": {"*": "general"}, "ifs_base_url": "https://acme.ifs.cloud",
            "graph_url": teams.graph_url, "graph_token_url": teams.token_url, "graph_client_id": teams.client_id,
            "graph_client_secret": teams.client_secret, "graph_team_id": teams.team_id,
            "graph_channel_ids": {"general": teams.graph_channel_id("general")}, "digest": "off",
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}


def titles(teams, channel: str) -> list[str]:
    return [card["body"][0]["text"] for card in teams.cards(channel)]


def graph_requests(teams) -> list[tuple[str, int | None]]:
    """(method, status) of each Graph message request: posts and reads of the channel's messages."""
    return [(r["method"], r["status"]) for r in teams.requests() if r["path"].endswith("/messages")]


def only_entry(config: dict, run: int = 0):
    trail = AuditTrail(config["audit_url"])
    run_id = trail.runs()[run].run_id
    [entry] = list(trail.entries(run_id=run_id, stream="posting_proposals"))
    return entry


def test_graph_finds_the_card_whose_answer_was_lost_and_does_not_post_it_again(teams, tmp_path):
    config = graph_config(teams, tmp_path)
    teams.add_fault("lost_answer", api="graph")
    result = send(tmp_path, config, [proposal("INV-G1", company="30")])
    assert titles(teams, "general") == ["Supplier invoice INV-G1"]
    assert graph_requests(teams) == [("POST", None), ("GET", 200)]  # posted, answer lost; read back, found
    entry = only_entry(config)
    assert (entry.outcome, entry.operation, entry.attempts, entry.error) == ("succeeded", "insert", 1, None)
    assert "is in the channel: not posted again" in result.stderr


def test_graph_posts_again_when_the_card_is_not_in_the_channel_after_a_5xx(teams, tmp_path):
    config = graph_config(teams, tmp_path)
    teams.add_fault("status", status=502, api="graph")  # a 5xx: Teams may or may not have taken it (here: not)
    send(tmp_path, config, [proposal("INV-G2", company="30")])
    assert titles(teams, "general") == ["Supplier invoice INV-G2"]
    assert graph_requests(teams) == [("POST", 502), ("GET", 200), ("POST", 201)]
    entry = only_entry(config)
    assert (entry.outcome, entry.attempts) == ("succeeded", 2)


def test_graph_without_permission_to_read_the_channel_leaves_the_delivery_unknown(teams, tmp_path):
    teams.change_settings(graph_roles=["Teamwork.Migrate.All"])  # the app may post, not read channel messages
    config = graph_config(teams, tmp_path)
    teams.add_fault("lost_answer", api="graph")
    result = send(tmp_path, config, [proposal("INV-G3", company="30"), CLOSING_STATE], check=False)
    assert result.returncode == 3, result.stderr[-3000:]
    assert titles(teams, "general") == ["Supplier invoice INV-G3"]
    assert graph_requests(teams) == [("POST", None), ("GET", 403)]
    entry = only_entry(config)
    assert entry.outcome == "failed" and entry.error.startswith(UNKNOWN_DELIVERY)
    assert "ChannelMessage.Read.All" in entry.error and "channel 'general'" in entry.error


def test_workflows_lost_answer_is_audited_unknown_and_never_posted_again_unless_replayed(teams, tmp_path):
    config = config_for(teams, tmp_path, digest="off")
    teams.add_fault("lost_answer", channel="company-10")
    first = send(tmp_path, config, [proposal("INV-1"), proposal("INV-2", company="20"), CLOSING_STATE], check=False)
    # Exit status 3 as for any record not delivered, after the STATE of the whole input.
    assert first.returncode == 3, first.stderr[-3000:]
    assert first.states == [CLOSING_STATE["value"]]
    assert titles(teams, "company-10") == ["Supplier invoice INV-1"]  # Workflows posted it; nobody heard
    assert titles(teams, "company-20") == ["Supplier invoice INV-2"]
    trail = AuditTrail(config["audit_url"])
    [unknown] = list(trail.failures())
    assert unknown.key == {"Company": "10", "InvoiceNo": "INV-1"} and unknown.attempts == 1
    assert unknown.error.startswith(UNKNOWN_DELIVERY + "the card may be in channel 'company-10'")
    assert "look in the channel" in unknown.error and "`mlc-audit replay` posts it again" in unknown.error
    assert unknown.error in first.stderr
    assert "1 record(s) may not have reached Teams: their delivery is unknown" in first.stderr

    rerun = send(tmp_path, config, [proposal("INV-1"), proposal("INV-2", company="20")])  # the same input again
    assert rerun.returncode == 0
    assert f"may already be in channel 'company-10' (delivery unknown, audit entry {unknown.id})" in rerun.stderr
    send(tmp_path, config, NOTHING_NEW)  # and a run that redoes earlier failures first
    assert titles(teams, "company-10") == ["Supplier invoice INV-1"]
    assert [e.id for e in trail.failures()] == [unknown.id]  # still waiting for a person

    # A person looked, did not find it, and asks for it again.
    replay = replay_run(tmp_path, "target-teams", config, unknown.run_id)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert titles(teams, "company-10") == ["Supplier invoice INV-1", "Supplier invoice INV-1"]
    assert list(trail.failures()) == [] and trail.entry(unknown.id).outcome == "replayed"


def test_a_429_is_retried_and_the_lost_answer_after_it_is_not(teams, tmp_path):
    config = config_for(teams, tmp_path, digest="off", max_tries=3)
    teams.throttle("company-10", count=1, retry_after=1)
    teams.add_fault("lost_answer", channel="company-10")
    teams.add_fault("status", status=503, retry_after=1, count=3, channel="company-20")  # throttled: not posted
    result = send(tmp_path, config, [proposal("INV-3"), proposal("INV-5", company="20"), CLOSING_STATE], check=False)
    assert result.returncode == 3
    assert titles(teams, "company-10") == ["Supplier invoice INV-3"] and titles(teams, "company-20") == []
    unknown, refused = AuditTrail(config["audit_url"]).failures()
    assert unknown.error.startswith(UNKNOWN_DELIVERY) and unknown.attempts == 2
    assert refused.error.startswith("channel 'company-20' kept answering HTTP 503 after 3 attempts")
    assert ("2 record(s) could not be posted to Teams; they are resent at the start of the next run, except 1 whose "
            "delivery is unknown") in result.stderr
    teams.clear_faults()
    send(tmp_path, config, NOTHING_NEW)  # the next run resends the one Teams certainly did not take, only that one
    assert titles(teams, "company-20") == ["Supplier invoice INV-5"]
    assert titles(teams, "company-10") == ["Supplier invoice INV-3"]


class _OnFirstRetry(logging.Handler):
    """Runs `action` once, when the send loop announces its first retry (whatever the wait's length)."""

    def __init__(self, action) -> None:
        super().__init__(logging.DEBUG)
        self.action, self.done = action, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.done and "before retrying POST" in record.getMessage():
            self.done = True
            self.action()


def test_a_refused_connection_is_retried_and_the_lost_answer_after_it_is_not():
    with TeamsSandbox(port=0) as first:
        port, webhooks = first.port, first.webhooks()
    # Nothing listens on the port: the first post is refused. Teams comes up before the retry, and loses its answer.
    later = TeamsSandbox(port=port)

    def teams_comes_up() -> None:
        later.start()
        later.add_fault("lost_answer", channel="company-10")

    delivery = WorkflowsDelivery(webhooks, max_tries=4)
    logger = logging.getLogger("target_teams.delivery")
    handler, level = _OnFirstRetry(teams_comes_up), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "INV-4"}]}
    try:
        with pytest.raises(DeliveryUnknown, match="delivery unknown: the card may be in channel 'company-10'"):
            delivery.send("company-10", card)
        assert handler.done and delivery.attempts == 2
        assert [m["card"] for m in later.messages("company-10")] == [card]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        later.stop()


def test_graph_reads_back_page_after_page_to_the_first_try(teams):
    auth = ClientCredentialsAuth(teams.token_url, teams.client_id, teams.client_secret,
                                 scope="https://graph.microsoft.com/.default")
    delivery = GraphDelivery(teams.graph_url, teams.team_id, {"general": teams.graph_channel_id("general")}, auth)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "mine"}]}
    mine, other = delivery.message(card), delivery.message(card)
    url = delivery.url("general")
    sent_at = time.time()
    assert delivery.session.post(url, json=mine, auth=auth).status_code == 201
    for n in range(60):  # others post after it: it is on the second page of 50
        message = delivery.message({**card, "body": [{"type": "TextBlock", "text": f"other {n}"}]})
        assert delivery.session.post(url, json=message, auth=auth).status_code == 201
    assert delivery.was_posted("general", mine, since=sent_at) == (
        True, "it was found among the channel's 61 newest messages")
    found, how = delivery.was_posted("general", other, since=sent_at)
    assert found is False and how == "it is not among the channel's messages"
    assert [r["method"] for r in teams.requests() if r["method"] == "GET"] == ["GET"] * 4  # 2 pages, twice


def test_an_old_failure_redone_by_its_message_with_its_answer_lost_is_not_redone_again(teams, tmp_path):
    """Entries of trails written before the record was kept with a failed send are redone by their message; a lost
    answer there is recorded as unknown too, so that the next run leaves it."""
    config = config_for(teams, tmp_path)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Posting Proposals: 2"}]}
    message = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                   "contentUrl": None, "content": card}]}
    old_format_failures(config, message, 2)
    teams.add_fault("lost_answer", channel="company-10")
    assert send(tmp_path, config, NOTHING_NEW, check=False).returncode == 3
    send(tmp_path, config, NOTHING_NEW)
    assert titles(teams, "company-10") == ["Posting Proposals: 2"]
    trail = AuditTrail(config["audit_url"])
    unknown = [e for e in trail.failures() if e.error.startswith(UNKNOWN_DELIVERY)]
    assert sorted(e.key["InvoiceNo"] for e in unknown) == ["INV-0", "INV-1"]


def start_target(tmp_path, config: dict, records: list[dict]) -> subprocess.Popen:
    """target-teams on the input `send` would give it, started and left running (stderr in killed-stderr.log)."""
    config_path = tmp_path / "killed-config.json"
    config_path.write_text(json.dumps(config))
    messages = [schema_message("posting_proposals", PROPOSAL, ["Company", "InvoiceNo"], bookmark="Rowversion")]
    messages += [r if r.get("type") == "STATE" else record_message("posting_proposals", r) for r in records]
    (tmp_path / "killed-input.jsonl").write_text("".join(_encode(m) + "\n" for m in messages))
    with (tmp_path / "killed-input.jsonl").open("rb") as stdin, (tmp_path / "killed-stderr.log").open("wb") as stderr:
        return subprocess.Popen([str(BIN / "target-teams"), "--config", str(config_path)], stdin=stdin,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def test_a_run_killed_while_a_card_is_being_posted_never_posts_it_again(teams, tmp_path):
    """SIGKILL between Teams taking a card and the target recording it: the entry written before the post stays,
    saying the delivery is unknown, so the rerun of the same input posts the other cards and not that one."""
    config = config_for(teams, tmp_path, digest="off")
    teams.add_fault("late_answer", channel="company-10", delay_seconds=60)  # posted, then answered a minute later
    target = start_target(tmp_path, config, [proposal("INV-1"), proposal("INV-2", company="20"), CLOSING_STATE])
    try:
        deadline = time.monotonic() + 120
        while not teams.cards("company-10"):
            assert target.poll() is None, (tmp_path / "killed-stderr.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the card never reached the stand-in"
            time.sleep(0.1)
    finally:
        target.kill()
        target.wait()
    trail = AuditTrail(config["audit_url"])
    [pending] = list(trail.failures())
    assert pending.key == {"Company": "10", "InvoiceNo": "INV-1"} and pending.destination == "company-10"
    assert pending.error.startswith(UNKNOWN_DELIVERY + "the run ended (killed or crashed) while this card was being "
                                    "posted to channel 'company-10'")
    assert pending.source is not None  # a replay can render it again

    rerun = send(tmp_path, config, [proposal("INV-1"), proposal("INV-2", company="20"), CLOSING_STATE])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"may already be in channel 'company-10' (delivery unknown, audit entry {pending.id})" in rerun.stderr
    send(tmp_path, config, NOTHING_NEW)  # a run that redoes earlier failures first leaves it alone too
    assert titles(teams, "company-10") == ["Supplier invoice INV-1"]
    assert titles(teams, "company-20") == ["Supplier invoice INV-2"]
    assert [e.id for e in trail.failures()] == [pending.id]  # for a person: replay it if it is not in the channel


def test_a_post_whose_outcome_is_known_leaves_no_pending_entry(teams, tmp_path):
    config = config_for(teams, tmp_path, digest="off")
    teams.add_fault("status", channel="company-20", status=400)
    send(tmp_path, config, [proposal("INV-1"), proposal("INV-2", company="20"), CLOSING_STATE], check=False)
    entries = list(AuditTrail(config["audit_url"]).entries(stream="posting_proposals"))
    assert [(e.key["InvoiceNo"], e.outcome) for e in entries] == [("INV-1", "succeeded"), ("INV-2", "failed")]
    assert not entries[1].error.startswith(UNKNOWN_DELIVERY)  # refused, known: resent by the next run
