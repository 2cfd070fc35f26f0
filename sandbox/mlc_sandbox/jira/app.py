"""The Jira stand-in as one request handler: find the route (REST API v3, v2 or latest, all served from the same
data), authenticate (Basic on the site URL, Bearer or Basic through /ex/jira/<cloudid>), apply the per-user rate limit
and injected faults, validate the request against the official spec, answer, then validate the answer too. Violations
are answered 400 (requests) and recorded (both)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin, api, versions
from .auth import Credentials, OAuthRefused
from .guards import FaultQueue, RateLimiter, RequestLog
from .settings import JiraSettings
from .site import Site
from .spec import AdfValidator, SpecValidator
from .store import IssueStore

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
ANONYMOUS = "anonymous"  # who calls an operation Jira serves without credentials (serverInfo); rate-limited as one


def to_json(document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def jira_error(status: int, messages: list[str] | None = None, errors: dict | None = None,
               headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, to_json({"errorMessages": messages or [], "errors": errors or {}}), headers=headers or [])


class Violations:
    def __init__(self, size: int = 5000):
        self._entries: list[dict] = []
        self._size = size
        self._lock = threading.Lock()

    def add(self, method: str, path: str, kind: str, message: str) -> None:
        with self._lock:
            if len(self._entries) < self._size:
                self._entries.append({"method": method, "path": path, "kind": kind, "message": message})

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class JiraApp:
    def __init__(self, settings: JiraSettings, spec: SpecValidator | None = None, adf: AdfValidator | None = None):
        self.settings = settings
        self.site = Site(settings)
        self.spec = spec or SpecValidator()
        self.adf = adf or AdfValidator()
        self.store = IssueStore(self.site, self.adf)
        self.credentials = Credentials(settings)
        self.rate_limiter = RateLimiter(settings.rate_limit)
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.violations = Violations()
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def base_url(self, request: Request | None = None) -> str:
        host = request.headers.get("Host") if request is not None else None
        return f"{self.scheme}://{host or self.host_port}"

    @property
    def gateway_prefix(self) -> str:
        return f"/ex/jira/{self.settings.cloud_id}"

    def apply_settings(self, changes: dict) -> None:
        if "rate_limit" in changes:
            self.settings.rate_limit = self.rate_limiter.limit = int(changes["rate_limit"])
        if "token_ttl" in changes:
            self.settings.token_ttl = int(changes["token_ttl"])
        if "refresh_reuse_seconds" in changes:
            self.settings.refresh_reuse_seconds = float(changes["refresh_reuse_seconds"])

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        self.log.clear()
        self.violations.clear()
        self.rate_limiter.clear()

    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        entry = new_entry(request.method, request.path, query=request.query, user=None, fault=None)
        response = self._answer(request, entry)
        self.log.finish(entry, response, started)
        return response

    def _answer(self, request: Request, entry: dict) -> Response:
        path = request.path
        if path.startswith("/oauth/token"):
            return self._oauth(request, entry)
        gateway = path.startswith("/ex/jira/")
        if gateway:
            parts = path.split("/", 4)  # "", "ex", "jira", cloudid, rest
            if len(parts) < 5 or parts[3] != self.settings.cloud_id:
                return jira_error(404, ["Site not found"])
            api_path = "/" + parts[4]
        else:
            api_path = path
        # every version's routes and spec are those of /rest/api/3; the view tells the handler which one was asked
        version, api_path = versions.split(api_path) or ("3", api_path)
        route = api.find(request.method, api_path)
        if route is None:
            if api.known_path(api_path):
                return Response(405, b"", headers=[("Allow", ", ".join(api.methods_of(api_path)))])
            return jira_error(404, [f"null for uri: {self.base_url(request)}{path}"])
        authorization = request.headers.get("Authorization")
        if self.credentials.basic_user(authorization) or (gateway and self.credentials.bearer_valid(authorization)):
            user = self.site.api_user.account_id
        elif authorization is None and route.anonymous:
            user = ANONYMOUS
        elif gateway and not (authorization or "").lower().startswith("basic "):
            return Response(401, to_json({"code": 401, "message": "Unauthorized"}),
                            headers=[("WWW-Authenticate", 'Bearer realm="api.atlassian.com"')])
        else:
            return jira_error(401, [NOT_AUTHENTICATED],
                              headers=[("WWW-Authenticate", 'Basic realm="protected-by-api-token"')])
        entry["user"] = user
        admitted, remaining, wait = self.rate_limiter.admit(user)
        limit_headers = [("X-RateLimit-Limit", str(self.settings.rate_limit)),
                         ("X-RateLimit-Remaining", str(remaining))] if self.settings.rate_limit > 0 else []
        if not admitted:
            return self._throttled(wait)
        fault = self.faults.strike("rest", request.method, api_path, entry)
        if fault is not None:
            return self._fault(fault)
        if route.retired:
            return jira_error(410, ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
                                    "API. A full migration guideline is available at "
                                    "https://developer.atlassian.com/changelog/#CHANGE-2046"])
        problem = self.spec.request_problem(request.method, api_path, request.query, request.headers, request.body)
        if problem is not None:
            self.violations.add(request.method, path, "request", problem)
            return jira_error(400, [problem], headers=limit_headers)
        view = versions.View(self.base_url(request) + (self.gateway_prefix if gateway else ""), version)
        response = route.handler(self, api.Call(request, api_path, route.match, view))
        response.headers = limit_headers + response.headers
        if response.status < 500 and not response.drop:
            problem = self.spec.response_problem(request.method, api_path, request.query, request.headers,
                                                 request.body, response.status, response.body,
                                                 response.content_type, response.headers)
            if problem is not None:
                self.violations.add(request.method, path, "response", problem)
        return response

    def _throttled(self, wait: int) -> Response:
        reset = (datetime.now(timezone.utc) + timedelta(seconds=wait)).strftime("%Y-%m-%dT%H:%MZ")
        return jira_error(429, ["Rate limit exceeded."], headers=[
            ("Retry-After", str(wait)), ("X-RateLimit-Limit", str(self.settings.rate_limit)),
            ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", reset),
            ("RateLimit-Reason", "jira-quota-global-based")])

    def _fault(self, fault) -> Response:
        if fault.kind == "drop":
            return Response(0, drop=True)
        if fault.kind == "rate_limit":
            return self._throttled(fault.retry_after)
        headers = [("Retry-After", str(fault.retry_after))] if fault.status == 503 else []
        return jira_error(fault.status, [f"Injected HTTP {fault.status} from the Jira stand-in."], headers=headers)

    def _oauth(self, request: Request, entry: dict) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            fault = self.faults.strike("oauth", request.method, request.path, entry)
            if fault is not None:
                if fault.kind == "drop":
                    return Response(0, drop=True)
                else:
                    status = 429 if fault.kind == "rate_limit" else fault.status
                    return Response(status, to_json({"error": "server_error" if status >= 500 else "rate_limited",
                                                     "error_description": f"Injected HTTP {status}"}),
                                    headers=[("Retry-After", str(fault.retry_after))])
            try:
                answer = self.credentials.exchange(request.body, request.headers.get("Content-Type") or "")
            except OAuthRefused as refused:
                return Response(refused.status, to_json(refused.body()))
            return Response(200, to_json(answer), headers=[("Cache-Control", "no-store")])
        if request.path == "/oauth/token/accessible-resources" and request.method == "GET":
            fault = self.faults.strike("resources", request.method, request.path, entry)
            if fault is not None:  # the API gateway's own answers, before it looks at the token
                if fault.kind == "drop":
                    return Response(0, drop=True)
                status = 429 if fault.kind == "rate_limit" else fault.status
                return Response(status, to_json({"code": status, "message": f"Injected HTTP {status}"}),
                                headers=[("Retry-After", str(fault.retry_after))] if status in (429, 503) else [])
            if not self.credentials.bearer_valid(request.headers.get("Authorization")):
                return Response(401, to_json({"code": 401, "message": "Unauthorized"}),
                                headers=[("WWW-Authenticate", 'Bearer realm="api.atlassian.com"')])
            from .auth import SCOPES

            return Response(200, to_json([{"id": self.settings.cloud_id, "url": self.base_url(request),
                                           "name": self.settings.site_name, "scopes": list(SCOPES),
                                           "avatarUrl": f"{self.base_url(request)}/avatar/site.png"}]))
        return Response(404, to_json({"error": "not_found", "error_description": f"No route {request.path}"}))
