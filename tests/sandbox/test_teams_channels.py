"""Channels of the Teams stand-in: defaults, given on the command line or as a file, added at run time; the
subprocess runner and the admin interface."""

from __future__ import annotations

import json

import pytest
import requests

from mlc_sandbox.cli import build_parser
from mlc_sandbox.teams import TeamsSandbox, TeamsSandboxProcess
from mlc_sandbox.teams.cards import load_schema
from mlc_sandbox.teams.channels import load

MESSAGE = {"type": "message", "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
    "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hello"}]}}]}


def test_channel_specs_files_and_json(tmp_path):
    assert [(c.id, c.name) for c in load(["finance-10=Finance%20SE", "procurement-20=Procurement%2C%20US"])] == [
        ("finance-10", "Finance SE"), ("procurement-20", "Procurement, US")]
    assert [(c.id, c.name) for c in load(["a=A,b"])] == [("a", "A"), ("b", "b")]
    path = tmp_path / "channels.json"
    path.write_text(json.dumps([{"id": "ops", "name": "Operations"}, "audit"]))
    assert [(c.id, c.name) for c in load([str(path)])] == [("ops", "Operations"), ("audit", "audit")]
    assert [c.id for c in load(['{"x": "X", "y": "Y"}'])] == ["x", "y"]
    assert [c.id for c in load(None)] == ["company-10", "company-20", "company-30", "general"]
    with pytest.raises(ValueError, match="twice"):
        load(["a=A", "a=B"])
    with pytest.raises(ValueError, match="channel id"):
        load(["bad id=x"])


def test_webhook_urls_do_not_change_between_runs():
    with TeamsSandbox(port=0, channels={"finance-10": "Finance SE"}) as first:
        url_one = first.webhook_url("finance-10").split("/", 3)[3]
    with TeamsSandbox(port=0, channels=[("finance-10", "Finance SE")]) as second:
        assert second.webhook_url("finance-10").split("/", 3)[3] == url_one
    with TeamsSandbox(port=0, channels="finance-10", signing_key="another key") as third:
        assert third.webhook_url("finance-10").split("/", 3)[3] != url_one


def test_channels_added_at_run_time_get_a_working_webhook():
    with TeamsSandbox(port=0, channels="general") as teams:
        added = teams.add_channel("finance-10", "Finance SE")
        assert added["name"] == "Finance SE" and added["webhook_url"].startswith(teams.base_url)
        assert requests.post(added["webhook_url"], json=MESSAGE).status_code == 202
        assert teams.messages("finance-10")[0]["card"]["body"][0]["text"] == "hello"
        with pytest.raises(RuntimeError, match="409"):
            teams.add_channel("finance-10")
        with pytest.raises(RuntimeError, match="400"):
            teams.add_channel("no spaces please")
        with pytest.raises(RuntimeError, match="404"):
            teams.messages("unknown")
        assert [c["id"] for c in teams.channels()] == ["general", "finance-10"]
        assert teams.channel("finance-10")["messages"] == 1


def test_the_admin_interface_describes_the_run():
    with TeamsSandbox(port=0) as teams:
        info = teams.admin("GET", "info")
        assert info["token_url"] == teams.token_url and info["team_id"] == teams.team_id
        assert requests.get(f"{teams.base_url}/_admin/nothing").status_code == 404
        assert teams.change_settings(max_message_bytes=100)["max_message_bytes"] == 100
        assert requests.post(teams.webhook_url("general"), json=MESSAGE).status_code == 413
        with pytest.raises(RuntimeError, match="unknown settings"):
            teams.change_settings(colour="blue")


def test_cli_options():
    args = build_parser().parse_args(["serve", "teams"])
    assert (args.port, args.validation, args.max_message_bytes, args.channel, args.channels) == (
        8800, "sync", 28 * 1024, None, None)
    args = build_parser().parse_args(["serve", "teams", "--port", "0", "--channel", "finance-10=Finance%20SE",
                                      "--channel", "procurement-20", "--channels", "x.json"])
    assert args.channel == ["finance-10=Finance%20SE", "procurement-20"] and args.channels == ["x.json"]


def test_the_subprocess_runner_serves_its_channels(tmp_path):
    # --schema: the schema can also come from a path; this one makes TextBlock.wrap required, to see it is used
    schema = load_schema()
    schema["definitions"]["TextBlock"]["required"] = ["text", "wrap"]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    with TeamsSandboxProcess(port=0, channels="finance-10=Finance%20SE,general", token_ttl=60,
                             schema=str(tmp_path / "schema.json")) as teams:
        assert requests.get(f"{teams.base_url}/_admin/health").json() == {"status": "ok"}
        assert [c["name"] for c in teams.channels()] == ["Finance SE", "general"]
        response = requests.post(teams.webhook_url("finance-10"), json=MESSAGE)
        assert response.json()["error"]["path"] == "$.attachments[0].content.body[0].wrap"
        wrapped = json.loads(json.dumps(MESSAGE))
        wrapped["attachments"][0]["content"]["body"][0]["wrap"] = True
        assert requests.post(teams.webhook_url("finance-10"), json=wrapped).status_code == 202
        bad = json.loads(json.dumps(wrapped))
        bad["attachments"][0]["content"]["version"] = "1.6"
        assert requests.post(teams.webhook_url("finance-10"), json=bad).status_code == 400
        assert len(teams.messages("finance-10")) == 1 and len(teams.rejections()) == 2
        token = requests.post(teams.token_url, data={"grant_type": "client_credentials", "client_id": teams.client_id,
                                                     "client_secret": teams.client_secret,
                                                     "scope": "https://graph.microsoft.com/.default"}).json()
        assert token["expires_in"] == 60  # --token-ttl reached the child


def test_the_subprocess_reports_bad_channel_specs():
    with pytest.raises(RuntimeError, match="channel id"):
        TeamsSandboxProcess(port=0, channels="bad id=x")

