"""Running the JAGGAER stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ..runner import InProcessStandIn, LoggedStandInProcess, SettingsAdminClient, option_flags, tls_flags
from .app import JaggaerApp
from .settings import API_PREFIX, TOKEN_PATH, JaggaerSettings


def _plain(value):
    """Decimals as strings for the admin's JSON body (the stand-in reads them back exactly)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _AdminClient(SettingsAdminClient):
    """The JAGGAER admin interface (records, the supplier and warehouse side, tokens, faults) over HTTP."""

    settings: JaggaerSettings

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    def suppliers(self) -> list[dict]:
        """Every supplier as stored (amounts and timestamps as the API renders them), in id order."""
        return self.admin("GET", "suppliers")["items"]

    def purchase_orders(self) -> list[dict]:
        return self.admin("GET", "purchase-orders")["items"]

    def invoices(self) -> list[dict]:
        return self.admin("GET", "invoices")["items"]

    def receipts(self) -> list[dict]:
        return self.admin("GET", "receipts")["items"]

    def submit_invoice(self, invoice: dict) -> dict:
        """A supplier submits an invoice in the supplier network; returns it as stored."""
        return self.admin("POST", "invoices", _plain(invoice))

    def set_invoice_status(self, invoice_id: str, status: str) -> dict:
        return self.admin("PATCH", f"invoices/{invoice_id}", {"status": status})

    def receive(self, po_external_id: str, lines: list[dict], received_at: str | None = None) -> dict:
        """A goods receipt against the purchase order `po_external_id`: lines [{"poLineNumber", "quantity"}]."""
        body = {"purchaseOrderExternalId": po_external_id, "lines": _plain(lines)}
        if received_at is not None:
            body["receivedAt"] = received_at
        return self.admin("POST", "receipts", body)

    def edit_supplier(self, supplier_id: str, fields: dict) -> dict:
        """Procurement changes a supplier in JAGGAER (only the fields given; lastModified moves)."""
        return self.admin("PATCH", f"suppliers/{supplier_id}", _plain(fields))

    def revoke_tokens(self) -> int:
        return self.admin("POST", "tokens/revoke")["revoked"]

    def clear_requests(self) -> None:
        self.admin("DELETE", "requests")


class JaggaerSandbox(_AdminClient, InProcessStandIn):
    """The JAGGAER stand-in in this process, serving from a background thread.

        with JaggaerSandbox(port=0) as jg:
            token = requests.post(jg.token_url, data={"grant_type": "client_credentials",
                                                      "client_id": jg.client_id, "client_secret": jg.client_secret})
            jg.suppliers()
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", token_ttl: int = JaggaerSettings.token_ttl,
                 rate_limit: int = JaggaerSettings.rate_limit, client_secret: str = JaggaerSettings.client_secret,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        self.settings = JaggaerSettings(token_ttl=token_ttl, rate_limit=rate_limit, client_secret=client_secret)
        self._init_server(host, port, tls_cert, tls_key)
        self.app: JaggaerApp | None = None

    def _build_app(self) -> JaggaerApp:
        return JaggaerApp(self.settings)


class JaggaerSandboxProcess(_AdminClient, LoggedStandInProcess):
    """The JAGGAER stand-in as a child process (`mlc-sandbox serve jaggaer ...`), started and stopped from Python.
    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves."""

    label = "JAGGAER"

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", token_ttl: int = JaggaerSettings.token_ttl,
                 rate_limit: int = JaggaerSettings.rate_limit, timeout: float = 60,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        self.settings = JaggaerSettings(token_ttl=token_ttl, rate_limit=rate_limit)
        flags = option_flags({"port": port, "host": host, "token_ttl": token_ttl, "rate_limit": rate_limit})
        self._serve_child("jaggaer", flags + tls_flags(self, tls_cert, tls_key), timeout)
