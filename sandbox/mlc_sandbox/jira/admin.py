"""The admin interface (/_admin, loopback only, no auth): what tests and demos use to read the issues as the API
renders them, move them through the workflow as a person would, read spec violations, inject faults, change settings
and revoke tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..http import Request, Response
from .guards import Fault
from .store import NotFound

if TYPE_CHECKING:
    from .app import JiraApp

SETTINGS = ("rate_limit", "token_ttl", "refresh_reuse_seconds")


def _json(status: int, document) -> Response:
    from .app import to_json

    return Response(status, to_json(document))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def handle(app: "JiraApp", request: Request) -> Response:
    host = request.client[0] if request.client else ""
    if not (host.startswith("127.") or host in ("::1", "localhost")):
        return _error(403, "the admin interface answers on loopback only")
    route = request.path[len("/_admin"):].strip("/")
    try:
        body = json.loads(request.body) if request.body else {}
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:
        return _error(400, f"invalid JSON body: {exc}")
    try:
        return _route(app, request, request.method, route, body)
    except NotFound as exc:
        return _error(404, f"no issue '{exc.args[0]}'")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(app: "JiraApp", request: Request, method: str, route: str, body: dict) -> Response:
    base_url = app.base_url(request)
    parts = [unquote(p) for p in route.split("/")] if route else []
    if route == "health":
        return _json(200, {"status": "ok"})
    if route == "info" and method == "GET":
        return _json(200, _info(app, base_url))
    if route == "settings":
        if method == "POST":
            unknown = set(body) - set(SETTINGS)
            if unknown:
                return _error(400, f"unknown settings: {', '.join(sorted(unknown))}")
            app.apply_settings(body)
        if method in ("POST", "GET"):
            return _json(200, {k: getattr(app.settings, k) for k in SETTINGS})
    if route == "faults":
        if method == "POST":
            app.faults.add(Fault.from_json(body))
            return _json(200, {"faults": app.faults.pending()})
        if method == "GET":
            return _json(200, {"faults": app.faults.pending()})
        if method == "DELETE":
            app.faults.clear()
            return _json(200, {"faults": []})
    if route == "requests":
        if method == "GET":
            return _json(200, {"requests": app.log.entries()})
        if method == "DELETE":
            app.log.clear()
            return _json(200, {"requests": []})
    if route == "violations":
        if method == "GET":
            return _json(200, {"violations": app.violations.entries()})
        if method == "DELETE":
            app.violations.clear()
            return _json(200, {"violations": []})
    if route == "issues" and method == "GET":
        return _json(200, {"issues": [app.store.render(i, base_url) for i in app.store.all()]})
    if len(parts) == 2 and parts[0] == "issues" and method == "GET":
        return _json(200, app.store.render(app.store.get(parts[1]), base_url))
    if len(parts) == 3 and parts[0] == "issues" and parts[2] == "status" and method == "POST":
        if not isinstance(body.get("status"), str):
            return _error(400, "'status' (a status name) is required")
        issue = app.store.move_to(parts[1], body["status"])
        return _json(200, app.store.render(issue, base_url))
    if route == "tokens/revoke" and method == "POST":
        return _json(200, app.credentials.revoke(bool(body.get("refresh_tokens", False))))
    if route == "tokens/refresh-token" and method == "POST":
        return _json(200, {"refresh_token": app.credentials.new_refresh_token()})
    if route == "reset" and method == "POST":
        app.reset()
        return _json(200, {"status": "reset"})
    return _error(404, f"no admin route {method} /_admin/{route}")


def _info(app: "JiraApp", base_url: str) -> dict:
    s = app.settings
    return {"base_url": base_url, "api_url": f"{base_url}/ex/jira/{s.cloud_id}", "cloud_id": s.cloud_id,
            "email": s.email, "api_token": s.api_token, "client_id": s.client_id, "client_secret": s.client_secret,
            "initial_refresh_token": s.initial_refresh_token, "token_url": f"{base_url}/oauth/token",
            "user_time_zone": s.user_time_zone, "rate_limit": s.rate_limit, "token_ttl": s.token_ttl,
            "field_ids": {f.name: f.id for f in app.site.custom_fields},
            "account_ids": {u.email: u.account_id for u in app.site.users}}
