"""The OAuth 2.0 client-credentials token endpoint and the sessions it opens: each token is a session that ends after
`session_ttl` seconds without use (Salesforce's inactivity timeout) or when an admin ends every session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from urllib.parse import parse_qs, unquote_plus

from .settings import SalesforceSettings


class TokenRefused(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.body = {"error": error, "error_description": description}


def _basic_credentials(authorization: str | None) -> dict:
    """The client id and secret sent as HTTP Basic credentials (RFC 6749 client_secret_basic: Salesforce's token
    endpoint takes them there as well as in the form body, which is what simple-salesforce sends)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return {}
    if not colon:
        return {}
    return {"client_id": unquote_plus(client_id), "client_secret": unquote_plus(secret)}


class Sessions:
    def __init__(self, settings: SalesforceSettings):
        self.settings = settings
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, body: bytes, base_url: str, authorization: str | None = None) -> dict:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}
        if "client_id" not in form:
            form.update(_basic_credentials(authorization))
        if form.get("grant_type") != "client_credentials":
            raise TokenRefused("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != self.settings.client_id:
            raise TokenRefused("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(form.get("client_secret", ""), self.settings.client_secret):
            raise TokenRefused("invalid_client", "invalid client credentials")
        # Salesforce access tokens are "<org id>!<opaque>"
        token = f"{self.settings.org_id[:15]}!{secrets.token_urlsafe(72)}"
        issued_at = str(int(time.time() * 1000))
        identity = f"{base_url}/id/{self.settings.org_id}/{self.settings.integration_user_id}"
        signature = base64.b64encode(hmac.new(self.settings.client_secret.encode(), (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        with self._lock:
            self._last_used[token] = time.monotonic()
        return {"access_token": token, "signature": signature, "scope": "api", "instance_url": base_url,
                "id": identity, "token_type": "Bearer", "issued_at": issued_at}

    def use(self, authorization: str | None) -> bool:
        """Is the Bearer session valid? Using it keeps it alive."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        token = authorization[len("Bearer "):].strip()
        now = time.monotonic()
        with self._lock:
            last = self._last_used.get(token)
            if last is None or now - last > self.settings.session_ttl:
                self._last_used.pop(token, None)
                return False
            self._last_used[token] = now
            return True

    def end(self, authorization: str | None) -> None:
        token = (authorization or "")[len("Bearer "):].strip()
        with self._lock:
            self._last_used.pop(token, None)

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._last_used)
            self._last_used.clear()
            return count
