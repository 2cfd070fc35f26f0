"""The OAuth 2.0 client-credentials token endpoint (client in the form or in HTTP Basic) and the tokens it issues:
each lives `token_ttl` seconds from issue, or until an admin revokes every token."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from urllib.parse import parse_qs

from .settings import JaggaerSettings


class TokenRefused(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


def _basic_client(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TokenRefused(401, "invalid_client", "Client authentication failed") from None
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


class Tokens:
    def __init__(self, settings: JaggaerSettings):
        self.settings = settings
        self._expiry: dict[str, float] = {}  # token -> monotonic deadline
        self._lock = threading.Lock()

    def issue(self, body: bytes, authorization: str | None) -> dict:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}
        client = _basic_client(authorization) or (form.get("client_id"), form.get("client_secret"))
        if form.get("grant_type") != "client_credentials":
            raise TokenRefused(400, "unsupported_grant_type", "grant_type must be client_credentials")
        client_id, client_secret = client
        if not (hmac.compare_digest(client_id or "", self.settings.client_id)
                and hmac.compare_digest(client_secret or "", self.settings.client_secret)):
            raise TokenRefused(401, "invalid_client", "Client authentication failed")
        token = secrets.token_urlsafe(32)
        ttl = self.settings.token_ttl
        with self._lock:
            self._expiry[token] = time.monotonic() + ttl
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "api"}

    def check(self, authorization: str | None) -> str | None:
        """None when the Bearer token is valid, else why not (for the 401's message)."""
        if not authorization or not authorization.startswith("Bearer "):
            return "A Bearer access token is required"
        token = authorization[len("Bearer "):].strip()
        with self._lock:
            deadline = self._expiry.get(token)
            if deadline is None:
                return "The access token is invalid or has been revoked"
            if time.monotonic() >= deadline:
                del self._expiry[token]
                return "The access token has expired"
        return None

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._expiry)
            self._expiry.clear()
            return count
