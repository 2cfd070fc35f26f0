"""The admin interface (/_admin, loopback only, no auth): what tests and demos use to read the instance's records as
stored, act as the other side (a supplier submits an invoice, goods are received, procurement edits a supplier),
revoke tokens, inject faults and change settings. Errors use the API's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..admin import AdminRefused, open_request, shared_route
from ..http import Request, Response
from .faults import Fault
from .settings import SETTINGS, TOKEN_PATH
from .store import NotFound, Refused
from .values import from_json, to_json

if TYPE_CHECKING:
    from .app import JaggaerApp

LISTINGS = ("suppliers", "purchase-orders", "invoices", "receipts")


def _json(status: int, document) -> Response:
    return Response(status, to_json(document))


def _error(status: int, message: str, code: str = "INVALID_REQUEST") -> Response:
    return _json(status, {"errors": [{"code": code, "message": message}]})


def handle(app: "JaggaerApp", request: Request) -> Response:
    try:
        route, body = open_request(request, loads=from_json, not_an_object="the body must be a JSON object")
    except AdminRefused as refused:
        return _error(refused.status, refused.message, refused.code)
    try:
        return _route(app, request, request.method, route, body)
    except Refused as refused:
        return _json(refused.status, {"errors": refused.errors})
    except NotFound as exc:
        return _error(404, f"no record '{exc.args[0]}'", "NOT_FOUND")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(app: "JaggaerApp", request: Request, method: str, route: str, body: dict) -> Response:
    parts = [unquote(p) for p in route.split("/")] if route else []
    instance, settings = app.instance, app.settings
    shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                          fault_from_json=Fault.from_json, list_known_settings=True)
    if shared is not None:
        return shared
    if route == "info" and method == "GET":
        base_url = app.base_url(request)
        return _json(200, {"base_url": base_url, "token_url": base_url + TOKEN_PATH, "api_url": base_url + "/api/v1",
                           "client_id": settings.client_id, "client_secret": settings.client_secret,
                           **{k: getattr(settings, k) for k in SETTINGS}})
    if route == "tokens/revoke" and method == "POST":
        return _json(200, {"revoked": app.tokens.revoke_all()})
    if route == "reset" and method == "POST":
        app.reset()
        return _json(200, {"status": "reset"})
    if len(parts) == 1 and parts[0] in LISTINGS and method == "GET":
        with instance.lock:
            return _json(200, {"items": instance.table(parts[0]).in_id_order()})
    if len(parts) == 2 and parts[0] in LISTINGS and method == "GET":
        with instance.lock:
            return _json(200, instance.table(parts[0]).get(parts[1]))
    if parts == ["invoices"] and method == "POST":
        return _json(201, instance.submit_invoice(body))
    if len(parts) == 2 and parts[0] == "invoices" and method == "PATCH":
        return _json(200, instance.set_invoice_status(parts[1], body))
    if parts == ["receipts"] and method == "POST":
        return _json(201, instance.receive(body))
    if len(parts) == 2 and parts[0] == "suppliers" and method == "PATCH":
        return _json(200, instance.edit_supplier(parts[1], body))
    return _error(404, f"no admin route {method} /_admin/{route}", "NOT_FOUND")
