"""Sending a message to a Teams channel: Workflows webhooks, or Microsoft Graph with an app token."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import requests

from ml_connector_core.http import RETRIABLE_STATUS, with_retries
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.tls import new_session
from target_teams import cards

logger = logging.getLogger(__name__)


class DeliveryRefused(RuntimeError):
    """Teams answered that it will not take this message (not worth retrying)."""


class Retriable(RuntimeError):
    """An answer worth another try (429/5xx), or a 401 after new credentials (``retry_immediately``)."""

    def __init__(self, response: requests.Response, *, retry_immediately: bool = False) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_immediately = retry_immediately


class Delivery:
    def __init__(self, max_tries: int = 8, timeout: float = 30, session: requests.Session | None = None) -> None:
        self.session = session or new_session()
        self.max_tries = max_tries
        self.timeout = timeout
        self.attempts = 0

    def send(self, channel: str, card: Mapping) -> tuple[dict, int]:
        """Post one card; returns the exact message sent and the number of attempts it took."""
        message = self.message(card)
        if cards.size_of(message) > cards.MAX_MESSAGE_BYTES:
            raise DeliveryRefused(f"the card for channel '{channel}' is {cards.size_of(message):,} bytes; Teams takes "
                                  f"at most about {cards.MAX_MESSAGE_BYTES:,}")
        self.attempts = 0
        post = with_retries(self._post, (Retriable, requests.ConnectionError, requests.Timeout),
                            max_tries=self.max_tries, log=logger)
        try:
            post(channel, message)
        except Retriable as exc:
            raise DeliveryRefused(f"channel '{channel}' kept answering HTTP {exc.response.status_code} "
                                  f"after {self.attempts} attempts: {exc.response.text[:300]}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DeliveryRefused(f"channel '{channel}' unreachable after {self.attempts} attempts: "
                                  f"{type(exc).__name__}") from None
        return message, self.attempts

    def _post(self, channel: str, message: dict) -> None:
        self.attempts += 1
        response = self.session.post(self.url(channel), json=message, timeout=self.timeout, **self.request_options())
        if response.status_code in RETRIABLE_STATUS:
            raise Retriable(response)
        if response.status_code == 401 and self.renew_credentials():
            raise Retriable(response, retry_immediately=True)
        if response.status_code >= 400:
            raise DeliveryRefused(f"channel '{channel}' refused the card: HTTP {response.status_code} "
                                  f"{response.text[:500]}")

    def message(self, card: Mapping) -> dict:
        raise NotImplementedError

    def url(self, channel: str) -> str:
        raise NotImplementedError

    def request_options(self) -> dict:
        return {}

    def renew_credentials(self) -> bool:
        """After a 401: whether fresh credentials were arranged, so that one more try makes sense."""
        return False


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
    """Microsoft Graph channel messages with an application token (client credentials), refreshed before expiry."""

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
