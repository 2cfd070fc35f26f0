"""The admin interface: change data, inject faults and change settings while serving (loopback only, no auth)."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING

from ..admin import LOOPBACK_ONLY, from_loopback, shared_route
from ..http import Request, Response
from . import generate, model, render, writes
from .guards import Fault

if TYPE_CHECKING:
    from .app import IfsApp

SETTINGS = ("token_ttl", "rate_limit", "page_size", "time_zone", "fault_rates")


def _json(status: int, document) -> Response:
    return Response(status, render.to_json(document))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _body(request: Request) -> dict:
    if not request.body:
        return {}
    body = json.loads(request.body, parse_float=Decimal)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def handle(app: "IfsApp", request: Request) -> Response:
    if not from_loopback(request):
        return _error(403, LOOPBACK_ONLY)
    route = request.path[len("/_admin"):].strip("/")
    method = request.method
    try:
        body = _body(request) if method in ("POST", "PATCH", "DELETE") else {}
    except ValueError as exc:
        return _error(400, f"invalid JSON body: {exc}")
    try:
        if route == "profile" and method == "GET":  # which tenant is played, so a test can tell it is the right one
            return _json(200, app.profile.describe())
        if route == "info" and method == "GET":
            return _json(200, _info(app))
        if route.startswith("records/"):
            return _records(app, method, route[len("records/"):], body)
        if route == "faults" and method == "GET":  # with the random fault rates, which only IFS has
            return _json(200, {"faults": app.faults.pending(), "rates": asdict(app.settings.fault_rates)})
        shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                              fault_from_json=Fault.from_json, settings_view=lambda: _settings(app))
        if shared is not None:
            return shared
        if route == "tokens/revoke" and method in ("POST", "GET"):
            return _json(200, {"revoked": app.tokens.revoke_all()})
    except (ValueError, TypeError, KeyError) as exc:
        status = exc.status if isinstance(exc, writes.WriteError) else 400
        return _error(status, str(exc))
    return _error(404, f"no admin route {method} /_admin/{route}")


def _settings(app: "IfsApp") -> dict:
    s = app.settings
    return {"token_ttl": s.token_ttl, "rate_limit": s.rate_limit, "page_size": s.page_size,
            "time_zone": s.time_zone, "fault_rates": asdict(s.fault_rates)}


def _info(app: "IfsApp") -> dict:
    with app.store.reader() as conn:
        counts = {e.entity_set: conn.execute(f'SELECT count(*) FROM "{e.table}"').fetchone()[0]
                  for e in model.ENTITIES}
    return {"seed": app.settings.seed, "scale": app.settings.scale, "data_version": generate.DATA_VERSION,
            "counts": counts, "settings": _settings(app), "data_file": str(app.store.path),
            "profile": app.profile.name}


def _records(app: "IfsApp", method: str, entity_set: str, body: dict) -> Response:
    entity = model.ENTITY_BY_SET.get(entity_set)
    if entity is None:
        return _error(404, f"unknown entity set '{entity_set}'")
    renderer = render.renderer_for(entity, None, True, app.zone, versions=app.objversions)
    now = render.utc_now()
    if method == "POST":
        if "records" in body:
            if not isinstance(body["records"], list):
                return _error(400, "'records' must be a list")
            with app.store.writer() as conn:
                rows = [writes.create(conn, entity, record, now, render.parse_utc, app.store.counters)
                        for record in body["records"]]
            return _json(200, {"count": len(rows), "records": [renderer(r) for r in rows]})
        if "record" not in body:
            return _error(400, "send {\"record\": {...}} or {\"records\": [...]}")
        with app.store.writer() as conn:
            row = writes.create(conn, entity, body["record"], now, render.parse_utc, app.store.counters)
        return _json(200, renderer(row))
    if method == "PATCH":
        changed_at = render.parse_utc(body["changed_at"]) if body.get("changed_at") else now
        with app.store.writer() as conn:
            key = writes.coerce_key(entity, body.get("key"), render.parse_utc)
            row = writes.change(conn, entity, key, body.get("changes", {}), changed_at, render.parse_utc,
                                app.store.change_counts)
        return _json(200, renderer(row))
    if method == "DELETE":
        with app.store.writer() as conn:
            key = writes.coerce_key(entity, body.get("key"), render.parse_utc)
            removed = writes.delete(conn, entity, key)
        return _json(200, {"deleted": removed})
    return _error(405, f"{method} is not supported on records")
