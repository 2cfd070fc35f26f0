"""The JAGGAER stand-in as one request handler: the token endpoint, then for /api/v1/...: route known (404/405),
Bearer token (401), rate limit (429), injected faults, then the operation (suppliers and purchase orders written by
externalId, invoices and receipts read by modifiedSince with paging). Every request goes to the request log, writes
with their JSON body."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from urllib.parse import parse_qs, unquote

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin
from .auth import Tokens, TokenRefused
from .faults import Fault, FaultQueue, RequestLog
from .settings import API_PREFIX, TOKEN_PATH, JaggaerSettings
from .store import Instance, NotFound, Refused
from .values import from_json, parse_timestamp, to_json

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
LOGGED_BODY_CHARS = 20_000  # an unparseable body goes to the log as text, cut here
# collection -> (methods on the collection, methods on one record)
ROUTES = {"suppliers": (("GET", "POST"), ("GET", "PUT")), "purchase-orders": (("GET", "POST"), ("GET", "PUT")),
          "invoices": (("GET",), ("GET",)), "receipts": (("GET",), ("GET",))}
FILTERABLE_BY_EXTERNAL_ID = ("suppliers", "purchase-orders")
FAULT_CODES = {429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
               504: "GATEWAY_TIMEOUT"}


def answer(status: int, document=None, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, b"" if document is None else to_json(document), headers=headers or [])


def api_error(status: int, code: str, message: str, field: str | None = None,
              headers: list[tuple[str, str]] | None = None) -> Response:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return answer(status, {"errors": [error]}, headers)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.field = code, field


class RateLimiter:
    """At most `limit` requests in any 60 seconds, all clients together; `limit` 0 lets everything through."""

    window = 60.0

    def __init__(self, limit: int):
        self.limit = limit
        self._seen: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> int:
        """0 when admitted, else the seconds until a slot frees."""
        if self.limit <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            while self._seen and self._seen[0] <= now - self.window:
                self._seen.popleft()
            if len(self._seen) >= self.limit:
                return max(1, math.ceil(self._seen[0] + self.window - now))
            self._seen.append(now)
            return 0

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class JaggaerApp:
    def __init__(self, settings: JaggaerSettings):
        self.settings = settings
        self.instance = Instance()
        self.tokens = Tokens(settings)
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.rate_limiter = RateLimiter(settings.rate_limit)
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def base_url(self, request: Request | None = None) -> str:
        host = request.headers.get("Host") if request is not None else None
        return f"{self.scheme}://{host or self.host_port}"

    def apply_settings(self, changes: dict) -> None:
        values = {}
        for name in ("token_ttl", "rate_limit"):
            if name in changes:
                value = changes[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"'{name}' must be a whole number, at least 0")
                values[name] = value
        for name, value in values.items():
            setattr(self.settings, name, value)
        if "rate_limit" in values:
            self.rate_limiter.limit = values["rate_limit"]
            self.rate_limiter.clear()

    def reset(self) -> None:
        self.instance.reset()
        self.tokens.revoke_all()
        self.faults.clear()
        self.log.clear()
        self.rate_limiter.clear()

    # --- the request pipeline -------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        entry = new_entry(request.method, request.path, query=request.query, fault=None)
        if request.method in ("POST", "PUT", "PATCH") and request.path.startswith("/api/"):
            entry["body"] = _logged_body(request.body)  # never the token form: it carries the client secret
        response = self._answer(request, entry)
        entry["error_codes"] = _error_codes(response)
        self.log.finish(entry, response, started)
        return response

    def _answer(self, request: Request, entry: dict) -> Response:
        if request.path == TOKEN_PATH:
            if request.method != "POST":
                return answer(405, {"error": "invalid_request", "error_description": "use POST"},
                              [("Allow", "POST")])
            return self._token(request, entry)
        route = _route(request.path)
        if route is None:
            return api_error(404, "NOT_FOUND", f"No resource at {request.path}")
        collection, record_id = route
        methods = ROUTES[collection][0 if record_id is None else 1]
        if request.method not in methods:
            return api_error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here; allowed: "
                                                        f"{', '.join(methods)}", headers=[("Allow", ", ".join(methods))])
        refusal = self.tokens.check(request.headers.get("Authorization"))
        if refusal is not None:
            return api_error(401, "UNAUTHORIZED", refusal, headers=[("WWW-Authenticate", 'Bearer realm="api"')])
        wait = self.rate_limiter.admit()
        if wait:
            return api_error(429, "RATE_LIMITED", f"More than {self.settings.rate_limit} requests per minute; retry "
                                                  f"in {wait} s", headers=[("Retry-After", str(wait))])
        fault = self.faults.strike("api", request.method, request.path, entry)
        lost_answer = False
        if fault is not None:
            if fault.kind == "lost_answer":
                lost_answer = True
            else:
                return _fault_response(fault)
        try:
            response = self._dispatch(request, collection, record_id)
        except BadRequest as bad:
            response = api_error(400, bad.code, str(bad), bad.field)
        except Refused as refused:
            response = answer(refused.status, {"errors": refused.errors})
        except NotFound:
            response = api_error(404, "NOT_FOUND", f"No {collection[:-1].replace('-', ' ')} with id '{record_id}'")
        if lost_answer:  # carried out, but the client never hears of it
            return Response(response.status, drop=True)
        return response

    def _token(self, request: Request, entry: dict) -> Response:
        fault = self.faults.strike("oauth", request.method, request.path, entry)
        if fault is not None:
            if fault.kind == "drop":
                return Response(0, drop=True)
            else:
                status = 429 if fault.kind == "rate_limit" else fault.status
                headers = [("Retry-After", str(fault.retry_after))] if status in (429, 503) else []
                return answer(status, {"error": "temporarily_unavailable", "error_description": "retry later"},
                              headers)
        try:
            return answer(200, self.tokens.issue(request.body, request.headers.get("Authorization")),
                          [("Cache-Control", "no-store")])
        except TokenRefused as refused:
            headers = [("WWW-Authenticate", 'Basic realm="oauth"')] if refused.status == 401 else []
            return answer(refused.status, refused.body, headers)

    def _dispatch(self, request: Request, collection: str, record_id: str | None) -> Response:
        instance = self.instance
        if request.method == "GET":
            if record_id is not None:
                with instance.lock:
                    return answer(200, instance.table(collection).get(record_id))
            return self._list(collection, request.query)
        body = _json_body(request.body)
        if collection == "suppliers":
            if record_id is None:
                return answer(201, instance.create_supplier(body))
            return answer(200, instance.replace_supplier(record_id, body))
        if record_id is None:
            return answer(201, instance.create_order(body))
        return answer(200, instance.replace_order(record_id, body))

    def _list(self, collection: str, query: str) -> Response:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        page = _positive_int(params, "page", 1, None)
        page_size = _positive_int(params, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        since = None
        if "modifiedSince" in params:
            try:
                since = parse_timestamp(params["modifiedSince"])
            except ValueError as exc:
                raise BadRequest("INVALID_PARAMETER", f"modifiedSince must be an ISO-8601 timestamp with a time "
                                                      f"zone such as 2026-01-31T12:00:00Z ({exc})", "modifiedSince")
        by_external_id = "externalId" in params
        if by_external_id and collection not in FILTERABLE_BY_EXTERNAL_ID:
            raise BadRequest("INVALID_PARAMETER", f"{collection} cannot be filtered by externalId", "externalId")
        instance = self.instance
        with instance.lock:
            table = instance.table(collection)
            if by_external_id:  # the index answers at once; paging rules still apply to the 0 or 1 match
                index = instance.supplier_by_external if collection == "suppliers" else instance.order_by_external
                found = index.get(params["externalId"])
                matches = [] if found is None else [table.docs[found]]
                if since is not None:
                    matches = [doc for doc in matches if table.stamps[doc["id"]][0] >= since]
                chosen = matches[(page - 1) * page_size: page * page_size]
                return answer(200, {"items": chosen, "page": page, "pageSize": page_size,
                                    "totalItems": len(matches), "hasMore": page * page_size < len(matches)})
            return answer(200, table.page(since, page, page_size))


def _route(path: str) -> tuple[str, str | None] | None:
    if not path.startswith(API_PREFIX + "/"):
        return None
    parts = [unquote(p) for p in path[len(API_PREFIX) + 1:].split("/")]
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or parts[0] not in ROUTES or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        return None
    return parts[0], parts[1] if len(parts) == 2 else None


def _positive_int(params: dict, name: str, default: int, maximum: int | None) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < 1 or (maximum is not None and int(text) > maximum):
        limit = f" and at most {maximum}" if maximum is not None else ""
        raise BadRequest("INVALID_PARAMETER", f"{name} must be a whole number, at least 1{limit}; got '{text}'", name)
    return int(text)


def _json_body(data: bytes) -> dict:
    try:
        body = from_json(data) if data else None
    except Exception as exc:  # msgspec.DecodeError: say where the JSON broke
        raise BadRequest("MALFORMED_JSON", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("MALFORMED_JSON", "The request body must be a JSON object")
    return body


def _logged_body(data: bytes):
    if not data:
        return None
    try:
        return from_json(data)
    except Exception:
        return data[:LOGGED_BODY_CHARS].decode(errors="replace")


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "drop":
        return Response(0, drop=True)
    status = 429 if fault.kind == "rate_limit" else fault.status
    headers = [("Retry-After", str(fault.retry_after))] if status in (429, 503) else []
    code = FAULT_CODES.get(status, "ERROR" if status >= 500 else "REQUEST_FAILED")
    message = "Too many requests; retry later" if status == 429 else f"The request failed ({status}); retry later"
    return api_error(status, code, message, headers=headers)


def _error_codes(response: Response) -> list[str]:
    if response.status < 400 or response.drop or not response.body:
        return []
    try:
        document = from_json(response.body)
    except Exception:
        return []
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        return [e.get("code") for e in document["errors"] if isinstance(e, dict)]
    if isinstance(document, dict) and "error" in document:
        return [document["error"]]
    return []
