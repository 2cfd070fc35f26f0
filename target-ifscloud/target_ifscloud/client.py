"""Talking to IFS Cloud's projection services: OAuth2 client credentials, the tenant's shared request budget, one new
token after a 401, and bounded retries on 429, 5xx and connection errors with waits that honour Retry-After."""

from __future__ import annotations

import decimal
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import msgspec
import requests

from ml_connector_core import ifs_odata
from ml_connector_core.http import RETRIABLE_STATUS, TRANSPORT_ERRORS, RequestBudget, with_retries
from ml_connector_core.ifs_metadata import MalformedMetadata, MetadataError, ServiceMetadata, parse_metadata
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.tls import new_session

logger = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
_encoder = msgspec.json.Encoder(decimal_format="number")


class IfsUnavailable(RuntimeError):
    """IFS kept answering 429/5xx, or could not be reached, for every allowed try."""


class _Retriable(RuntimeError):
    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass
class IfsAnswer:
    status: int
    body: Any  # the decoded 2xx body (JSON with exact Decimals, or what `decode` made of it), else None
    etag: str | None
    message: str  # the OData error's code, message and details when status >= 400

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class IfsClient:
    """One session per target run; every request goes through the tenant's request budget."""

    def __init__(self, service_root: str, auth: ClientCredentialsAuth, budget: RequestBudget, *,
                 timeout_seconds: float = 60, max_tries: int = 8, session: requests.Session | None = None) -> None:
        self.service_root = service_root.rstrip("/")
        self.auth = auth
        self.budget = budget
        self.timeout_seconds = timeout_seconds
        self.max_tries = max_tries
        self.session = session or new_session()
        self.session.auth = auth
        self._metadata: dict[str, ServiceMetadata] = {}

    def path_of(self, url: str) -> str:
        """The request path as audited: from the host on, without scheme and host."""
        return requests.utils.urlparse(url).path

    def url(self, projection: str, rest: str = "") -> str:
        return f"{self.service_root}/{projection}.svc{rest}"

    def metadata(self, projection: str) -> ServiceMetadata:
        """The projection's $metadata, read once per service and run."""
        if projection not in self._metadata:
            # A document cut off on the way reads as invalid XML and is asked again, as a cut-off JSON body is.
            answer = self.send("GET", self.url(projection, "/$metadata"), accept="application/xml",
                               decode=lambda body: parse_metadata(body, f"{projection}.svc"))
            if answer.status != 200:
                raise MetadataError(f"cannot read $metadata of {projection}.svc: HTTP {answer.status} {answer.message}",
                                    status=answer.status)
            self._metadata[projection] = answer.body
        return self._metadata[projection]

    def send(self, method: str, url: str, *, body: Mapping | None = None, if_match: str | None = None,
             accept: str = "application/json;odata.metadata=minimal",
             decode: Callable[[bytes], Any] | None = None) -> IfsAnswer:
        """One request, retried on 429/5xx/connection errors/a cut-off body (bounded) and once with a new token after
        a 401. Any other answer is returned as it is, for the caller to judge. A 2xx body is decoded by ``decode``
        (default: JSON); a body it cannot read was cut off on the way and is asked again.

        Writes are retried too: IFS recognises a repeated one (a create meets its own key, 409; a PATCH or an action
        its own new ETag, 412), which the writer resolves by reading the record again."""
        headers = {"Accept": accept, "OData-MaxVersion": "4.0", "OData-Version": "4.0",
                   # Timestamps in UTC both ways, whatever the tenant's zone.
                   "X-Ifs-Time-Zone-Aware-Request": "true"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = _encoder.encode(body)
        if if_match is not None:
            headers["If-Match"] = if_match
        renewed_token = False
        send_once = with_retries(self._send_once, (_Retriable, *TRANSPORT_ERRORS), max_tries=self.max_tries, log=logger)
        while True:
            try:
                response, parsed = send_once(method, url, headers, data, decode or _decoder.decode)
            except _Retriable as exc:
                raise IfsUnavailable(f"{method} {self.path_of(url)}: {exc} after {self.max_tries} tries") from None
            except TRANSPORT_ERRORS as exc:
                raise IfsUnavailable(f"{method} {self.path_of(url)}: IFS unreachable after {self.max_tries} tries "
                                     f"({type(exc).__name__})") from None
            if response.status_code == 401 and not renewed_token:
                # A token can be revoked or expire before its announced lifetime: one more try with a fresh one.
                self.auth.invalidate()
                renewed_token = True
                continue
            status = response.status_code
            etag = response.headers.get("ETag") or (parsed.get("@odata.etag") if isinstance(parsed, dict) else None)
            return IfsAnswer(status, parsed, etag, ifs_odata.error_message(response) if status >= 400 else "")

    def _send_once(self, method: str, url: str, headers: dict, data: bytes | None, decode: Callable[[bytes], Any]):
        self.budget.acquire()
        response = self.session.request(method, url, headers=headers, data=data, timeout=self.timeout_seconds)
        if response.status_code in RETRIABLE_STATUS:
            raise _Retriable(f"HTTP {response.status_code} {ifs_odata.error_message(response)}", response)
        if response.status_code >= 300 or not response.content:
            return response, None
        try:
            return response, decode(response.content)
        except (msgspec.DecodeError, MalformedMetadata):
            # A cut-off body: the request is asked again. A write that did land meets its own key (409) or new ETag
            # (412), which the writer resolves by reading the record again.
            raise _Retriable(f"HTTP {response.status_code} with a body cut off ({len(response.content)} bytes)",
                             response) from None
