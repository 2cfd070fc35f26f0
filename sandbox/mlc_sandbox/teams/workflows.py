"""The Workflows (Power Automate) webhook of a channel: "When a Teams webhook request is received" followed by "Post
card in a chat or channel".

    POST /workflows/<workflow id>/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun
         &sv=1.0&sig=<signature>
    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                         "contentUrl": null, "content": {<Adaptive Card>}}]}

answers 202 with an empty body. The URL is the only credential (a shared access signature over the workflow, `sp` and
`sv`): without a signature 401, with a wrong one 401, with a signature whose permissions do not cover running this
trigger 403. An unknown workflow is 404. The Power Platform form of the URL
(`/powerautomate/automations/direct/workflows/<id>/triggers/manual/paths/invoke?api-version=1&sp=...&sv=1.0&sig=...`)
is taken as well.
"""

from __future__ import annotations

import hmac
import json
import re
from urllib.parse import parse_qs

from ..http import Request
from .cards import CardValidator, Problem
from .channels import Channel, Channels, signature
from .responses import Refused

# the Logic Apps form (prod-NN.<region>.logic.azure.com) and the Power Platform form Workflows URLs moved to
# (<environment>.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/..., api-version=1)
TRIGGER = re.compile(r"^(?:/powerautomate/automations/direct)?/workflows/([^/]+)/triggers/([^/]+)/paths/invoke/?$")
API_VERSIONS = ("1", "2015-08-01-preview", "2016-06-01", "2016-10-01", "2018-07-01-preview", "2019-05-01")
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CONNECTOR_CARD = "application/vnd.microsoft.teams.card.o365connector"


def channel_of(path: str, channels: Channels) -> Channel | None:
    match = TRIGGER.match(path)
    return channels.by_workflow(match.group(1)) if match else None


def authorize(request: Request, channels: Channels, signing_key: str) -> Channel:
    """The channel the request may post to, or Refused: api-version, workflow, signature, trigger, method."""
    match = TRIGGER.match(request.path)
    workflow_key, trigger = match.group(1), match.group(2)
    query = {k: v[0] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
    api_version = query.get("api-version")
    if not api_version:
        raise Refused(400, "MissingApiVersionParameter",
                      "The api-version query parameter (?api-version=) is required for all requests.")
    if api_version not in API_VERSIONS:
        raise Refused(400, "InvalidApiVersionParameter",
                      f"The api-version '{api_version}' is invalid. The supported versions are "
                      f"'{','.join(API_VERSIONS)}'.")
    channel = channels.by_workflow(workflow_key)
    if channel is None:
        raise Refused(404, "WorkflowNotFound", f"The workflow '{workflow_key}' could not be found.")
    sas = [query.get(k) for k in ("sp", "sv", "sig")]
    if not any(sas):
        raise Refused(401, "DirectApiAuthorizationRequired",
                      "The request must be authenticated only by Shared Access scheme.")
    if not all(sas):
        raise Refused(401, "AuthorizationFailed", "Required parameters for shared access URL are permissions ('sp'), "
                                                  "version ('sv'), and signature ('sig').")
    permissions, version, sig = sas
    expected = signature(signing_key, channel.workflow_id, permissions, version)
    if version != "1.0" or not hmac.compare_digest(expected.encode(), sig.encode()):
        raise Refused(401, "DirectApiInvalidAuthorizationSignature",
                      "The provided shared access signature ('sig') is not valid for this workflow.")
    if permissions not in (f"/triggers/{trigger}/run", "/triggers/all/run"):
        raise Refused(403, "AuthorizationFailed",
                      f"You do not have permissions to perform action 'run' on scope '/triggers/{trigger}/paths/"
                      "invoke'. Verify you are making the request with the appropriate HTTP method. See "
                      "[http://aka.ms/logic-trigger] for details.")
    if trigger != "manual":
        raise Refused(404, "WorkflowTriggerNotFound",
                      f"The workflow '{channel.workflow_id}' trigger '{trigger}' could not be found.")
    if request.method != "POST":
        raise Refused(405, "TriggerRequestMethodNotValid",
                      f"The HTTP method for this request is not valid: expected 'Post' and actual "
                      f"'{request.method.capitalize()}'.")
    return channel


def read_message(request: Request, validator: CardValidator, max_bytes: int) -> tuple[dict, list[dict]]:
    """(the message, its cards) or Refused: size (413), JSON, envelope and every card (400)."""
    body = request.body
    if len(body) > max_bytes:
        raise Refused(413, "RequestEntityTooLarge",
                      f"The message is {len(body):,} bytes; Teams takes messages of at most {max_bytes:,} bytes "
                      "(about 28 KB). Send a smaller card.", path="$")
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
        raise Refused(400, "InvalidRequestContent",
                      f"The request content type '{content_type}' is not supported: send application/json.", path="$")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "InvalidRequestContent",
                      f"The request content was invalid and could not be deserialized: '{exc}'.", path="$") from None
    problems = envelope_problems(document)
    if problems:
        raise Refused.invalid(400, [p.as_json() for p in problems], "TriggerInputSchemaMismatch")
    card = document["attachments"][0]["content"]
    card_problems = validator.problems(card)
    if card_problems:
        raise Refused.invalid(400, [p.as_json("$.attachments[0].content") for p in card_problems],
                              "InvalidAdaptiveCard")
    return document, [card]


def envelope_problems(document) -> list[Problem]:
    """The message around the card: type "message", exactly one Adaptive Card attachment, its content an object."""
    def problem(path: str, message: str, code: str = "TriggerInputSchemaMismatch") -> Problem:
        return Problem(path, message, code)

    if not isinstance(document, dict):
        return [problem("$", "the message must be a JSON object {\"type\": \"message\", \"attachments\": [...]}")]
    found = []
    if document.get("type") != "message":
        found.append(problem("$.type", f"'type' must be \"message\", not {json.dumps(document.get('type'))}"))
    attachments = document.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return found + [problem("$.attachments", "'attachments' must be an array holding one Adaptive Card")]
    if len(attachments) > 1:
        found.append(problem("$.attachments", f"Workflows posts one card per message; this message has "
                                              f"{len(attachments)} attachments", "TooManyAttachments"))
    attachment = attachments[0]
    if not isinstance(attachment, dict):
        return found + [problem("$.attachments[0]", "an attachment must be an object")]
    content_type = attachment.get("contentType")
    if content_type == CONNECTOR_CARD:
        found.append(problem("$.attachments[0].contentType", "Workflows does not post message cards (Office 365 "
                                                             f"connector cards); send {ADAPTIVE_CARD}",
                             "UnsupportedAttachment"))
    elif content_type != ADAPTIVE_CARD:
        found.append(problem("$.attachments[0].contentType",
                             f"'contentType' must be \"{ADAPTIVE_CARD}\", not {json.dumps(content_type)}",
                             "UnsupportedAttachment"))
    if attachment.get("contentUrl") is not None:
        found.append(problem("$.attachments[0].contentUrl", "'contentUrl' must be null: the card goes in 'content'"))
    content = attachment.get("content")
    if "content" not in attachment:
        found.append(problem("$.attachments[0].content", "'content' (the Adaptive Card) is missing"))
    elif isinstance(content, str):
        found.append(problem("$.attachments[0].content", "'content' must be the card as a JSON object, not a string"))
    elif not isinstance(content, dict):
        found.append(problem("$.attachments[0].content", "'content' must be the Adaptive Card, a JSON object"))
    return found
