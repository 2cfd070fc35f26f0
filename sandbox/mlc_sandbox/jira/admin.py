"""The admin interface (/_admin, loopback only, no auth): what tests and demos use to read the issues as the API
renders them, move them through the workflow as a person would, read spec violations, inject faults, change settings
and revoke tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..admin import AdminRefused, open_request, shared_route
from ..http import Request, Response
from .guards import Fault
from .store import NotFound
from .versions import View

if TYPE_CHECKING:
    from .app import JiraApp

SETTINGS = ("rate_limit", "token_ttl", "refresh_reuse_seconds")


def _json(status: int, document) -> Response:
    from .app import to_json

    return Response(status, to_json(document))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def handle(app: "JiraApp", request: Request) -> Response:
    try:
        route, body = open_request(request)
    except AdminRefused as refused:
        return _error(refused.status, refused.message)
    try:
        return _route(app, request, request.method, route, body)
    except NotFound as exc:
        return _error(404, f"no issue '{exc.args[0]}'")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(app: "JiraApp", request: Request, method: str, route: str, body: dict) -> Response:
    base_url = app.base_url(request)
    view = View(base_url)  # issues as REST API v3 renders them
    parts = [unquote(p) for p in route.split("/")] if route else []
    shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                          fault_from_json=Fault.from_json)
    if shared is not None:
        return shared
    if route == "info" and method == "GET":
        return _json(200, _info(app, base_url))
    if route == "violations":
        if method == "GET":
            return _json(200, {"violations": app.violations.entries()})
        if method == "DELETE":
            app.violations.clear()
            return _json(200, {"violations": []})
    if route == "issues" and method == "GET":
        return _json(200, {"issues": [app.store.render(i, view) for i in app.store.all()]})
    if len(parts) == 2 and parts[0] == "issues" and method == "GET":
        return _json(200, app.store.render(app.store.get(parts[1]), view))
    if len(parts) == 3 and parts[0] == "issues" and parts[2] == "status" and method == "POST":
        if not isinstance(body.get("status"), str):
            return _error(400, "'status' (a status name) is required")
        issue = app.store.move_to(parts[1], body["status"])
        return _json(200, app.store.render(issue, view))
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
