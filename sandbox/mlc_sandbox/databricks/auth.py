"""Workspace authentication: personal access tokens and OAuth machine-to-machine (client_credentials) tokens.

Answers to bad credentials copy what workspaces send: 401 when no usable credential was sent, 403 with
"Invalid access token." for unknown, revoked or expired personal access tokens. Expired OAuth tokens have been refused
both ways over the years: 403 "JWT has expired" (the default here), and since late 2025 401 "Token is expired" on some
workspaces (setting `expired_token_status`); a client must get a new token on either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

OAUTH_SCOPES = ("all-apis", "sql", "offline_access")
# A token serves many requests in its hour: the random token_expired fault, which stands for the end of that hour,
# hits only a token that has served this many (a token just issued, or its first retries, is not about to expire)
SERVED_BEFORE_RANDOM_EXPIRY = 5


@dataclass(frozen=True)
class AuthProblem:
    status: int
    message: str


MISSING = AuthProblem(401, "Credential was not sent or was of an unsupported type for this API.")
INVALID = AuthProblem(403, "Invalid access token.")
EXPIRED_JWT = AuthProblem(403, "JWT has expired")
EXPIRED_TOKEN = AuthProblem(401, "Token is expired")
EXPIRED_OAUTH = {403: EXPIRED_JWT, 401: EXPIRED_TOKEN}  # by the expired_token_status setting


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Authenticator:
    def __init__(self, token: str | None, client_id: str, client_secret: str, token_ttl: int, workspace_id: str,
                 expired_token_status: int = 403):
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.expired_token_status = expired_token_status
        self.workspace_id = workspace_id
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        # token -> (kind, expiry epoch seconds or None)
        self._tokens: dict[str, tuple[str, float | None]] = {}
        self._expired_answers: dict[str, int] = {}  # token -> status it is refused with once expired (a fault's)
        self._served: dict[str, int] = {}  # token -> requests it was accepted for
        if token:
            self._tokens[token] = ("pat", None)

    # personal access tokens

    def add_pat(self, token: str | None = None, lifetime_seconds: float | None = None) -> dict:
        token = token or "dapi" + secrets.token_hex(16)
        expiry = time.time() + lifetime_seconds if lifetime_seconds is not None else None
        with self._lock:
            self._tokens[token] = ("pat", expiry)
        return {"token_value": token, "expiry_time": int(expiry * 1000) if expiry else -1}

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked

    def expire(self, authorization: str | None, refused_with: int | None = None) -> str | None:
        """The bearer token of this Authorization header expires now (an injected fault), refused from now on with
        status `refused_with` if it is an OAuth token (default: the expired_token_status setting); its kind, if
        known."""
        token = _bearer(authorization)
        with self._lock:
            known = self._tokens.get(token) if token else None
            if known is None:
                return None
            self._tokens[token] = (known[0], time.time())
            if refused_with is not None:
                self._expired_answers[token] = refused_with
        return known[0]

    def may_reach_its_end(self, authorization: str | None) -> bool:
        """Whether this is an OAuth token that has served SERVED_BEFORE_RANDOM_EXPIRY requests: only such a token may
        meet a random token_expired fault."""
        token = _bearer(authorization)
        with self._lock:
            known = self._tokens.get(token) if token else None
            return (known is not None and known[0] == "oauth"
                    and self._served.get(token, 0) >= SERVED_BEFORE_RANDOM_EXPIRY)

    def kind_of(self, authorization: str | None) -> str | None:
        """"pat" or "oauth" for a token this workspace issued, whatever its state; None otherwise."""
        token = _bearer(authorization)
        with self._lock:
            known = self._tokens.get(token) if token else None
        return known[0] if known else None

    # OAuth

    def issue(self, issuer: str, form_body: bytes, authorization: str | None) -> tuple[int, dict]:
        """The token endpoint: (HTTP status, JSON body) for a client_credentials request."""
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": f"Unsupported grant_type: {form.get('grant_type')}"}
        if not client_id or client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        requested = (form.get("scope") or "all-apis").split()
        unknown = [s for s in requested if s not in OAUTH_SCOPES]
        if unknown:
            return 400, {"error": "invalid_scope", "error_description": f"Invalid scope: {' '.join(unknown)}"}
        scope = " ".join(requested)
        now = time.time()
        ttl = self.token_ttl
        claims = {"iss": issuer, "aud": self.workspace_id, "sub": client_id, "client_id": client_id,
                  "scope": scope, "iat": int(now), "exp": int(now + ttl), "jti": secrets.token_hex(8)}
        header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] is None or v[1] > now - 3600}
            self._expired_answers = {t: v for t, v in self._expired_answers.items() if t in self._tokens}
            self._served = {t: n for t, n in self._served.items() if t in self._tokens}
            self._tokens[token] = ("oauth", now + ttl)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope}

    # every API request

    def check(self, authorization: str | None) -> tuple[AuthProblem | None, str | None]:
        """(problem or None, kind of the credential: "pat" or "oauth")."""
        token = _bearer(authorization)
        if token is None:
            return MISSING, None
        with self._lock:
            known = self._tokens.get(token)
            refused_with = self._expired_answers.get(token, self.expired_token_status)
        if known is None:
            return INVALID, None
        kind, expiry = known
        if expiry is not None and expiry <= time.time():
            return (EXPIRED_OAUTH[refused_with] if kind == "oauth" else INVALID), kind
        with self._lock:
            self._served[token] = self._served.get(token, 0) + 1
        return None, kind


def _bearer(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>`; None for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def oidc_discovery(oidc_root: str) -> dict:
    """/oidc/.well-known/oauth-authorization-server, the document databricks-sdk reads for oauth-m2m."""
    return {
        "issuer": oidc_root,
        "authorization_endpoint": f"{oidc_root}/v1/authorize",
        "token_endpoint": f"{oidc_root}/v1/token",
        "jwks_uri": f"{oidc_root}/jwks.json",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code", "id_token"],
        "scopes_supported": list(OAUTH_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
    }


def host_metadata(base_url: str, workspace_id: str) -> dict:
    """/.well-known/databricks-config: databricks-sdk derives its OIDC discovery URL from `oidc_endpoint`."""
    return {"oidc_endpoint": f"{base_url}/oidc", "workspace_id": workspace_id}
