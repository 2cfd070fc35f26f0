"""Everything a JAGGAER stand-in run is configured with; `token_ttl` and `rate_limit` can be changed live via
/_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass

API_PREFIX = "/api/v1"
TOKEN_PATH = "/oauth/token"
SETTINGS = ("token_ttl", "rate_limit")


@dataclass
class JaggaerSettings:
    token_ttl: int = 3600  # seconds from issue; 0 issues tokens that are already expired (for tests)
    rate_limit: int = 300  # /api/ requests per sliding minute, all clients together; 0 = unlimited
    client_id: str = "mlc-jaggaer-client"
    client_secret: str = "mlc-jaggaer-secret"
