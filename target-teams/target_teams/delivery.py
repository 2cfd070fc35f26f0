"""Sending a message to a Teams channel: Workflows webhooks, or Microsoft Graph with an app token.

Teams takes no idempotency key, so a post is sent again only when it certainly did not reach Teams: no connection
could be made, or Teams answered that it did not take it (429, 503 with ``Retry-After``: throttled, not processed; 401
once new credentials are at hand). Any other failure (another 5xx, a connection dropped after the request was sent,
no answer in time, a cut-off answer) leaves the delivery unknown: the card may be in the channel. Graph is then asked
for the channel's newest messages, and the message is posted again only when it is not among them; Workflows cannot
be asked, so the card is not posted again and the failure says so (:data:`UNKNOWN_DELIVERY`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Mapping

import requests

from ml_connector_core.http import (RETRIABLE_STATUS, TRANSPORT_ERRORS, announce_long_waits, connection_never_made,
                                    is_complete_json, retry_after_seconds, with_retries)
from ml_connector_core.oauth import ClientCredentialsAuth, TokenRequestError
from ml_connector_core.tls import new_session
from target_teams import cards

logger = logging.getLogger(__name__)

#: The error of every audit entry whose card may or may not be in the channel begins with this: such a card is not
#: posted again by later runs (nor by a rerun of the same records), only by ``mlc-audit replay``, when a person asks.
UNKNOWN_DELIVERY = "delivery unknown: "


class DeliveryFailed(RuntimeError):
    """A card that did not certainly reach its channel."""


class DeliveryRefused(DeliveryFailed):
    """Teams did not take the card (it answered so, or could not be reached): it is not in the channel."""


class DeliveryUnknown(DeliveryFailed):
    """The card may be in the channel: Teams may have posted it, but its answer never arrived whole."""

    def __init__(self, channel: str, why: str, attempts: int, lookup: str, message_sent: dict) -> None:
        super().__init__(
            f"{UNKNOWN_DELIVERY}the card may be in channel '{channel}': {why} at attempt {attempts}, and {lookup}. It "
            f"is not posted again on its own, so that it is never posted twice: look in the channel; if the card is "
            f"not there, `mlc-audit replay` posts it again")
        self.message_sent = message_sent


class Retriable(RuntimeError):
    """An answer saying Teams did not take the request and another try makes sense: 429, 503 with ``Retry-After``,
    or a 401 after new credentials (``retry_immediately``). ``reason`` says why when the status does not (a GET whose
    answer was cut off)."""

    def __init__(self, response: requests.Response, *, retry_immediately: bool = False, reason: str = "") -> None:
        super().__init__(reason or f"HTTP {response.status_code}")
        self.response = response
        self.retry_immediately = retry_immediately


class _Unanswered(RuntimeError):
    """A post Teams may have carried out without the answer saying so (not retried: see the module's text)."""


def not_processed(response: requests.Response) -> bool:
    """Throttled: Graph (and Logic Apps) answer 429, or 503 with Retry-After, for a request they did not carry out."""
    return response.status_code == 429 or (response.status_code == 503 and retry_after_seconds(response) is not None)


class Delivery:
    def __init__(self, max_tries: int = 8, timeout: float = 30, session: requests.Session | None = None) -> None:
        self.session = session or new_session()
        self.max_tries = max_tries
        self.timeout = timeout
        self.attempts = 0

    def send(self, channel: str, card: Mapping) -> tuple[dict, int]:
        """Post one card; returns the exact message sent and the number of attempts it took. Raises DeliveryRefused
        when the card is not in the channel, DeliveryUnknown when it may be (with the message sent)."""
        message = self.message(card)
        if cards.size_of(message) > cards.MAX_MESSAGE_BYTES:
            raise DeliveryRefused(f"the card for channel '{channel}' is {cards.size_of(message):,} bytes; Teams takes "
                                  f"at most about {cards.MAX_MESSAGE_BYTES:,}")
        self.attempts = 0
        first_sent = time.time()
        while True:
            try:
                self._post_with_retries(channel, message)
                return message, self.attempts
            except Retriable as exc:
                raise DeliveryRefused(f"channel '{channel}' kept answering HTTP {exc.response.status_code} "
                                      f"after {self.attempts} attempts: {exc.response.text[:300]}") from None
            except requests.ConnectionError as exc:
                raise DeliveryRefused(f"channel '{channel}' unreachable after {self.attempts} attempts: "
                                      f"{type(exc).__name__}") from None
            except _Unanswered as unanswered:
                found, lookup = self.was_posted(channel, message, since=first_sent)
                if found:
                    logger.info("The card for channel '%s' got no answer (%s, attempt %d) but is in the channel: "
                                "not posted again", channel, unanswered, self.attempts)
                    return message, self.attempts
                if found is None:
                    raise DeliveryUnknown(channel, str(unanswered), self.attempts, lookup, message) from None
                if self.attempts >= self.max_tries:
                    raise DeliveryRefused(f"channel '{channel}' did not take the card in {self.attempts} attempts: "
                                          f"{unanswered}, and {lookup}") from None
                logger.info("The card for channel '%s' got no answer (%s, attempt %d) and is not in the channel: "
                            "posting it again", channel, unanswered, self.attempts)

    def _post_with_retries(self, channel: str, message: dict) -> None:
        """Tries until the card is posted, as long as each failure certainly left it unposted, within ``max_tries``
        attempts in all (a send may post again after finding the card missing: attempts count on)."""
        done_before = self.attempts
        announce = announce_long_waits(logger, self.max_tries)

        def on_backoff(details: dict) -> None:  # "attempt N of max_tries", counting the attempts of the whole send
            announce({**details, "tries": details["tries"] + done_before})

        post = with_retries(self._post, (Retriable, requests.ConnectionError), max_tries=self.max_tries - done_before,
                            log=logger, on_backoff=on_backoff)
        post(channel, message)

    def _post(self, channel: str, message: dict) -> None:
        self.attempts += 1
        try:
            response = self.session.post(self.url(channel), json=message, timeout=self.timeout,
                                         **self.request_options())
        except TRANSPORT_ERRORS as exc:
            if connection_never_made(exc):
                raise  # it never left: retried
            raise _Unanswered(_what_went_wrong(exc, self.timeout)) from None
        if not_processed(response):
            raise Retriable(response)
        if response.status_code == 401 and self.renew_credentials():
            raise Retriable(response, retry_immediately=True)
        if response.status_code >= 500 or response.status_code in RETRIABLE_STATUS:
            raise _Unanswered(f"HTTP {response.status_code}, an answer Teams (or a gateway before it) may give "
                              "after taking the card")
        if response.status_code >= 400:
            raise DeliveryRefused(f"channel '{channel}' refused the card: HTTP {response.status_code} "
                                  f"{response.text[:500]}")

    def was_posted(self, channel: str, message: dict, *, since: float) -> tuple[bool | None, str]:
        """Whether the message is in the channel (None: cannot tell), and how that was found out."""
        return None, "Workflows cannot be asked what it posted"

    def message(self, card: Mapping) -> dict:
        raise NotImplementedError

    def url(self, channel: str) -> str:
        raise NotImplementedError

    def request_options(self) -> dict:
        return {}

    def renew_credentials(self) -> bool:
        """After a 401: whether fresh credentials were arranged, so that one more try makes sense."""
        return False


def _what_went_wrong(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    return f"the connection was dropped after the card was sent ({type(exc).__name__})"


class WorkflowsDelivery(Delivery):
    """A Power Automate Workflows webhook per channel (the URL carries its own signature: a secret)."""

    def __init__(self, webhooks: Mapping[str, str], **options) -> None:
        super().__init__(**options)
        self.webhooks = dict(webhooks)

    def message(self, card: Mapping) -> dict:
        return cards.workflows_message(card)

    def url(self, channel: str) -> str:
        try:
            return self.webhooks[channel]
        except KeyError:
            raise DeliveryRefused(f"no Workflows webhook is configured for channel '{channel}'") from None


class GraphDelivery(Delivery):
    """Microsoft Graph channel messages with an application token (client credentials), refreshed before expiry.

    Each message carries an attachment id made for it alone (a UUID): after a post without an answer, the channel's
    messages are read, newest first, for it (needs ChannelMessage.Read.All), back to a while before the first try."""

    #: How far before the first try the channel is read back: Teams' clock may differ from this machine's.
    CLOCK_MARGIN = dt.timedelta(minutes=10)
    PAGE_SIZE = 50  # the most Graph lists per page

    def __init__(self, graph_url: str, team_id: str, channel_ids: Mapping[str, str], auth: ClientCredentialsAuth,
                 **options) -> None:
        super().__init__(**options)
        self.graph_url = graph_url.rstrip("/")
        self.team_id = team_id
        self.channel_ids = dict(channel_ids)
        self.auth = auth

    def message(self, card: Mapping) -> dict:
        return cards.graph_message(card, uuid.uuid4().hex)

    def url(self, channel: str) -> str:
        try:
            channel_id = self.channel_ids[channel]
        except KeyError:
            raise DeliveryRefused(f"no Graph channel id is configured for channel '{channel}'") from None
        return f"{self.graph_url}/v1.0/teams/{self.team_id}/channels/{channel_id}/messages"

    def request_options(self) -> dict:
        return {"auth": self.auth}

    def renew_credentials(self) -> bool:
        self.auth.invalidate()  # a token can be revoked before its announced expiry
        return True

    def was_posted(self, channel: str, message: dict, *, since: float) -> tuple[bool | None, str]:
        marker = message["attachments"][0]["id"]
        oldest = dt.datetime.fromtimestamp(since, dt.timezone.utc) - self.CLOCK_MARGIN
        url: str | None = f"{self.url(channel)}?$top={self.PAGE_SIZE}"
        read = 0
        while url:
            try:
                response = self._read(url)
            except (Retriable, TokenRequestError, *TRANSPORT_ERRORS) as exc:
                return None, f"reading the channel's messages to find out failed ({_reason(exc)})"
            if response.status_code == 403:
                return None, ("reading the channel's messages to find out was refused (HTTP 403: the app "
                              "registration needs the application permission ChannelMessage.Read.All)")
            if not response.ok:
                return None, f"reading the channel's messages to find out failed (HTTP {response.status_code})"
            page = response.json()
            for posted in page.get("value") or []:
                read += 1
                if any(a.get("id") == marker for a in posted.get("attachments") or []):
                    return True, f"it was found among the channel's {read} newest messages"
                if _created(posted) is not None and _created(posted) < oldest:
                    return False, f"it is not among the channel's messages since {oldest:%Y-%m-%d %H:%M} UTC"
            url = page.get("@odata.nextLink")
        return False, "it is not among the channel's messages"

    def _read(self, url: str) -> requests.Response:
        """One GET of the channel's messages, retried as reads are (a read changes nothing); 401 once after new
        credentials."""
        renewed = False

        def get_once() -> requests.Response:
            nonlocal renewed
            response = self.session.get(url, timeout=self.timeout, auth=self.auth)
            if response.status_code in RETRIABLE_STATUS:
                raise Retriable(response)
            if response.status_code == 401 and not renewed:
                renewed = self.renew_credentials()
                raise Retriable(response, retry_immediately=True)
            if response.ok and not is_complete_json(response.content):
                raise Retriable(response, reason="the page was cut off")
            return response

        return with_retries(get_once, (Retriable, *TRANSPORT_ERRORS), max_tries=self.max_tries, log=logger)()


def _created(posted: Mapping) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(posted.get("createdDateTime")).replace("Z", "+00:00"))
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Retriable):
        return f"{exc}, tries exhausted"
    return str(exc) if isinstance(exc, TokenRequestError) else type(exc).__name__
