"""The Teams stand-in's Microsoft Graph path over real HTTP: client-credentials tokens that expire, channel messages
with the card as a JSON string referenced from the body."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from mlc_sandbox.teams.settings import TeamsSettings

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
SCOPE = "https://graph.microsoft.com/.default"
CARD = {"type": "AdaptiveCard", "version": "1.5",
        "body": [{"type": "TextBlock", "text": "Invoice 4711 is on hold", "wrap": True},
                 {"type": "FactSet", "facts": [{"title": "Company", "value": "20"}]}]}


def graph_message(*cards, attachment_ids=None, body_ids=None) -> dict:
    ids = attachment_ids or [f"card-{i}" for i in range(len(cards))]
    body_ids = ids if body_ids is None else body_ids
    return {"body": {"contentType": "html",
                     "content": "".join(f'<attachment id="{i}"></attachment>' for i in body_ids)},
            "attachments": [{"id": i, "contentType": ADAPTIVE, "contentUrl": None,
                             "content": c if isinstance(c, str) else json.dumps(c)} for i, c in zip(ids, cards)]}


@pytest.fixture
def teams(teams_server):
    server = teams_server
    server.reset()
    server.change_settings(token_ttl=3599, graph_roles=list(TeamsSettings.graph_roles))
    return server


def token(teams, **form) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": teams.client_id, "client_secret": teams.client_secret,
            "scope": SCOPE, **form}
    return requests.post(teams.token_url, data={k: v for k, v in data.items() if v is not None})


def bearer(teams) -> dict:
    response = token(teams)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_token_then_post_gives_201_with_the_chat_message(teams):
    answer = token(teams).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3599
    claims = json.loads(base64.urlsafe_b64decode(answer["access_token"].split(".")[1] + "=="))
    assert claims["aud"] == "https://graph.microsoft.com" and claims["tid"] == teams.tenant_id

    url = teams.graph_messages_url("company-20")
    assert url == (f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/"
                   f"{requests.utils.quote(teams.graph_channel_id('company-20'), safe='')}/messages")
    response = requests.post(url, json=graph_message(CARD),
                             headers={"Authorization": f"Bearer {answer['access_token']}"})
    assert response.status_code == 201, response.text
    chat = response.json()
    assert chat["id"].isdigit() and chat["createdDateTime"].endswith("Z") and chat["messageType"] == "message"
    assert chat["channelIdentity"] == {"teamId": teams.team_id, "channelId": teams.graph_channel_id("company-20")}
    assert json.loads(chat["attachments"][0]["content"]) == CARD
    assert chat["body"]["content"] == '<attachment id="card-0"></attachment>'

    [stored] = teams.messages("company-20")
    assert stored["api"] == "graph" and stored["card"] == CARD and stored["id"] == chat["id"]

    listed = requests.get(url, headers=bearer(teams)).json()
    assert [m["id"] for m in listed["value"]] == [chat["id"]]


def test_unencoded_channel_ids_and_the_tenant_domain_work_too(teams):
    raw = f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/{teams.graph_channel_id('general')}/messages"
    domain_token = requests.post(f"{teams.base_url}/mlcsandbox.onmicrosoft.com/oauth2/v2.0/token",
                                 data={"grant_type": "client_credentials", "client_id": teams.client_id,
                                       "client_secret": teams.client_secret, "scope": SCOPE}).json()
    response = requests.post(raw, json=graph_message(CARD),
                             headers={"Authorization": f"Bearer {domain_token['access_token']}"})
    assert response.status_code == 201


def test_client_secret_basic_authentication(teams):
    basic = base64.b64encode(f"{teams.client_id}:{teams.client_secret}".encode()).decode()
    response = requests.post(teams.token_url, data={"grant_type": "client_credentials", "scope": SCOPE},
                             headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200 and response.json()["access_token"]


def test_expired_tokens_are_refused_with_401(teams):
    headers = bearer(teams)
    assert requests.post(teams.graph_messages_url("general"), json=graph_message(CARD),
                         headers=headers).status_code == 201
    assert teams.expire_tokens() >= 1
    response = requests.post(teams.graph_messages_url("general"), json=graph_message(CARD), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "expired" in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # a fresh token works again
    assert requests.post(teams.graph_messages_url("general"), json=graph_message(CARD),
                         headers=bearer(teams)).status_code == 201


def test_tokens_expire_after_their_lifetime(teams):
    teams.change_settings(token_ttl=0)
    answer = token(teams).json()
    assert answer["expires_in"] == 0
    response = requests.post(teams.graph_messages_url("general"), json=graph_message(CARD),
                             headers={"Authorization": f"Bearer {answer['access_token']}"})
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers, words", [
    ({}, "empty"), ({"Authorization": "Bearer nonsense"}, "not well formed"),
    ({"Authorization": "Bearer a.b.c"}, "validation failure"), ({"Authorization": "Basic eDp5"}, "empty"),
])
def test_missing_or_foreign_tokens_are_401(teams, headers, words):
    response = requests.post(teams.graph_messages_url("general"), json=graph_message(CARD), headers=headers)
    assert response.status_code == 401
    assert words in response.json()["error"]["message"]
    assert teams.messages() == []


@pytest.mark.parametrize("form, status, error, code", [
    ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
    ({"client_secret": None}, 401, "invalid_client", 7000218),
    ({"client_id": "someone-else"}, 400, "unauthorized_client", 700016),
    ({"scope": "https://graph.microsoft.com/ChannelMessage.Send"}, 400, "invalid_scope", 1002012),
    ({"scope": "https://management.azure.com/.default"}, 400, "invalid_resource", 500011),
    ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ({"scope": None}, 400, "invalid_request", 900144),
])
def test_the_token_endpoint_refuses_as_entra_id_does(teams, form, status, error, code):
    response = token(teams, **form)
    assert response.status_code == status
    answer = response.json()
    assert answer["error"] == error and answer["error_codes"] == [code]
    assert answer["error_description"].startswith(f"AADSTS{code}:")


def test_an_unknown_tenant_is_refused(teams):
    response = requests.post(f"{teams.base_url}/not-our-tenant/oauth2/v2.0/token",
                             data={"grant_type": "client_credentials", "client_id": teams.client_id,
                                   "client_secret": teams.client_secret, "scope": SCOPE})
    assert response.status_code == 400 and response.json()["error_codes"] == [90002]


def test_unknown_team_or_channel_is_404(teams):
    headers = bearer(teams)
    channel = requests.utils.quote(teams.graph_channel_id("general"), safe="")
    for url in (f"{teams.base_url}/v1.0/teams/00000000-0000-0000-0000-000000000000/channels/{channel}/messages",
                f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/19%3Anope%40thread.tacv2/messages"):
        response = requests.post(url, json=graph_message(CARD), headers=headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound"


def test_a_channel_can_be_read_without_posting(teams):
    headers = bearer(teams)
    channel = requests.utils.quote(teams.graph_channel_id("general"), safe="")
    found = requests.get(f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/{channel}", headers=headers)
    assert found.status_code == 200
    assert (found.json()["id"], found.json()["displayName"]) == (teams.graph_channel_id("general"), "General")
    for url in (f"{teams.base_url}/v1.0/teams/00000000-0000-0000-0000-000000000000/channels/{channel}",
                f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/19%3Anope%40thread.tacv2"):
        response = requests.get(url, headers=headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound"
    unauthenticated = requests.get(f"{teams.base_url}/v1.0/teams/{teams.team_id}/channels/{channel}")
    assert unauthenticated.status_code == 401
    assert teams.messages() == []


@pytest.mark.parametrize("sent, path", [
    (graph_message(CARD, body_ids=["other"]), "$.attachments[0].id"),  # attachment not referenced...
    (graph_message(CARD, attachment_ids=["a"], body_ids=["a", "b"]), "$.body.content"),  # ...or tag names nothing
    ({"body": {"contentType": "html", "content": '<attachment id="a"></attachment>'},
      "attachments": [{"id": "a", "contentType": ADAPTIVE, "content": CARD}]}, "$.attachments[0].content"),
    (graph_message("{not json"), "$.attachments[0].content"),
    (graph_message({**CARD, "version": "1.6"}), "$.attachments[0].content.version"),
    (graph_message({**CARD, "body": [{"type": "TextBlock", "text": "x", "size": "huge"}]}),
     "$.attachments[0].content.body[0].size"),
    ({"body": {"contentType": "markdown", "content": "hi"}}, "$.body.contentType"),
    ({"attachments": []}, "$.body"),
])
def test_graph_messages_are_validated_naming_the_path(teams, sent, path):
    response = requests.post(teams.graph_messages_url("company-10"), json=sent, headers=bearer(teams))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["path"] == path and path in error["message"]
    assert teams.messages() == []
    assert teams.rejections()[-1]["path"] == path


def test_several_cards_in_one_graph_message(teams):
    second = {**CARD, "body": [{"type": "TextBlock", "text": "second"}]}
    response = requests.post(teams.graph_messages_url("company-10"), json=graph_message(CARD, second),
                             headers=bearer(teams))
    assert response.status_code == 201
    assert teams.messages("company-10")[0]["cards"] == [CARD, second]


def test_plain_text_messages_are_taken(teams):
    response = requests.post(teams.graph_messages_url("company-10"),
                             json={"body": {"contentType": "text", "content": "hello"}}, headers=bearer(teams))
    assert response.status_code == 201 and response.json()["body"]["content"] == "hello"
    assert teams.messages("company-10")[0]["card"] is None


def test_oversize_graph_messages_are_413(teams):
    big = {**CARD, "body": [{"type": "TextBlock", "text": "y" * 30_000}]}
    response = requests.post(teams.graph_messages_url("company-10"), json=graph_message(big), headers=bearer(teams))
    assert response.status_code == 413 and response.json()["error"]["code"] == "RequestEntityTooLarge"


def test_messages_are_listed_newest_first_a_page_at_a_time(teams):
    headers = bearer(teams)
    url = teams.graph_messages_url("company-30")
    posted = [requests.post(url, json=graph_message({**CARD, "body": [{"type": "TextBlock", "text": f"card {n}"}]}),
                            headers=headers).json()["id"] for n in range(57)]
    first = requests.get(url, headers=headers).json()  # 20 a page unless asked
    assert first["@odata.count"] == 20 and [m["id"] for m in first["value"]] == posted[::-1][:20]
    assert "$skiptoken=" in first["@odata.nextLink"] and "$top" not in first["@odata.nextLink"]
    seen, page = [], requests.get(url, params={"$top": 50}, headers=headers).json()
    while True:
        seen += [m["id"] for m in page["value"]]
        if "@odata.nextLink" not in page:
            break
        page = requests.get(page["@odata.nextLink"], headers=headers).json()
    assert seen == posted[::-1]  # 50 and 7, each once, newest first
    assert page["@odata.count"] == 7
    too_many = requests.get(url, params={"$top": 51}, headers=headers)
    assert too_many.status_code == 400 and "Limit of '50' for Top Query has been exceeded" in too_many.text
    assert requests.get(url, params={"$skiptoken": "nonsense"}, headers=headers).status_code == 400


def test_listing_messages_needs_a_read_permission_the_token_carries(teams):
    headers = bearer(teams)  # issued with the default permissions: it keeps them
    teams.change_settings(graph_roles=["Teamwork.Migrate.All"])  # the admin withdrew ChannelMessage.Read.All
    url = teams.graph_messages_url("general")
    assert requests.get(url, headers=headers).status_code == 200
    refused = requests.get(url, headers=bearer(teams))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "Forbidden"
    assert "ChannelMessage.Read.All" in refused.json()["error"]["message"]
    assert requests.post(url, json=graph_message(CARD), headers=bearer(teams)).status_code == 201  # posting still works
    channel = url.removesuffix("/messages")
    assert requests.get(channel, headers=bearer(teams)).status_code == 403  # nor Channel.ReadBasic.All
