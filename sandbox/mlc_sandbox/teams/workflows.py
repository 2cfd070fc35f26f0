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

Two stages, as in Workflows: the trigger checks the request body against its schema (Microsoft's connector reference,
"Microsoft Teams Webhook": every attachment needs `contentType`, `contentUrl` and `content`) and answers 400
TriggerInputSchemaMismatch at once, whatever the validation mode; what the flow run does with the message afterwards
(post each card) fails only the run, so with validation "flow" those problems answer 202 (docs/teams-sandbox.md).
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
# the properties Microsoft's connector reference marks required in every attachment (AdaptiveCardItemSchema)
REQUIRED_IN_ATTACHMENT = ("contentType", "contentUrl", "content")
SCHEMA_MISMATCH = "TriggerInputSchemaMismatch"
# the top-level fields of an Office 365 connector card (MessageCard; pymsteams sends no "@type")
MESSAGE_CARD_FIELDS = {"@type", "@context", "title", "text", "summary", "sections", "potentialAction", "themeColor"}
# what the template's "Send each adaptive card" loop answers when the message has no attachments (a MessageCard,
# {"text": ...}): the trigger took it, the run fails
NO_ATTACHMENTS_RUN_FAILURE = ("The execution of template action 'Send_each_adaptive_card' failed: the result of the "
                              "evaluation of 'foreach' expression '@triggerOutputs()?['body']?['attachments']' is of "
                              "type 'Null'. The result must be a valid array.")


def channel_of(path: str, channels: Channels) -> Channel | None:
    match = TRIGGER.match(path)
    return channels.by_workflow(match.group(1)) if match else None


def authorize(request: Request, channels: Channels, signing_key: str) -> Channel:
    """The channel the request may post to, or Refused with what the trigger answers before any flow run exists:
    api-version, workflow, signature, trigger, method, then the body against the trigger's schema."""
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
    problems = trigger_input_problems(message_document(request))
    if problems:
        first = problems[0]
        raise Refused(400, SCHEMA_MISMATCH, "The input body for trigger 'manual' of type 'Request' did not match its "
                                            f"schema definition. Error details: '{first.message}'.",
                      path=first.path, problems=[p.as_json() for p in problems])
    return channel


def message_document(request: Request):
    """The request body as JSON, or Refused 400 InvalidRequestContent (not JSON, or another content type)."""
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
        raise Refused(400, "InvalidRequestContent",
                      f"The request content type '{content_type}' is not supported: send application/json.", path="$")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "InvalidRequestContent",
                      f"The request content was invalid and could not be deserialized: '{exc}'.", path="$") from None


def _json_type(value) -> str:
    """A JSON value's type as Json.NET schema validation (Logic Apps) names it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    return "String" if isinstance(value, str) else "Array" if isinstance(value, list) else "Object"


def trigger_input_problems(document) -> list[Problem]:
    """The body against the trigger's schema as Microsoft documents it (connector reference "Microsoft Teams Webhook"):
    an object whose `type` is a string and `attachments` an array of objects, each with the required `contentType`
    (string), `contentUrl` (Microsoft: "Value should always be null"; a string passes the schema) and `content` (the
    card, an object). Neither `type` nor `attachments` is required: a body without them reaches the flow, whose run
    then fails (read_message)."""
    def mismatch(path: str, expected: str, value) -> Problem:
        return Problem(path, f"Invalid type. Expected {expected} but got {_json_type(value)}.", SCHEMA_MISMATCH)

    if not isinstance(document, dict):
        return [mismatch("$", "Object", document)]
    found = []
    if "type" in document and not isinstance(document["type"], str):
        found.append(mismatch("$.type", "String", document["type"]))
    if "attachments" not in document:
        return found
    attachments = document["attachments"]
    if not isinstance(attachments, list):
        return found + [mismatch("$.attachments", "Array", attachments)]
    for i, attachment in enumerate(attachments):
        where = f"$.attachments[{i}]"
        if not isinstance(attachment, dict):
            found.append(mismatch(where, "Object", attachment))
            continue
        missing = [name for name in REQUIRED_IN_ATTACHMENT if name not in attachment]
        if missing:
            found.append(Problem(where, f"Required properties are missing from object: {', '.join(missing)}.",
                                 SCHEMA_MISMATCH))
        if "contentType" in attachment and not isinstance(attachment["contentType"], str):
            found.append(mismatch(f"{where}.contentType", "String", attachment["contentType"]))
        if attachment.get("contentUrl") is not None and not isinstance(attachment["contentUrl"], str):
            found.append(mismatch(f"{where}.contentUrl", "String, Null", attachment["contentUrl"]))
        if "content" in attachment and not isinstance(attachment["content"], dict):
            found.append(mismatch(f"{where}.content", "Object", attachment["content"]))
    return found


def read_message(request: Request, validator: CardValidator, max_bytes: int) -> tuple[dict, list[dict]]:
    """(the message, its cards) or Refused with why the flow run would post nothing: size (413), the envelope Microsoft
    documents, every card (400). Only for a request the trigger took (authorize)."""
    body = request.body
    if len(body) > max_bytes:
        raise Refused(413, "RequestEntityTooLarge",
                      f"The message is {len(body):,} bytes; Teams takes messages of at most {max_bytes:,} bytes "
                      "(about 28 KB). Send a smaller card.", path="$")
    document = message_document(request)
    problems = envelope_problems(document)
    if problems:
        raise Refused.invalid(400, [p.as_json() for p in problems], "InvalidMessage")
    card = document["attachments"][0]["content"]
    card_problems = validator.problems(card)
    if card_problems:
        raise Refused.invalid(400, [p.as_json("$.attachments[0].content") for p in card_problems],
                              "InvalidAdaptiveCard")
    return document, [card]


def envelope_problems(document: dict) -> list[Problem]:
    """What the flow run makes of a message the trigger took: the documented envelope {"type": "message",
    "attachments": [one Adaptive Card, "contentUrl": null]}. The first problem is the run's failure."""
    found = []
    attachments = document.get("attachments")
    if attachments is None:
        hint = (" (this is an Office 365 connector card, a MessageCard: Workflows posts Adaptive Cards only, sent "
                "as {\"type\": \"message\", \"attachments\": [...]})" if MESSAGE_CARD_FIELDS & set(document) else "")
        found.append(Problem("$.attachments", NO_ATTACHMENTS_RUN_FAILURE + hint, "ExpressionEvaluationFailed"))
    elif not attachments:
        found.append(Problem("$.attachments", "'attachments' is empty: the flow run posts no card",
                             "NoAdaptiveCard"))
    if document.get("type") != "message":
        found.append(Problem("$.type", f"'type' must be \"message\", not {json.dumps(document.get('type'))}",
                             "InvalidMessageType"))
    if not attachments:
        return found
    if len(attachments) > 1:
        found.append(Problem("$.attachments", f"the stand-in takes one card per message (the Workflows template posts "
                                              f"each attachment as a message of its own); this message has "
                                              f"{len(attachments)} attachments", "TooManyAttachments"))
    attachment = attachments[0]
    content_type = attachment.get("contentType")
    if content_type == CONNECTOR_CARD:
        found.append(Problem("$.attachments[0].contentType", "Workflows does not post message cards (Office 365 "
                                                             f"connector cards); send {ADAPTIVE_CARD}",
                             "UnsupportedAttachment"))
    elif content_type != ADAPTIVE_CARD:
        found.append(Problem("$.attachments[0].contentType",
                             f"'contentType' must be \"{ADAPTIVE_CARD}\", not {json.dumps(content_type)}",
                             "UnsupportedAttachment"))
    if attachment.get("contentUrl") is not None:
        found.append(Problem("$.attachments[0].contentUrl", "'contentUrl' must be null (Microsoft: \"Value should "
                                                            "always be null\"): the card goes in 'content'",
                             "UnsupportedAttachment"))
    return found
