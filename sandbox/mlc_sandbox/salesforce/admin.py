"""The admin interface (/_admin, loopback only, no auth): what tests and demos use to read the org's records as
stored, change them as a person in Salesforce would (the audit fields move), end sessions, set the API usage counter,
move the clock, inject faults and change settings."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from ..admin import AdminRefused, open_request, shared_route
from ..http import Request, Response
from .faults import Fault
from .schema import OBJECTS, find_object
from .store import NotFound, RecordFailure
from .values import render

if TYPE_CHECKING:
    from .app import SalesforceApp

SETTINGS = ("session_ttl", "daily_api_limit", "query_batch_size")


def _json(status: int, document) -> Response:
    return Response(status, json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def _error(status: int, message: str, **extra) -> Response:
    return _json(status, {"error": message, **extra})


def stored(row: dict) -> dict:
    return {name: render(value) for name, value in row.items()}


def handle(app: "SalesforceApp", request: Request) -> Response:
    try:
        route, body = open_request(request)
    except AdminRefused as refused:
        return _error(refused.status, refused.message)
    try:
        return _route(app, request, request.method, route, body)
    except RecordFailure as failure:
        return _error(400, failure.message, errorCode=failure.code, fields=failure.fields)
    except NotFound as exc:
        return _error(404, f"no record '{exc.args[0]}'")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(app: "SalesforceApp", request: Request, method: str, route: str, body: dict) -> Response:
    parts = [unquote(p) for p in route.split("/")] if route else []
    params = {k: v[0] for k, v in parse_qs(request.query).items()}
    org, settings = app.org, app.settings
    shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                          fault_from_json=Fault.from_json)
    if shared is not None:
        return shared
    if route == "info" and method == "GET":
        base_url = app.base_url(request)
        return _json(200, {"base_url": base_url, "token_url": f"{base_url}/services/oauth2/token",
                           "client_id": settings.client_id, "client_secret": settings.client_secret,
                           "org_id": settings.org_id, "integration_user_id": settings.integration_user_id,
                           "ui_user_id": settings.ui_user_id, "api_used": app.api_used,
                           **{k: getattr(settings, k) for k in SETTINGS}})
    if route == "sessions/expire" and method == "POST":
        return _json(200, {"expired": app.sessions.expire_all()})
    if route == "api-usage" and method == "POST":
        if not isinstance(body.get("used"), int) or body["used"] < 0:
            return _error(400, "'used' (a whole number, at least 0) is required")
        app.set_api_usage(body["used"])
        return _json(200, {"used": app.api_used, "limit": settings.daily_api_limit})
    if route == "clock" and method == "POST":
        seconds = body.get("advance_seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            return _error(400, "'advance_seconds' (a number, at least 0) is required")
        with org.lock:
            org.advance_clock(seconds)
        return _json(200, {"now": render(org.now())})
    if route == "reset" and method == "POST":
        app.reset()
        return _json(200, {"status": "reset"})
    if parts and parts[0] == "records" and len(parts) in (2, 3):
        sobject = find_object(parts[1])
        if sobject is None:
            return _error(404, f"no sObject type '{parts[1]}' (known: {', '.join(OBJECTS)})")
        user = settings.ui_user_id
        if len(parts) == 2 and method == "GET":
            with org.lock:
                deleted = params.get("deleted", "").lower() == "true"
                rows = org.all_rows(sobject.name) if deleted else org.live(sobject.name)
                return _json(200, {"records": [stored(row) for row in sorted(rows, key=lambda r: r["Id"])]})
        if len(parts) == 2 and method == "POST":
            fields = body.get("fields")
            if not isinstance(fields, dict):
                return _error(400, "'fields' (an object of field values) is required")
            row = org.create(sobject, fields, user,
                             allow_duplicate_external_ids=bool(body.get("allow_duplicate_external_ids", False)))
            return _json(200, {"id": row["Id"], "record": stored(row)})
        if len(parts) == 3 and method == "GET":
            with org.lock:
                return _json(200, stored(org.get(sobject.name, parts[2], include_deleted=True)))
        if len(parts) == 3 and method == "PATCH":
            fields = body.get("fields")
            if not isinstance(fields, dict):
                return _error(400, "'fields' (an object of field values) is required")
            row = org.update(sobject, parts[2], fields, user)
            return _json(200, {"id": row["Id"], "record": stored(row)})
        if len(parts) == 3 and method == "DELETE":
            org.delete(sobject, parts[2], user)
            return _json(200, {"deleted": parts[2]})
    return _error(404, f"no admin route {method} /_admin/{route}")
