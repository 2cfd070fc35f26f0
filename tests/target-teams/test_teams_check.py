"""target-teams-check as its own process against the Teams stand-in: Workflows webhooks and Graph channels are found
without posting anything; an unknown webhook, a broken signature, an unknown Graph channel or team, a wrong Graph
secret and a channel with no webhook each get their own line; one test card goes out only with check_post_to; a
webhook's signature is never printed (only scheme://host/path is)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from mlc_sandbox.teams import TeamsSandbox
from support.check import assert_table_all_pass, run_check

CHECK = "target-teams-check"
ROUTING = {"10": "company-10", "20": "company-20", "*": "general"}


@pytest.fixture(scope="module")
def server():
    with TeamsSandbox(port=0) as stand_in:
        yield stand_in


@pytest.fixture
def teams(server):
    server.reset()
    server.clear_messages()
    return server


def webhooks_of(teams) -> dict[str, str]:
    return {name: url for name, url in teams.webhooks().items() if name in ROUTING.values()}


def signatures(webhooks: dict[str, str]) -> list[str]:
    return [parse_qs(urlsplit(url).query)["sig"][0] for url in webhooks.values()]


def workflows_config(teams, **changes) -> dict:
    return {"channels": ROUTING, "webhooks": webhooks_of(teams), "ifs_base_url": "https://acme.ifs.cloud", **changes}


def graph_config(teams, **changes) -> dict:
    return {"delivery": "graph", "channels": ROUTING, "ifs_base_url": "https://acme.ifs.cloud",
            "graph_url": teams.graph_url, "graph_token_url": teams.token_url, "graph_client_id": teams.client_id,
            "graph_client_secret": teams.client_secret, "graph_team_id": teams.team_id,
            "graph_channel_ids": {name: teams.graph_channel_id(name) for name in ROUTING.values()}, **changes}


def test_workflows_webhooks_are_found_without_posting(teams, tmp_path):
    webhooks = webhooks_of(teams)
    run = run_check(CHECK, workflows_config(teams), tmp_path, secrets=signatures(webhooks), output_format="table")
    assert assert_table_all_pass(run, "Teams") == ["webhook 'company-10'", "webhook 'company-20'", "webhook 'general'"]
    for url in webhooks.values():
        assert url.split("?")[0] in run.stdout  # scheme://host/path only
    assert "workflow found, signature accepted, nothing run or posted" in run.stdout
    assert teams.messages() == []


def test_an_unknown_webhook_a_broken_signature_and_a_channel_without_webhook(teams, tmp_path):
    webhooks = webhooks_of(teams)
    workflow_id = urlsplit(webhooks["company-20"]).path.split("/")[2]
    broken = {**webhooks,
              "company-20": webhooks["company-20"].replace(workflow_id, "0" * len(workflow_id)),
              "general": webhooks["general"][:-4] + "AAAA"}
    config = workflows_config(teams, webhooks=broken, channels={**ROUTING, "30": "company-30"})
    run = run_check(CHECK, config, tmp_path, secrets=signatures(webhooks) + signatures(broken))
    assert run.returncode == 1
    failures = {f["check"]: f for f in run.failures()}
    assert sorted(failures) == ["channel 'company-30'", "webhook 'company-20'", "webhook 'general'"]
    assert "no webhook for channel 'company-30' (routed from 30 in channels)" in failures["channel 'company-30'"]["detail"]
    assert failures["channel 'company-30'"]["fix"].startswith("webhooks.company-30 (TARGET_TEAMS_WEBHOOKS)")
    assert "HTTP 404 WorkflowNotFound" in failures["webhook 'company-20'"]["detail"]
    assert "HTTP 401 DirectApiInvalidAuthorizationSignature" in failures["webhook 'general'"]["detail"]
    assert failures["webhook 'general'"]["fix"].startswith("webhooks.general (TARGET_TEAMS_WEBHOOKS)")
    assert run.result("webhook 'company-10'")["status"] == "pass"
    assert teams.messages() == []


def test_a_url_that_is_no_workflow_trigger_is_refused_by_its_shape(teams, tmp_path):
    webhooks = webhooks_of(teams)
    config = workflows_config(teams, webhooks={**webhooks, "general": webhooks["general"].split("&sig=")[0]})
    run = run_check(CHECK, config, tmp_path, secrets=signatures(webhooks))
    assert run.returncode == 1
    [failure] = run.failures()
    assert failure["check"] == "webhook 'general'" and "lacks sig" in failure["detail"]


def test_check_post_to_posts_exactly_one_test_card_there(teams, tmp_path):
    webhooks = webhooks_of(teams)
    run = run_check(CHECK, workflows_config(teams, check_post_to="general"), tmp_path, secrets=signatures(webhooks))
    assert run.returncode == 0, run.stdout
    assert run.result("test card to 'general'")["status"] == "pass"
    [message] = teams.messages()
    assert message["channel_id"] == "general"
    assert message["card"]["body"][0]["text"] == "ml-connector: test card"


def test_graph_channels_are_found_without_posting(teams, tmp_path):
    run = run_check(CHECK, graph_config(teams), tmp_path, secrets=[teams.client_secret], output_format="table")
    assert assert_table_all_pass(run, "Teams") == [
        "Graph token", "channel 'company-10'", "channel 'company-20'", "channel 'general'"]
    assert "'General' (standard) in team" in run.stdout
    assert teams.messages() == []


def test_an_unknown_graph_channel_a_wrong_team_and_a_wrong_secret(teams, tmp_path):
    channel_ids = {name: teams.graph_channel_id(name) for name in ROUTING.values()}
    unknown = run_check(CHECK, graph_config(teams, graph_channel_ids={**channel_ids, "company-20": "19:nope@thread.tacv2"}),
                        tmp_path, secrets=[teams.client_secret])
    assert unknown.returncode == 1
    [failure] = unknown.failures()
    assert failure["check"] == "channel 'company-20'" and "was not found in team" in failure["detail"]
    assert failure["fix"].startswith("graph_channel_ids.company-20 (TARGET_TEAMS_GRAPH_CHANNEL_IDS)")

    no_team = run_check(CHECK, graph_config(teams, graph_team_id="00000000-1111-2222-3333-444444444444"), tmp_path,
                        secrets=[teams.client_secret])
    assert [(f["check"], f["fix"]) for f in no_team.failures()] == [
        ("channel 'company-10'", "graph_team_id (TARGET_TEAMS_GRAPH_TEAM_ID)")]

    wrong = "wrong-graph-client-secret"
    refused = run_check(CHECK, graph_config(teams, graph_client_secret=wrong), tmp_path,
                        secrets=[wrong, teams.client_secret])
    assert refused.returncode == 1
    [failure] = refused.results
    assert failure["check"] == "Graph token" and "AADSTS7000215" in failure["detail"]
    assert failure["fix"].startswith("graph_client_secret (TARGET_TEAMS_GRAPH_CLIENT_SECRET)")
    assert teams.messages() == []


def test_a_throttled_a_busy_and_a_lost_check_request_are_asked_again(teams, tmp_path):
    webhooks = webhooks_of(teams)
    teams.throttle("company-10", retry_after=0, api="workflows")
    teams.add_fault("status", status=503, retry_after=0, api="graph", channel="general")
    teams.add_fault("drop", api="graph", channel="company-20")
    run = run_check(CHECK, workflows_config(teams), tmp_path, secrets=signatures(webhooks), output_format="table")
    assert assert_table_all_pass(run, "Teams") == ["webhook 'company-10'", "webhook 'company-20'", "webhook 'general'"]
    graph = run_check(CHECK, graph_config(teams), tmp_path, secrets=[teams.client_secret], output_format="table")
    assert assert_table_all_pass(graph, "Teams") == [
        "Graph token", "channel 'company-10'", "channel 'company-20'", "channel 'general'"]
    faults = [r["fault"] for r in teams.requests() if r["fault"]]
    assert sorted(faults) == ["drop", "rate_limit", "status"]
    assert teams.messages() == []
