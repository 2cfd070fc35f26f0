"""target-teams-check: can target-teams reach every channel it is configured to post to? Posts nothing unless asked.

With the delivery a run uses (:func:`delivery_from_config`):

- every channel the ``channels`` routing names has a webhook (Workflows) or a Graph channel id;
- Workflows: each webhook URL has the trigger's shape and is asked with GET, which a Workflows ("When a Teams webhook
  request is received") trigger refuses as ``TriggerRequestMethodNotValid`` once it has found the workflow and
  accepted the signature, without starting a run: so the workflow exists and the URL is whole. Logic Apps' refusals
  (workflow not found, signature refused, ...) fail; an answer it is not known to give is a warning, not verified.
  What the flow then does (the channel its "Post card" step posts to, its owner's connection) shows only when a card
  is posted;
- Graph: the app token, then each channel asked for with ``GET /teams/{team}/channels/{channel}`` (needs
  Channel.ReadBasic.All; without it the channel is reported as not verified);
- ``check_post_to`` (a channel name): one small test card is posted there, the only message this check ever sends.

A webhook URL carries its own signature (``sig``): only scheme, host and path are ever shown.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.api_checks import SECRET_KEY_FIX
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref, warned
from ml_connector_core.http import RETRIABLE_STATUS, TRANSPORT_ERRORS, with_retries
from ml_connector_core.oauth import TokenRequestError
from target_teams.delivery import DeliveryRefused, DeliveryUnknown, GraphDelivery, Retriable, WorkflowsDelivery
from target_teams.target import TargetTeams, delivery_from_config

logger = logging.getLogger(__name__)
PLUGIN = TargetTeams.name
TEAMS = "Teams"
TRIGGER_PATH_END = "/paths/invoke"
#: How a Workflows trigger refuses a method it does not take, after finding the workflow and checking the signature.
METHOD_REFUSED = "TriggerRequestMethodNotValid"
#: How a Workflows (Logic Apps) trigger refuses a URL that cannot work, by error code.
WORKFLOW_REFUSALS = {
    "WorkflowNotFound": "workflow not found (deleted, or the URL is cut short)",
    "WorkflowTriggerNotFound": "the workflow has no such trigger",
    "DirectApiInvalidAuthorizationSignature": "signature refused",
    "DirectApiAuthorizationRequired": "no signature in the URL",
    "AuthorizationFailed": "the signature does not allow running this trigger",
    "MissingApiVersionParameter": "no api-version in the URL",
    "InvalidApiVersionParameter": "an api-version the service does not know",
}


def shown_url(url: str) -> str:
    """scheme://host/path: a webhook URL without its query, which holds the signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def checks(config: dict) -> Iterator[CheckResult]:
    try:
        delivery = delivery_from_config(config)
    except ConfigValidationError as exc:  # graph settings missing, or a sealed value without the key
        missing = [e for e in exc.errors or [] if e in TargetTeams.config_jsonschema["properties"]]
        yield failed(TEAMS, "configuration", str(exc),
                     " and ".join(setting_ref(PLUGIN, m) for m in missing) if missing else SECRET_KEY_FIX)
        return
    used = channels_used(config)
    if isinstance(delivery, WorkflowsDelivery):
        yield from workflows_checks(delivery, used)
    else:
        yield from graph_checks(delivery, config, used)
    if config.get("check_post_to"):
        yield test_card(delivery, config)


def channels_used(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Channel name → the routing keys (company, company/cost centre, '*') of the channels setting that lead there."""
    used: dict[str, list[str]] = {}
    for key, channel in (config.get("channels") or {}).items():
        used.setdefault(str(channel), []).append(str(key))
    return used


def workflows_checks(delivery: WorkflowsDelivery, used: Mapping[str, list[str]]) -> Iterator[CheckResult]:
    for channel, keys in used.items():
        if channel not in delivery.webhooks:
            yield failed(TEAMS, f"channel '{channel}'", f"no webhook for channel '{channel}' (routed from "
                                                        f"{', '.join(keys)} in channels)",
                         setting_ref(PLUGIN, f"webhooks.{channel}") + ": the Workflows URL of that channel")
    for channel, url in delivery.webhooks.items():
        yield webhook_check(delivery, channel, url, channel in used)


def webhook_check(delivery: WorkflowsDelivery, channel: str, url: str, routed: bool) -> CheckResult:
    check = f"webhook '{channel}'"
    fix = setting_ref(PLUGIN, f"webhooks.{channel}") + ": copy the URL again from the channel's Workflows trigger " \
                                                       "'When a Teams webhook request is received'"
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    missing = [name for name in ("api-version", "sp", "sv", "sig") if not query.get(name)]
    if parts.scheme not in ("http", "https") or not parts.netloc or "/workflows/" not in parts.path \
            or not parts.path.rstrip("/").endswith(TRIGGER_PATH_END) or missing:
        what = f"lacks {', '.join(missing)}" if missing else "is not a workflow trigger's address"
        return failed(TEAMS, check, f"{shown_url(url)} {what} (a Workflows URL ends in /triggers/manual/paths/invoke "
                                    "with api-version, sp, sv and sig)", fix)
    shown = shown_url(url)
    unused = "" if routed else " (no company is routed to this channel)"
    try:
        response = _get(delivery, url)
    except TRANSPORT_ERRORS as exc:
        return failed(TEAMS, check, f"cannot reach {parts.scheme}://{parts.netloc} ({type(exc).__name__})", fix)
    code, message = _logic_apps_error(response)
    if code == METHOD_REFUSED:
        return passed(TEAMS, check, f"{shown}: workflow found, signature accepted, nothing run or posted (GET refused "
                                    f"as {METHOD_REFUSED}); whether the flow posts into its channel shows at the "
                                    f"first card, or with check_post_to{unused}")
    if response.status_code in (200, 202):
        return warned(TEAMS, check, f"{shown}: the trigger took a GET and started a flow run (with no card in it); the "
                                    f"URL works{unused}", "set the trigger's method to POST in the flow")
    if response.status_code == 429 or response.status_code >= 500:
        return warned(TEAMS, check, f"{shown}: HTTP {response.status_code} {code}: not verified this time",
                      "run the check again later")
    reason = WORKFLOW_REFUSALS.get(code)
    if reason is None:  # an answer Logic Apps is not known to give: say so rather than blame the URL
        return warned(TEAMS, check, f"{shown}: not verified: the endpoint answered GET with HTTP "
                                    f"{response.status_code} {code or response.reason}: {message}{unused}",
                      setting_ref(PLUGIN, "check_post_to") + f": {channel}, to post one test card there")
    return failed(TEAMS, check, f"{shown}: {reason}: HTTP {response.status_code} {code}: {message}", fix)


def _get(delivery: WorkflowsDelivery | GraphDelivery, url: str, **options: Any) -> requests.Response:
    """The check's GET, retried as a run's requests are (429, 5xx, a lost connection; ``Retry-After`` first, up to
    ``max_tries``): a GET changes nothing, so asking again is safe. The last answer is returned for the check to judge;
    a connection still lost escapes."""

    def get_once() -> requests.Response:
        response = delivery.session.get(url, timeout=delivery.timeout, **options)
        if response.status_code in RETRIABLE_STATUS:
            raise Retriable(response)
        return response

    try:
        return with_retries(get_once, (Retriable, *TRANSPORT_ERRORS), max_tries=delivery.max_tries, log=logger)()
    except Retriable as exc:
        return exc.response


def _logic_apps_error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", response.text[:200]
    return str(error.get("code") or ""), str(error.get("message") or "")


def _graph_token_fix(message: str) -> str:
    if "AADSTS700016" in message or "unauthorized_client" in message:
        return setting_ref(PLUGIN, "graph_client_id") + ": the app registration's application (client) id"
    if "AADSTS90002" in message or "cannot reach" in message or "Tenant" in message:
        return setting_ref(PLUGIN, "graph_token_url") + ": https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
    return setting_ref(PLUGIN, "graph_client_secret") + ": a client secret value of the app registration"


def graph_checks(delivery: GraphDelivery, config: Mapping[str, Any], used: Mapping[str, list[str]]) -> Iterator[CheckResult]:
    try:
        delivery.auth.access_token()
    except TokenRequestError as exc:
        yield failed(TEAMS, "Graph token", str(exc), _graph_token_fix(str(exc)))
        return
    lifetime = delivery.auth.token_lifetime
    yield passed(TEAMS, "Graph token", f"app token from {delivery.auth.token_url}"
                                       + (f" (valid {lifetime:.0f} s)" if lifetime else ""))
    for channel, keys in used.items():
        if channel not in delivery.channel_ids:
            yield failed(TEAMS, f"channel '{channel}'", f"no Graph channel id for channel '{channel}' (routed from "
                                                        f"{', '.join(keys)} in channels)",
                         setting_ref(PLUGIN, f"graph_channel_ids.{channel}") + ": the channel's id (19:...@thread.tacv2)")
    team_fix = setting_ref(PLUGIN, "graph_team_id")
    for channel, channel_id in delivery.channel_ids.items():
        result = graph_channel_check(delivery, channel, channel_id)
        yield result
        if result.fix == team_fix:
            return  # no team: every other channel would say the same


def graph_channel_check(delivery: GraphDelivery, channel: str, channel_id: str) -> CheckResult:
    check = f"channel '{channel}'"
    url = f"{delivery.graph_url}/v1.0/teams/{quote(delivery.team_id, safe='')}/channels/{quote(channel_id, safe='')}"
    try:
        response = _get(delivery, url, auth=delivery.auth)
    except TokenRequestError as exc:
        return failed(TEAMS, check, str(exc), _graph_token_fix(str(exc)))
    except TRANSPORT_ERRORS as exc:
        return failed(TEAMS, check, f"cannot reach {delivery.graph_url} ({type(exc).__name__})",
                      setting_ref(PLUGIN, "graph_url"))
    code, message = _logic_apps_error(response)  # Graph errors have the same {"error": {code, message}} shape
    if response.ok:
        found = response.json()
        return passed(TEAMS, check, f"'{found.get('displayName')}' ({found.get('membershipType') or 'channel'}) in team "
                                    f"{delivery.team_id}")
    if response.status_code == 403:
        return warned(TEAMS, check, f"not verified: Graph refused to show the channel (HTTP 403 {code}: {message})",
                      "grant the app registration Channel.ReadBasic.All (application permission, admin consent)")
    if response.status_code == 404 and "team" in message.casefold() and "channel" not in message.casefold():
        return failed(TEAMS, check, f"HTTP 404 {code}: {message}", setting_ref(PLUGIN, "graph_team_id"))
    if response.status_code == 401:
        return failed(TEAMS, check, f"HTTP 401 {code}: {message}", _graph_token_fix(message))
    return failed(TEAMS, check, f"HTTP {response.status_code} {code}: {message}",
                  setting_ref(PLUGIN, f"graph_channel_ids.{channel}") + ": the channel's id (19:...@thread.tacv2)")


def test_card(delivery: WorkflowsDelivery | GraphDelivery, config: Mapping[str, Any]) -> CheckResult:
    """The one message the check may send: a small card to the channel check_post_to names."""
    channel = str(config["check_post_to"])
    sent_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    card = {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "ml-connector: test card", "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "TextBlock", "wrap": True,
             "text": f"Sent by target-teams-check at {sent_at} (check_post_to): flow '{config.get('flow')}' can post "
                     "here. Nothing to do."},
        ],
    }
    try:
        _, attempts = delivery.send(channel, card)
    except DeliveryUnknown as exc:  # not posted again: a test card twice is harmless, but the rule is never twice
        return warned(TEAMS, f"test card to '{channel}'", f"not verified: {exc}", "look for the test card in the channel")
    except DeliveryRefused as exc:
        return failed(TEAMS, f"test card to '{channel}'", str(exc),
                      setting_ref(PLUGIN, "check_post_to") + ": a channel named in webhooks or graph_channel_ids")
    if isinstance(delivery, WorkflowsDelivery):
        outcome = ("the workflow accepted it; it runs on its own, so look for the card in the channel (a flow that "
                   "fails shows only in the flow's run history)")
    else:
        outcome = "Graph created the message in the channel"
    return passed(TEAMS, f"test card to '{channel}'", f"posted one test card ({attempts} attempt(s)): {outcome}")


main = check_command(TargetTeams, TEAMS, checks)
