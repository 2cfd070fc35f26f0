"""The admin interface (/_admin, loopback only, no auth): what tests and demos use to find each channel's webhook URL
and Graph id, read what was posted (and what was refused, with why), add channels, inject faults and change
settings."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..admin import AdminRefused, open_request, shared_route
from ..http import Request, Response
from .channels import Channel
from .guards import Fault
from .responses import to_json

if TYPE_CHECKING:
    from .app import TeamsApp

SETTINGS = ("token_ttl", "max_message_bytes", "validation", "graph_roles")


def _json(status: int, document) -> Response:
    return Response(status, to_json(document))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def handle(app: "TeamsApp", request: Request) -> Response:
    try:
        route, body = open_request(request)
    except AdminRefused as refused:
        return _error(refused.status, refused.message)
    try:
        return _route(app, request, request.method, route, body)
    except KeyError as exc:
        return _error(409, str(exc.args[0]) if exc.args else "conflict")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(app: "TeamsApp", request: Request, method: str, route: str, body: dict) -> Response:
    base_url = app.base_url(request)
    parts = [unquote(p) for p in route.split("/")] if route else []
    if route == "faults" and method == "POST":
        fault = Fault.from_json(body)
        if fault.channel is not None and app.channels.get(fault.channel) is None:
            return _error(404, f"no channel '{fault.channel}'")
        app.faults.add(fault)
        return _json(200, {"faults": app.faults.pending()})
    shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                          fault_from_json=Fault.from_json)
    if shared is not None:
        return shared
    if route == "info" and method == "GET":
        return _json(200, _info(app, base_url))
    if route == "channels":
        if method == "GET":
            return _json(200, {"channels": [_channel(app, c, base_url) for c in app.channels.all()]})
        if method == "POST":
            channel = app.channels.add(Channel.create(body.get("id"), body.get("name")))
            return _json(201, _channel(app, channel, base_url))
    if len(parts) in (2, 3) and parts[0] == "channels" and method == "GET":
        channel = app.channels.get(parts[1])
        if channel is None:
            return _error(404, f"no channel '{parts[1]}'")
        if len(parts) == 2:
            return _json(200, _channel(app, channel, base_url))
        if parts[2] == "messages":
            return _json(200, {"channel_id": channel.id, "messages": app.store.messages(channel.id)})
    if route == "messages":
        if method == "GET":
            return _json(200, {"messages": app.store.messages()})
        if method == "DELETE":
            return _json(200, {"deleted": app.store.clear_messages()})
    if route == "rejections":
        if method == "GET":
            return _json(200, {"rejections": app.store.rejections()})
        if method == "DELETE":
            return _json(200, {"deleted": app.store.clear_rejections()})
    if route == "tokens/expire" and method == "POST":
        return _json(200, {"expired": app.tokens.expire_all()})
    if route == "tokens/revoke" and method == "POST":
        return _json(200, {"revoked": app.tokens.revoke_all()})
    if route == "reset" and method == "POST":
        app.store.clear_messages()
        app.store.clear_rejections()
        app.faults.clear()
        app.log.clear()
        return _json(200, {"status": "reset"})
    return _error(404, f"no admin route {method} /_admin/{route}")


def _channel(app: "TeamsApp", channel: Channel, base_url: str) -> dict:
    return {**channel.describe(base_url, app.settings.signing_key, app.settings.team_id),
            "messages": len(app.store.messages(channel.id))}


def _info(app: "TeamsApp", base_url: str) -> dict:
    s = app.settings
    return {"base_url": base_url, "team_id": s.team_id, "team_name": s.team_name, "tenant_id": s.tenant_id,
            "tenant_domain": s.tenant_domain, "client_id": s.client_id,
            "token_url": f"{base_url}/{s.tenant_id}/oauth2/v2.0/token",
            "graph_scope": "https://graph.microsoft.com/.default", "graph_url": base_url,
            "token_ttl": s.token_ttl, "max_message_bytes": s.max_message_bytes, "validation": s.validation,
            "adaptive_card_versions": "1.0-1.5", "channels": [c.id for c in app.channels.all()]}
