"""The IFS stand-in as one request handler: routing, authentication, rate limit, faults, request log."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin, render
from .auth import Credentials, TokenIssuer
from .guards import FaultInjector, FaultRates, RateLimiter, RequestLog
from .odata import JSON, ODATA_VERSION, ODataService, odata_error
from .profile import Profile
from .store import Store

SERVICE_PATH = re.compile(r"^/(main|int)/ifsapplications/projection/v1/([A-Za-z0-9_]+)\.svc(/.*)?$")
TOKEN_PATH = re.compile(r"^/auth/realms/([^/]+)/protocol/openid-connect/token$")
DISCOVERY_PATH = re.compile(r"^/auth/realms/([^/]+)/\.well-known/openid-configuration$")
LOGGED_HEADERS = ("If-Match", "X-Ifs-Time-Zone-Aware-Request", "Prefer", "Accept", "Content-Type", "User-Agent")


@dataclass
class IfsSettings:
    """Everything a run can be configured with; the live ones can also be changed via /_admin/settings."""

    scale: int = 1000
    seed: int = 42
    token_ttl: int = 180
    rate_limit: int = 1000
    page_size: int = 1000
    time_zone: str = "Europe/Stockholm"
    realm: str = "mlc"
    client_id: str = "mlc-sandbox-client"
    client_secret: str = "mlc-sandbox-secret"
    fault_rates: FaultRates = field(default_factory=FaultRates)
    fault_seed: int | None = None
    profile: Profile = field(default_factory=Profile)  # the tenant variant played (profile.load)


class IfsApp:
    def __init__(self, settings: IfsSettings, store: Store):
        self.settings = settings
        self.store = store
        self.zone = ZoneInfo(settings.time_zone)
        self.tokens = TokenIssuer(Credentials(settings.realm, settings.client_id, settings.client_secret),
                                  settings.token_ttl)
        self.rate_limiter = RateLimiter(settings.rate_limit)
        self.faults = FaultInjector(settings.fault_rates,
                                    settings.fault_seed if settings.fault_seed is not None else settings.seed)
        self.log = RequestLog()
        self.profile = settings.profile
        self.catalogue = self.profile.catalogue
        # how the objversion inside every ETag is written, here and in the admin interface alike
        self.objversions = (render.CounterObjversion(store.change_counts) if self.profile.etag_objversion == "counter"
                            else render.timestamp_objversion)
        self.odata = ODataService(self)
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def apply_settings(self, changes: dict) -> None:
        if "token_ttl" in changes:
            self.settings.token_ttl = self.tokens.ttl = int(changes["token_ttl"])
        if "rate_limit" in changes:
            self.settings.rate_limit = self.rate_limiter.per_minute = int(changes["rate_limit"])
        if "page_size" in changes:
            self.settings.page_size = max(1, int(changes["page_size"]))
        if "time_zone" in changes:
            self.zone = ZoneInfo(changes["time_zone"])
            self.settings.time_zone = changes["time_zone"]
        if "fault_rates" in changes:
            given = {name: float(value) for name, value in dict(changes["fault_rates"]).items()}
            rates = FaultRates(**{**asdict(self.settings.fault_rates), **given})
            self.settings.fault_rates = self.faults.rates = rates

    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        entry = new_entry(
            request.method, request.target,
            headers={name: request.headers.get(name) for name in LOGGED_HEADERS if request.headers.get(name)},
            authorization=_redacted(request.headers.get("Authorization")),
        )
        response, entry["kind"], entry["fault"] = self._answer(request)
        if entry["kind"] == "data":  # every answer of a projection service, errors and injected faults included
            response.headers.append(("OData-Version", ODATA_VERSION))
        self.log.finish(entry, response, started)
        return response

    def _answer(self, request: Request) -> tuple[Response, str, str | None]:
        service_match = SERVICE_PATH.match(request.path)
        kind = "data" if service_match else "token" if TOKEN_PATH.match(request.path) else "other"
        fault = self.faults.next_for(request.target, kind == "data", request.method)
        truncate = False
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(fault.delay_seconds)
            elif fault.kind == "drop":
                return Response(0, drop=True), kind, "drop"
            elif fault.kind == "status":
                return _injected_status(fault.status), kind, "status"
            elif fault.kind == "rate_limit":
                return _too_many(fault.retry_after), kind, "rate_limit"
            elif fault.kind == "malformed":
                truncate = True
        response = self._route(request, service_match, kind)
        response.truncate = truncate
        return response, kind, fault.kind if fault else None

    def _route(self, request: Request, service_match, kind: str) -> Response:
        if kind == "token":
            return self._token(request, TOKEN_PATH.match(request.path).group(1))
        discovery = DISCOVERY_PATH.match(request.path)
        if discovery:
            return self._discovery(request, discovery.group(1))
        # a root this tenant does not serve (profile api_paths) is as absent as any unknown path
        if not service_match or f"/{service_match.group(1)}/ifsapplications/projection/v1" \
                not in self.profile.api_paths:
            return odata_error(404, "ODP_NOT_FOUND", "Metadata not found.")
        problem = self.tokens.check(request.headers.get("Authorization"))
        if problem is not None:
            return odata_error(401, "ODP_UNAUTHORIZED", problem,
                               headers=[("WWW-Authenticate", 'Bearer realm="%s", error="invalid_token"'
                                         % self.settings.realm)])
        wait = self.rate_limiter.admit()
        if wait is not None:
            return _too_many(wait)
        prefix, projection, rest = service_match.groups()
        service_root = f"/{prefix}/ifsapplications/projection/v1/{projection}.svc"
        return self.odata.handle(request, projection, service_root, rest or "")

    def _issuer(self, request: Request, realm: str) -> str:
        return f"{self.scheme}://{request.headers.get('Host') or self.host_port}/auth/realms/{realm}"

    def _token(self, request: Request, realm: str) -> Response:
        if realm != self.settings.realm:
            return Response(404, render.to_json({"error": "Realm does not exist"}))
        if request.method != "POST":
            return Response(405, render.to_json({"error": "HTTP 405 Method Not Allowed"}))
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization") or ""
        if basic.lower().startswith("basic "):
            import base64

            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return Response(400, render.to_json({"error": "unsupported_grant_type",
                                                 "error_description": "Unsupported grant_type"}))
        creds = self.tokens.credentials
        if client_id != creds.client_id or client_secret != creds.client_secret:
            return Response(401, render.to_json({"error": "invalid_client",
                                                 "error_description": "Invalid client or Invalid client credentials"}))
        return Response(200, render.to_json(self.tokens.issue(self._issuer(request, realm))))

    def _discovery(self, request: Request, realm: str) -> Response:
        if realm != self.settings.realm:
            return Response(404, render.to_json({"error": "Realm does not exist"}))
        issuer = self._issuer(request, realm)
        return Response(200, render.to_json({
            "issuer": issuer,
            "token_endpoint": f"{issuer}/protocol/openid-connect/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }))


INJECTED_CODES = {400: "ODP_BAD_REQUEST", 401: "ODP_UNAUTHORIZED", 403: "ODP_FORBIDDEN", 404: "ODP_RESOURCE_NOTFOUND",
                  500: "MI_MODIFIED_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}


def _injected_status(status: int) -> Response:
    message = "Malformed Request." if status == 400 else "Injected failure from the IFS stand-in."
    details = [{"code": INJECTED_CODES.get(status, "ODP_ERROR"), "message": f"Injected HTTP {status} (fault)"}]
    return odata_error(status, INJECTED_CODES.get(status, "ODP_ERROR"), message, details)


def _too_many(retry_after: int) -> Response:
    return odata_error(429, "ODP_TOO_MANY_REQUESTS", "Too many requests: the tenant's rate limit is exceeded.",
                       headers=[("Retry-After", str(retry_after))])


def _redacted(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return f"{scheme} …{token[-6:]}" if token else scheme


__all__ = ["IfsApp", "IfsSettings", "JSON"]
