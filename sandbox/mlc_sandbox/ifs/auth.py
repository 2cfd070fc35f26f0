"""IFS IAM (Keycloak) client-credentials tokens with a lifetime, revocable."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    realm: str = "mlc"
    client_id: str = "mlc-sandbox-client"
    client_secret: str = "mlc-sandbox-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Issues JWT-shaped bearer tokens (HS256 with a per-run key) and remembers them until they expire."""

    def __init__(self, credentials: Credentials, ttl: int):
        self.credentials = credentials
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, issuer_url: str) -> dict:
        now = time.time()
        ttl = self.ttl
        claims = {
            "exp": int(now + ttl), "iat": int(now), "jti": secrets.token_hex(8), "iss": issuer_url,
            "aud": "audience", "azp": self.credentials.client_id, "typ": "Bearer",
            "scope": "openid audience microprofile-jwt profile email",
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[token] = now + ttl
        return {
            "access_token": token,
            "expires_in": ttl,
            "refresh_expires_in": 1800,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "openid audience microprofile-jwt profile email",
        }

    def check(self, authorization: str | None) -> str | None:
        """None when the header carries a live token, else why not."""
        if not authorization:
            return "Missing bearer token"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Missing bearer token"
        with self._lock:
            expiry = self._expiry.get(token.strip())
        if expiry is None:
            return "Invalid or revoked bearer token"
        if expiry <= time.time():
            return "The bearer token has expired"
        return None

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._expiry)
            self._expiry.clear()
        return revoked
