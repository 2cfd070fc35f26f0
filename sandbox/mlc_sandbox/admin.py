"""What the stand-ins' admin interfaces (/_admin, loopback only, no auth) share: who may call them, reading the JSON
body, and the routes every stand-in has the same way (health, settings, faults, the request log). Each stand-in keeps
its own routes, the shape of its error bodies and which of its exceptions mean which status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .http import Request, Response

LOOPBACK_ONLY = "the admin interface answers on loopback only"
NOT_AN_OBJECT = "invalid JSON body: the body must be a JSON object"


class AdminRefused(Exception):
    """The admin request is refused before routing; `code` is for stand-ins whose errors carry one."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def is_admin_path(path: str) -> bool:
    return path == "/_admin" or path.startswith("/_admin/")


def from_loopback(request: Request) -> bool:
    host = request.client[0] if request.client else ""
    return host.startswith("127.") or host in ("::1", "localhost")


def open_request(request: Request, loads: Callable[[bytes], Any] = json.loads,
                 not_an_object: str = NOT_AN_OBJECT) -> tuple[str, dict]:
    """The admin route (the path after /_admin/) and the JSON object sent ({} without a body); AdminRefused when the
    caller is not on loopback or the body is not a JSON object."""
    if not from_loopback(request):
        raise AdminRefused(403, LOOPBACK_ONLY, "FORBIDDEN")
    route = request.path[len("/_admin"):].strip("/")
    try:
        body = loads(request.body) if request.body else {}
    except (ValueError, TypeError) as exc:
        raise AdminRefused(400, f"invalid JSON body: {exc}", "MALFORMED_JSON") from None
    if not isinstance(body, dict):
        raise AdminRefused(400, not_an_object, "MALFORMED_JSON")
    return route, body


def shared_route(app, method: str, route: str, body: dict, *, answer: Callable[[int, Any], Response],
                 error: Callable[[int, str], Response], settings: tuple[str, ...],
                 fault_from_json: Callable[[dict], Any], settings_view: Callable[[], dict] | None = None,
                 list_known_settings: bool = False) -> Response | None:
    """health, settings (GET, or POST of some of `settings`), faults (GET, POST one, DELETE all) and requests (GET,
    DELETE); None when `route`/`method` is none of them, for the stand-in's own routes to answer.

    `app` has `settings`, `apply_settings(changes)`, `faults` (a FaultQueue) and `log` (a RequestLog)."""
    if route == "health":
        return answer(200, {"status": "ok"})
    if route == "settings":
        if method == "POST":
            unknown = set(body) - set(settings)
            if unknown:
                known = f" (known: {', '.join(settings)})" if list_known_settings else ""
                return error(400, f"unknown settings: {', '.join(sorted(unknown))}{known}")
            app.apply_settings(body)
        if method in ("POST", "GET"):
            if settings_view is not None:
                return answer(200, settings_view())
            return answer(200, {name: getattr(app.settings, name) for name in settings})
    if route == "faults":
        if method == "POST":
            app.faults.add(fault_from_json(body))
            return answer(200, {"faults": app.faults.pending()})
        if method == "GET":
            return answer(200, {"faults": app.faults.pending()})
        if method == "DELETE":
            app.faults.clear()
            return answer(200, {"faults": []})
    if route == "requests":
        if method == "GET":
            return answer(200, {"requests": app.log.entries()})
        if method == "DELETE":
            app.log.clear()
            return answer(200, {"requests": []})
    return None
