"""The Teams stand-in driven as Microsoft's documentation and third-party clients drive Teams: the Workflows webhook
envelope posted with plain requests, pymsteams 0.2 (which speaks only the retired Office 365 connector MessageCard),
and Microsoft Graph channel messages with plain requests (docs/teams-sandbox.md)."""

from __future__ import annotations

import json

import pymsteams
import pytest
import requests

from mlc_sandbox.teams import TeamsSandbox

ADAPTIVE = "application/vnd.microsoft.card.adaptive"

# the card of Microsoft's example ("Create and send messages", Send Adaptive Cards using an Incoming Webhook)
DOCUMENTED_CARD = {
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "type": "AdaptiveCard",
    "version": "1.2",
    "body": [{"type": "TextBlock", "text": "For Samples and Templates, see https://adaptivecards.io/samples"}],
}


def documented_envelope(card: dict) -> dict:
    """The Workflows message as Microsoft documents it: type "message", one Adaptive Card attachment whose contentUrl
    is null ("Value should always be null") and whose content is the card itself."""
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE, "contentUrl": None, "content": card}]}


@pytest.fixture
def teams_as_workflows_runs_it():
    """Validation "flow": what Workflows answers a signed request that passes the trigger's schema (202, even when the
    run then fails to post)."""
    with TeamsSandbox(port=0, validation="flow") as teams:
        yield teams


# --- Workflows: the documented envelope ----------------------------------------------------------------------------


def test_the_documented_envelope_posted_with_requests(teams):
    url = teams.webhook_url("company-10")
    response = requests.post(url, data=json.dumps(documented_envelope(DOCUMENTED_CARD)),
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 202 and response.content == b""
    assert response.headers["x-ms-workflow-run-id"]
    [posted] = teams.messages("company-10")
    assert posted["card"] == DOCUMENTED_CARD and posted["api"] == "workflows"
    assert posted["request"] == documented_envelope(DOCUMENTED_CARD)


def test_the_envelope_without_content_url_is_refused_as_workflows_does(teams_as_workflows_runs_it):
    """Public reports of the "Post to a channel when a webhook request is received" template: an attachment without
    contentUrl gets 400 from the trigger itself, so not even validation "flow" answers 202."""
    teams = teams_as_workflows_runs_it
    envelope = documented_envelope(DOCUMENTED_CARD)
    del envelope["attachments"][0]["contentUrl"]
    response = requests.post(teams.webhook_url("company-10"), json=envelope)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TriggerInputSchemaMismatch"
    assert response.json()["error"]["message"] == (
        "The input body for trigger 'manual' of type 'Request' did not match its schema definition. Error details: "
        "'Required properties are missing from object: contentUrl.'.")
    assert teams.messages() == []


# --- pymsteams 0.2: the Office 365 connector MessageCard -----------------------------------------------------------


def message_card(url: str) -> pymsteams.connectorcard:
    card = pymsteams.connectorcard(url)
    card.title("Purchase order P1000001 is late")
    card.text("Supplier ACME AB, due 2024-05-01")
    card.addLinkButton("Open in IFS", "https://ifs.example.com/main/ifsapplications/web/page/PurchaseOrder/Form")
    return card


def test_pymsteams_message_card_is_taken_then_never_posted(teams_as_workflows_runs_it):
    """What Workflows does with a MessageCard (Microsoft: Workflows support Adaptive Cards only): the trigger takes it
    (202, so pymsteams reports success), the template's "Send each adaptive card" loop finds no attachments and the
    run fails; nothing reaches the channel."""
    teams = teams_as_workflows_runs_it
    card = message_card(teams.webhook_url("company-20"))
    assert card.send() is True
    assert card.last_http_response.status_code == 202
    assert teams.messages() == []
    [failed] = teams.rejections()
    assert (failed["flow_run"], failed["code"], failed["channel_id"]) == ("Failed", "ExpressionEvaluationFailed",
                                                                          "company-20")
    assert "'Send_each_adaptive_card' failed" in failed["message"] and "MessageCard" in failed["message"]
    assert failed["run_id"] == card.last_http_response.headers["x-ms-workflow-run-id"]
    sent = json.loads(failed["request"])  # pymsteams' connector card: no "@type", no "attachments"
    assert sent["title"] == "Purchase order P1000001 is late" and "attachments" not in sent


def test_pymsteams_message_card_is_refused_at_the_request_by_default(teams):
    """Validation "sync" (the default) answers the run's failure at the request, so pymsteams raises with the reason."""
    card = message_card(teams.webhook_url("company-20"))
    with pytest.raises(pymsteams.TeamsWebhookException) as refused:
        card.send()
    error = json.loads(str(refused.value))["error"]
    assert error["code"] == "ExpressionEvaluationFailed" and error["path"] == "$.attachments"
    assert "Workflows posts Adaptive Cards only" in error["message"]
    assert card.last_http_response.status_code == 400
    assert teams.messages() == []


def test_pymsteams_posting_the_documented_envelope(teams):
    """pymsteams has no Adaptive Card builder; its payload replaced by the documented envelope, its HTTP POST works."""
    card = pymsteams.connectorcard(teams.webhook_url("general"))
    card.payload = documented_envelope(DOCUMENTED_CARD)
    assert card.send() is True and card.last_http_response.status_code == 202
    assert [m["card"] for m in teams.messages("general")] == [DOCUMENTED_CARD]


# --- Microsoft Graph: channel messages with plain requests ---------------------------------------------------------


def graph_session(teams) -> requests.Session:
    """A client-credentials token from Entra ID's v2.0 endpoint, as Microsoft's docs show it."""
    answer = requests.post(teams.token_url, data={
        "client_id": teams.client_id, "client_secret": teams.client_secret,
        "scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.text
    session = requests.Session()
    session.headers["Authorization"] = f"{answer.json()['token_type']} {answer.json()['access_token']}"
    return session


def test_graph_channel_message_with_an_adaptive_card_as_documented(teams):
    """POST /teams/{team-id}/channels/{channel-id}/messages with the card as a JSON string, referenced from the body by
    an <attachment> tag (Graph: "Send chatMessage in a channel or a chat"; "Working with Teams messaging APIs")."""
    session = graph_session(teams)
    channel_id = teams.graph_channel_id("company-30")
    url = f"{teams.graph_url}/v1.0/teams/{teams.team_id}/channels/{channel_id}/messages"
    message = {
        "subject": None,
        "body": {"contentType": "html", "content": '<attachment id="74d20c7f34aa4a7fb74e2b30004247c5"></attachment>'},
        "attachments": [{"id": "74d20c7f34aa4a7fb74e2b30004247c5", "contentType": ADAPTIVE, "contentUrl": None,
                         "content": json.dumps(DOCUMENTED_CARD), "name": None, "thumbnailUrl": None}],
    }
    created = session.post(url, json=message)
    assert created.status_code == 201, created.text
    chat = created.json()
    assert chat["channelIdentity"] == {"teamId": teams.team_id, "channelId": channel_id}
    assert json.loads(chat["attachments"][0]["content"]) == DOCUMENTED_CARD
    assert chat["body"] == message["body"] and chat["from"]["application"]["id"] == teams.client_id

    hello = session.post(url, json={"body": {"content": "Hello World"}})
    assert hello.status_code == 201 and hello.json()["body"] == {"contentType": "text", "content": "Hello World"}

    listed = session.get(url)
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["value"]] == [hello.json()["id"], chat["id"]]  # newest first
    assert [m["card"] for m in teams.messages("company-30")] == [DOCUMENTED_CARD, None]


def test_graph_without_a_token_is_401(teams):
    url = teams.graph_messages_url("company-30")
    response = requests.post(url, json={"body": {"content": "Hello World"}})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert teams.messages() == []
