"""The Teams stand-in's Workflows webhooks over real HTTP: what Teams takes (202), what it refuses and why."""

from __future__ import annotations

import copy
import json

import pytest
import requests

from mlc_sandbox.teams import TeamsSandbox

ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def card(**changes) -> dict:
    document = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Purchase order P1000001 is late", "size": "Large", "weight": "Bolder",
             "wrap": True},
            {"type": "FactSet", "facts": [{"title": "Supplier", "value": "ACME AB"},
                                          {"title": "Due", "value": "2024-05-01"}]},
            {"type": "ColumnSet", "columns": [{"type": "Column", "width": "auto",
                                               "items": [{"type": "TextBlock", "text": "Company 10",
                                                          "color": "Attention"}]}]},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open in IFS",
                     "url": "https://ifs.example.com/main/ifsapplications/web/page/PurchaseOrder/Form"}],
        "msteams": {"width": "Full"},
    }
    document.update(changes)
    return document


def message(content) -> dict:
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE, "contentUrl": None, "content": content}]}


def test_a_valid_card_is_accepted_with_202_and_readable_through_admin(teams):
    url = teams.webhook_url("company-10")
    first, second = card(), card(body=[{"type": "TextBlock", "text": "second"}])
    response = requests.post(url, json=message(first))
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["x-ms-workflow-run-id"]
    assert requests.post(url, json=message(second)).status_code == 202

    stored = teams.messages("company-10")
    assert [m["card"] for m in stored] == [first, second]  # in order, exactly as sent
    assert stored[0]["api"] == "workflows" and stored[0]["channel_name"] == "IFS 10 Sweden"
    assert stored[0]["received_at"] <= stored[1]["received_at"] and stored[0]["received_at"].endswith("Z")
    assert int(stored[0]["id"]) < int(stored[1]["id"])  # Teams message ids: epoch milliseconds
    assert teams.messages("company-20") == []
    assert teams.rejections() == []
    assert [m["channel_id"] for m in teams.messages()] == ["company-10", "company-10"]


def test_every_default_channel_has_its_own_signed_webhook(teams):
    channels = {c["id"]: c for c in teams.channels()}
    assert set(channels) == {"company-10", "company-20", "company-30", "general"}
    urls = [c["webhook_url"] for c in channels.values()]
    assert len(set(urls)) == 4
    for url in urls:
        assert "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" in url
        assert requests.post(url, json=message(card())).status_code == 202
    assert {m["channel_id"] for m in teams.messages()} == set(channels)


def test_the_power_platform_form_of_the_url_is_taken(teams):
    url = teams.webhook_url("company-10").replace("/workflows/", "/powerautomate/automations/direct/workflows/")
    response = requests.post(url.replace("api-version=2016-06-01", "api-version=1"), json=message(card()))
    assert response.status_code == 202
    assert len(teams.messages("company-10")) == 1


@pytest.mark.parametrize("change, path, words", [
    (lambda c: c["body"][0].update(size="huge"), "$.body[0].size", "extraLarge"),
    (lambda c: c["body"][0].pop("text"), "$.body[0].text", "required"),
    (lambda c: c["body"][1]["facts"][1].update(value=42), "$.body[1].facts[1].value", "string"),
    (lambda c: c["body"][0].update(colour="good"), "$.body[0].colour", "not allowed"),
    (lambda c: c["body"].append({"type": "TextBlok", "text": "x"}), "$.body[3].type", "TextBlock"),
    (lambda c: c["body"][2]["columns"][0]["items"][0].update(color="purple"),
     "$.body[2].columns[0].items[0].color", "attention"),
    (lambda c: c["actions"][0].pop("url"), "$.actions[0].url", "required"),
    (lambda c: c.update(type="Card"), "$.type", "AdaptiveCard"),
    (lambda c: c["body"][0].pop("type"), "$.body[0].type", "required"),
    (lambda c: c["msteams"].update(width="Wide"), "$.msteams.width", "Full"),
])
def test_schema_violations_are_refused_naming_the_path(teams, change, path, words):
    bad = card()
    change(bad)
    response = requests.post(teams.webhook_url("company-20"), json=message(bad))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    full_path = "$.attachments[0].content" + path[1:]
    assert error["path"] == full_path
    assert error["message"].startswith(full_path)
    assert words.lower() in error["message"].lower()
    assert error["details"][0]["card_path"] == path
    assert teams.messages() == []
    [rejection] = teams.rejections()
    assert (rejection["status"], rejection["path"], rejection["channel_id"]) == (400, full_path, "company-20")


def test_several_problems_are_all_listed(teams):
    bad = card()
    bad["body"][0]["size"] = "huge"
    bad["actions"][0].pop("url")
    error = requests.post(teams.webhook_url("general"), json=message(bad)).json()["error"]
    assert {d["card_path"] for d in error["details"]} == {"$.body[0].size", "$.actions[0].url"}
    assert "1 more problem" in error["message"]


def test_nested_cards_are_checked_too(teams):
    bad = card(actions=[{"type": "Action.ShowCard", "title": "More",
                         "card": {"type": "AdaptiveCard", "body": [{"type": "Image", "url": "https://x/y.png",
                                                                    "size": "giant"}]}}])
    error = requests.post(teams.webhook_url("general"), json=message(bad)).json()["error"]
    assert error["path"] == "$.attachments[0].content.actions[0].card.body[0].size"


@pytest.mark.parametrize("version, code", [("1.6", "UnsupportedCardVersion"), ("2.0", "UnsupportedCardVersion"),
                                           ("one", "InvalidCardVersion")])
def test_versions_above_1_5_are_refused(teams, version, code):
    response = requests.post(teams.webhook_url("company-10"), json=message(card(version=version)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["path"]) == (code, "$.attachments[0].content.version")


def test_older_versions_are_taken_and_the_version_is_required(teams):
    for version in ("1.0", "1.2", "1.4"):
        assert requests.post(teams.webhook_url("company-10"), json=message(card(version=version))).status_code == 202
    unversioned = card()
    del unversioned["version"]
    error = requests.post(teams.webhook_url("company-10"), json=message(unversioned)).json()["error"]
    assert (error["code"], error["path"]) == ("MissingCardVersion", "$.attachments[0].content.version")


def test_a_1_6_only_property_is_a_schema_violation(teams):
    bad = card()
    bad["body"][0]["targetWidth"] = "Wide"  # Adaptive Cards 1.6
    error = requests.post(teams.webhook_url("company-10"), json=message(bad)).json()["error"]
    assert error["path"] == "$.attachments[0].content.body[0].targetWidth"


def test_oversize_messages_are_refused_with_413(teams):
    big = card(body=[{"type": "TextBlock", "text": "x" * 1000, "wrap": True} for _ in range(30)])
    size = len(json.dumps(message(big)).encode())
    assert size > 28 * 1024
    response = requests.post(teams.webhook_url("company-30"), json=message(big))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"
    assert "28" in response.json()["error"]["message"]
    assert teams.messages() == [] and teams.rejections()[0]["status"] == 413

    # just under the limit is fine
    fits = card(body=[{"type": "TextBlock", "text": "x" * 1000, "wrap": True} for _ in range(26)])
    assert len(json.dumps(message(fits)).encode()) < 28 * 1024
    assert requests.post(teams.webhook_url("company-30"), json=message(fits)).status_code == 202


@pytest.mark.parametrize("mutate, path, code", [
    (lambda m: m.update(type="invoke"), "$.type", "InvalidMessageType"),
    (lambda m: m.pop("type"), "$.type", "InvalidMessageType"),
    (lambda m: m.update(attachments=[]), "$.attachments", "NoAdaptiveCard"),
    (lambda m: m.pop("attachments"), "$.attachments", "ExpressionEvaluationFailed"),
    (lambda m: m["attachments"].append(copy.deepcopy(m["attachments"][0])), "$.attachments", "TooManyAttachments"),
    (lambda m: m["attachments"][0].update(contentType="application/vnd.microsoft.teams.card.o365connector"),
     "$.attachments[0].contentType", "UnsupportedAttachment"),
    (lambda m: m["attachments"][0].update(content=json.dumps(card())), "$.attachments[0].content",
     "TriggerInputSchemaMismatch"),
    (lambda m: m["attachments"][0].update(content=[1]), "$.attachments[0].content", "TriggerInputSchemaMismatch"),
    (lambda m: m["attachments"][0].update(contentUrl="https://x/card.json"), "$.attachments[0].contentUrl",
     "UnsupportedAttachment"),
    (lambda m: m["attachments"][0].pop("contentUrl"), "$.attachments[0]", "TriggerInputSchemaMismatch"),
    (lambda m: m.update(attachments={"contentType": ADAPTIVE}), "$.attachments", "TriggerInputSchemaMismatch"),
])
def test_the_envelope_is_checked(teams, mutate, path, code):
    sent = message(card())
    mutate(sent)
    response = requests.post(teams.webhook_url("company-10"), json=sent)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["path"], error["code"]) == (path, code)


TRIGGER_REFUSALS = [
    # what public reports of the "Post to a channel when a webhook request is received" template show, word for word
    (lambda m: m["attachments"][0].pop("contentUrl"), "$.attachments[0]",
     "Required properties are missing from object: contentUrl."),
    (lambda m: [m["attachments"][0].pop(k) for k in ("contentType", "content")], "$.attachments[0]",
     "Required properties are missing from object: contentType, content."),
    (lambda m: m["attachments"][0].update(contentUrl=7), "$.attachments[0].contentUrl",
     "Invalid type. Expected String, Null but got Integer."),
    (lambda m: m.update(attachments="card"), "$.attachments", "Invalid type. Expected Array but got String."),
    (lambda m: m["attachments"].append("card"), "$.attachments[1]", "Invalid type. Expected Object but got String."),
]


@pytest.mark.parametrize("validation", ["sync", "flow"])
@pytest.mark.parametrize("mutate, path, detail", TRIGGER_REFUSALS)
def test_the_trigger_schema_refuses_at_once_in_either_mode(mutate, path, detail, validation):
    """The trigger checks the body against its schema before any flow run exists: 400 even where bad cards get 202."""
    with TeamsSandbox(port=0, validation=validation) as teams:
        sent = message(card())
        mutate(sent)
        response = requests.post(teams.webhook_url("company-10"), json=sent)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "TriggerInputSchemaMismatch" and error["path"] == path
        assert error["message"] == ("The input body for trigger 'manual' of type 'Request' did not match its schema "
                                    f"definition. Error details: '{detail}'.")
        assert teams.messages() == []
        [rejection] = teams.rejections()
        assert rejection["status"] == 400 and "flow_run" not in rejection
        # a body that is not an object at all
        response = requests.post(teams.webhook_url("company-10"), json=[message(card())])
        assert (response.status_code, response.json()["error"]["code"]) == (400, "TriggerInputSchemaMismatch")
        assert "Expected Object but got Array" in response.json()["error"]["message"]


def test_bodies_that_are_not_json_are_refused(teams):
    url = teams.webhook_url("company-10")
    response = requests.post(url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequestContent"
    response = requests.post(url, data=b"type=message", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequestContent"


def test_an_unknown_channel_is_404(teams):
    url = teams.webhook_url("company-10")
    workflow_id = url.split("/workflows/")[1].split("/")[0]
    response = requests.post(url.replace(workflow_id, "0" * 32), json=message(card()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "WorkflowNotFound"
    assert requests.post(url.replace("/triggers/manual/", "/triggers/other/"),
                         json=message(card())).status_code in (403, 404)
    assert teams.messages() == []


def test_signatures_are_checked(teams):
    url = teams.webhook_url("company-10")
    signature = url.split("sig=")[1]
    tampered = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    for bad_url, status, code in [
        (url.replace(signature, tampered), 401, "DirectApiInvalidAuthorizationSignature"),
        (url.split("&sp=")[0], 401, "DirectApiAuthorizationRequired"),
        (url.replace("&sig=" + signature, ""), 401, "AuthorizationFailed"),
        # another channel's signature does not open this one
        (url.replace(signature, teams.webhook_url("company-20").split("sig=")[1]), 401,
         "DirectApiInvalidAuthorizationSignature"),
    ]:
        response = requests.post(bad_url, json=message(card()))
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), bad_url
    assert teams.messages() == []
    assert [r["status"] for r in teams.rejections()] == [401, 401, 401, 401]


def test_api_version_and_method_are_checked(teams):
    url = teams.webhook_url("company-10")
    response = requests.post(url.replace("api-version=2016-06-01&", ""), json=message(card()))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    response = requests.post(url.replace("2016-06-01", "2099-01-01"), json=message(card()))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "InvalidApiVersionParameter")
    response = requests.get(url)
    assert (response.status_code, response.json()["error"]["code"]) == (405, "TriggerRequestMethodNotValid")


def test_messages_can_be_cleared(teams):
    assert requests.post(teams.webhook_url("general"), json=message(card())).status_code == 202
    assert teams.clear_messages() == 1
    assert teams.messages() == [] and teams.messages("general") == []


def test_flow_mode_answers_202_and_records_the_failed_run():
    """What Workflows really does with a bad card: the trigger takes it, the flow run fails to post it."""
    with TeamsSandbox(port=0, validation="flow") as teams:
        bad = card(version="1.6")
        response = requests.post(teams.webhook_url("company-10"), json=message(bad))
        assert response.status_code == 202
        assert teams.messages() == []
        [rejection] = teams.rejections()
        assert rejection["flow_run"] == "Failed" and rejection["code"] == "UnsupportedCardVersion"
        assert rejection["run_id"] == response.headers["x-ms-workflow-run-id"]
        # a wrong signature is still refused at the door
        assert requests.post(teams.webhook_url("company-10") + "x", json=message(card())).status_code == 401
        # a message without attachments (a MessageCard, {"text": ...}) passes the trigger; the run fails its loop
        response = requests.post(teams.webhook_url("company-10"), json={"text": "Hello World!"})
        assert response.status_code == 202
        failed = teams.rejections()[-1]
        assert (failed["flow_run"], failed["code"], failed["path"]) == ("Failed", "ExpressionEvaluationFailed",
                                                                         "$.attachments")
        assert "'Send_each_adaptive_card' failed" in failed["message"]
        assert teams.messages() == []
