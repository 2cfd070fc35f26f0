"""Who is calling: Basic auth with the API user's email and API token, or OAuth 2.0 (3LO) access tokens issued
against rotating refresh tokens, as at auth.atlassian.com / api.atlassian.com."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from urllib.parse import parse_qs

from .settings import JiraSettings

SCOPES = ("read:jira-work", "write:jira-work", "read:jira-user", "offline_access")


class OAuthRefused(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class Credentials:
    def __init__(self, settings: JiraSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._refresh: dict[str, float | None] = {settings.initial_refresh_token: None}  # token -> first use

    # Basic

    def basic_user(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        email, _, token = decoded.partition(":")
        return (secrets.compare_digest(email.lower(), self.settings.email.lower())
                and secrets.compare_digest(token, self.settings.api_token))

    # Bearer

    def bearer_valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        token = authorization[7:].strip()
        with self._lock:
            expiry = self._access.get(token)
        return expiry is not None and time.time() < expiry

    # the token endpoint

    def exchange(self, body: bytes, content_type: str) -> dict:
        try:
            if "json" in content_type:
                form = json.loads(body or b"{}")
                if not isinstance(form, dict):
                    raise ValueError
            else:
                form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        except (ValueError, UnicodeDecodeError):
            raise OAuthRefused(400, "invalid_request", "The request body could not be read.") from None
        grant = form.get("grant_type")
        if grant != "refresh_token":
            raise OAuthRefused(400, "unsupported_grant_type",
                               f"Unsupported grant type: {grant!r}; the stand-in serves refresh_token only.")
        if form.get("client_id") != self.settings.client_id or form.get("client_secret") != self.settings.client_secret:
            raise OAuthRefused(401, "access_denied", "Unauthorized")
        presented = str(form.get("refresh_token") or "")
        now = time.time()
        with self._lock:
            if presented not in self._refresh:
                raise OAuthRefused(403, "invalid_grant", "Unknown or invalid refresh token.")
            first_use = self._refresh[presented]
            if first_use is None:
                self._refresh[presented] = now
            elif now - first_use > self.settings.refresh_reuse_seconds:
                raise OAuthRefused(403, "invalid_grant", "Unknown or invalid refresh token.")
            access = "mlc-jira-at-" + secrets.token_urlsafe(24)
            refresh = "mlc-jira-rt-" + secrets.token_urlsafe(24)
            self._access[access] = now + self.settings.token_ttl
            self._refresh[refresh] = None
        return {"access_token": access, "expires_in": self.settings.token_ttl, "token_type": "Bearer",
                "refresh_token": refresh, "scope": " ".join(SCOPES)}

    def new_refresh_token(self) -> str:
        token = "mlc-jira-rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = None
        return token

    def revoke(self, refresh_tokens: bool = False) -> dict:
        with self._lock:
            access = len(self._access)
            self._access.clear()
            refresh = 0
            if refresh_tokens:
                refresh = len(self._refresh)
                self._refresh.clear()
        return {"access_tokens": access, "refresh_tokens": refresh}
