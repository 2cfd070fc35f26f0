"""JAGGAER listings as Singer streams: incremental on lastModified (``modifiedSince``, inclusive), paged with
``page``/``pageSize``, every HTTP call through the shared JAGGAER client (budget, retries, token renewal)."""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cached_property

import requests
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import PageNumberPaginator
from singer_sdk.streams import RESTStream

from ml_connector_core.audit import load_json
from ml_connector_core.tap_cli import state_interval

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_jaggaer.tap import TapJaggaer

UTC = dt.timezone.utc
REPLICATION_KEY = "lastModified"
# State key: id → lastModified of the records emitted whose lastModified lies within the look-back window before the
# bookmark. The next run reads from the bookmark minus the look-back (modifiedSince is inclusive) and skips exactly
# these versions; anything else it finds there (a change that became visible late, or a new version) is emitted.
SEEN_IN_LOOKBACK = "seen_in_lookback"

DECIMAL = th.NumberType
TEXT = th.StringType
DATE = th.DateType
TIMESTAMP = th.DateTimeType


def with_exact_decimals(schema: dict) -> dict:
    """Numbers are amounts or quantities JAGGAER keeps exact: tell targets to keep them as decimals, never floats."""
    if "number" in (schema.get("type") or []):
        schema["x-sql-datatype"] = "decimal"
    for child in (schema.get("properties") or {}).values():
        with_exact_decimals(child)
    if isinstance(schema.get("items"), dict):
        with_exact_decimals(schema["items"])
    return schema


def parse_utc(value: str | dt.datetime) -> dt.datetime:
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def utc_text(moment: dt.datetime) -> str:
    """``2026-11-25T20:15:03.123Z``: how JAGGAER writes timestamps, and how bookmarks are kept."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decimal(value: t.Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


class _Pages(PageNumberPaginator):
    def has_more(self, response: requests.Response) -> bool:
        return bool(load_json(response.content).get("hasMore"))


class JaggaerStream(RESTStream):
    """One JAGGAER listing, oldest change first; the bookmark is the newest lastModified (UTC) emitted."""

    primary_keys: t.ClassVar[list[str]] = ["id"]
    replication_key = REPLICATION_KEY
    is_sorted = True  # JAGGAER orders listings by (lastModified, id)
    # Rows come decoded with their Singer types already (Decimals for amounts, exact).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapJaggaer, **kwargs: t.Any) -> None:
        super().__init__(tap, **kwargs)
        self.jaggaer_tap = tap
        self._run_start: dict[str, t.Any] | None = None
        self.STATE_MSG_FREQUENCY = state_interval(self.config)

    @property
    def url_base(self) -> str:
        return self.jaggaer_tap.client.api_root

    # HTTP goes through the shared client: its budget, waits after 429/5xx and token renewal.

    def request_decorator(self, func):
        return func

    def _request(self, prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
        return self.jaggaer_tap.client.request(prepared_request.method or "GET", prepared_request.url or "")

    def get_new_paginator(self) -> PageNumberPaginator:
        return _Pages(1)

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        params: dict[str, t.Any] = {"page": next_page_token or 1, "pageSize": self.jaggaer_tap.page_size}
        since = self.modified_since(context)
        if since is not None:
            params["modifiedSince"] = utc_text(since)
        return params

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        yield from load_json(response.content).get("items") or []

    # Incremental reading

    def modified_since(self, context: Context | None) -> dt.datetime | None:
        start = self.get_starting_timestamp(context)
        if start is None:
            return None
        moment = parse_utc(start)
        bookmark = self.get_context_state(context).get("replication_key_value")
        if bookmark:
            moment -= dt.timedelta(seconds=self.jaggaer_tap.lookback_seconds)
        return moment

    def _start_of_run(self, context: Context | None) -> dict[str, t.Any]:
        """The bookmark and the versions seen near it as this run found them (the state moves while it runs)."""
        if self._run_start is None:
            state = self.get_context_state(context)
            bookmark = state.get("replication_key_value")
            self._run_start = {"bookmark": parse_utc(bookmark) if bookmark else None,
                               "seen": dict(state.get(SEEN_IN_LOOKBACK) or {})}
        return self._run_start

    def already_emitted(self, record: Mapping[str, t.Any], context: Context | None) -> bool:
        start = self._start_of_run(context)
        value = record.get(REPLICATION_KEY)
        if start["bookmark"] is None or not value or parse_utc(value) > start["bookmark"]:
            return False
        seen = start["seen"].get(str(record.get("id")))
        return seen is not None and parse_utc(seen) == parse_utc(value)

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        if self.already_emitted(row, context):
            return None  # emitted by an earlier run, unchanged since
        return row

    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        state = self.get_context_state(context)
        value = latest_record.get(REPLICATION_KEY)
        if not value:
            return
        seen: dict[str, str] = state.setdefault(SEEN_IN_LOOKBACK, {})
        seen.pop(str(latest_record.get("id")), None)
        seen[str(latest_record.get("id"))] = value
        current = state.get("replication_key_value")
        if not current or parse_utc(value) >= parse_utc(current):
            super()._increment_stream_state(latest_record, context=context)
        # else: a change that became visible late; the bookmark never moves back.
        horizon = parse_utc(state["replication_key_value"]) - dt.timedelta(seconds=self.jaggaer_tap.lookback_seconds)
        # Entries were added in lastModified order (all but late ones), so the stale ones are at the front.
        for record_id in list(seen):
            if parse_utc(seen[record_id]) >= horizon:
                break
            del seen[record_id]


INVOICE_LINE_PROPERTIES = (
    th.Property("lineNumber", th.IntegerType),
    th.Property("description", TEXT),
    th.Property("quantity", DECIMAL),
    th.Property("unitPrice", DECIMAL),
    th.Property("amount", DECIMAL),
    th.Property("glAccount", TEXT),
    th.Property("costCenter", TEXT),
    th.Property("poLineNumber", th.IntegerType),
)


class InvoicesStream(JaggaerStream):
    """Invoices suppliers submitted, each checked against its purchase order (``po_matched``, ``po_discrepancies``)."""

    name = "invoices"
    path = "/invoices"
    schema = with_exact_decimals(th.PropertiesList(
        th.Property("id", TEXT, required=True),
        th.Property("invoiceNumber", TEXT),
        th.Property("supplierId", TEXT),
        th.Property("supplierExternalId", TEXT),
        th.Property("purchaseOrderId", TEXT),
        th.Property("purchaseOrderExternalId", TEXT),
        th.Property("companyCode", TEXT),
        th.Property("invoiceDate", DATE),
        th.Property("dueDate", DATE),
        th.Property("currency", TEXT),
        th.Property("netAmount", DECIMAL),
        th.Property("taxAmount", DECIMAL),
        th.Property("grossAmount", DECIMAL),
        th.Property("status", TEXT),
        th.Property("lines", th.ArrayType(th.ObjectType(*INVOICE_LINE_PROPERTIES))),
        th.Property("createdAt", TIMESTAMP),
        th.Property("lastModified", TIMESTAMP, required=True),
        th.Property("po_matched", th.BooleanType,
                    description="The invoice agrees with its purchase order; null when it names none."),
        th.Property("po_discrepancies", TEXT,
                    description="How the invoice differs from its purchase order (empty when it agrees; null when it "
                                "names none)."),
    ).to_dict())

    def __init__(self, tap: TapJaggaer, **kwargs: t.Any) -> None:
        super().__init__(tap, **kwargs)
        self._deferred_children: list[dict] = []
        self._lines_of: dict[str, list[dict]] = {}

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row = super().post_process(row, context)
        if row is None:
            return None
        row["po_matched"], row["po_discrepancies"] = self.jaggaer_tap.po_check(row)
        return row

    # invoice_lines come from the invoice's own lines, written right after the invoice.

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        self._lines_of[str(record["id"])] = list(record.get("lines") or [])
        return {"invoiceId": record["id"], "invoiceNumber": record.get("invoiceNumber"),
                "companyCode": record.get("companyCode"), "supplierExternalId": record.get("supplierExternalId")}

    def lines_of(self, invoice_id: str) -> list[dict]:
        return self._lines_of.pop(str(invoice_id), [])

    def _sync_children(self, child_context: Context | None) -> None:
        # The SDK syncs children before it writes the parent's RECORD; the lines should follow their invoice.
        if self.selected and child_context is not None:
            self._deferred_children.append(dict(child_context))
        else:
            super()._sync_children(child_context)

    def _write_record_message(self, record: Record) -> None:
        super()._write_record_message(record)
        deferred, self._deferred_children = self._deferred_children, []
        for child_context in deferred:
            super()._sync_children(child_context)


class InvoiceLinesStream(RESTStream):
    """The lines of each invoice read, with the invoice's id, number, company and supplier; no request of its own."""

    name = "invoice_lines"
    path = "/invoices"
    parent_stream_type = InvoicesStream
    state_partitioning_keys: t.ClassVar[list[str]] = []
    primary_keys: t.ClassVar[list[str]] = ["invoiceId", "lineNumber"]
    replication_key = None
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    schema = with_exact_decimals(th.PropertiesList(
        th.Property("invoiceId", TEXT, required=True),
        th.Property("invoiceNumber", TEXT),
        th.Property("companyCode", TEXT),
        th.Property("supplierExternalId", TEXT),
        *INVOICE_LINE_PROPERTIES,
    ).to_dict())

    @property
    def url_base(self) -> str:
        return self._tap.client.api_root  # type: ignore[attr-defined]

    @cached_property
    def invoices(self) -> InvoicesStream:
        return t.cast(InvoicesStream, self._tap.streams["invoices"])

    def get_records(self, context: Context | None) -> Iterable[dict]:
        if not context:
            return
        invoice = {k: context.get(k) for k in ("invoiceId", "invoiceNumber", "companyCode", "supplierExternalId")}
        for line in self.invoices.lines_of(str(context["invoiceId"])):
            yield {**invoice, **{p.name: line.get(p.name) for p in INVOICE_LINE_PROPERTIES}}

    def _write_state_message(self) -> None:
        # The SDK writes the whole tap state after each child sync, i.e. after every invoice, and the invoices' look-back
        # set makes each message bigger than the last (quadratic output). These lines have no bookmark of their own:
        # the invoices stream writes the state at its own pace and at its end.
        return

    def parse_response(self, response: requests.Response) -> Iterable[dict]:  # never requested
        return []

    def get_new_paginator(self) -> None:
        return None


class ReceiptsStream(JaggaerStream):
    """Goods receipts against purchase orders."""

    name = "receipts"
    path = "/receipts"
    schema = with_exact_decimals(th.PropertiesList(
        th.Property("id", TEXT, required=True),
        th.Property("purchaseOrderId", TEXT),
        th.Property("purchaseOrderExternalId", TEXT),
        th.Property("receivedAt", TIMESTAMP),
        th.Property("lines", th.ArrayType(th.ObjectType(
            th.Property("poLineNumber", th.IntegerType),
            th.Property("quantity", DECIMAL),
        ))),
        th.Property("lastModified", TIMESTAMP, required=True),
    ).to_dict())


class SuppliersStream(JaggaerStream):
    """Suppliers as JAGGAER holds them, with the changes procurement made there."""

    name = "suppliers"
    path = "/suppliers"
    schema = with_exact_decimals(th.PropertiesList(
        th.Property("id", TEXT, required=True),
        th.Property("externalId", TEXT),
        th.Property("name", TEXT),
        th.Property("country", TEXT),
        th.Property("currency", TEXT),
        th.Property("status", TEXT),
        th.Property("taxId", TEXT),
        th.Property("paymentTerms", TEXT),
        th.Property("category", TEXT),
        th.Property("createdAt", TIMESTAMP),
        th.Property("lastModified", TIMESTAMP, required=True),
    ).to_dict())


# --- The invoice / purchase order check ---


def po_discrepancies(invoice: Mapping[str, t.Any], order: Mapping[str, t.Any] | None, reference: str,
                     tolerance: Decimal) -> list[str]:
    """What a person checking the invoice against its order before month-end should look at; empty when it agrees.
    Amounts are compared as exact decimals."""
    if order is None:
        return [f"purchase order {reference} not found in JAGGAER"]
    problems = []
    invoice_supplier = invoice.get("supplierExternalId") or invoice.get("supplierId")
    order_supplier = (order.get("supplierExternalId") if invoice.get("supplierExternalId") else order.get("supplierId"))
    if invoice_supplier != order_supplier:
        problems.append(f"supplier {invoice_supplier} differs from the order's {order_supplier}")
    if invoice.get("currency") and order.get("currency") and invoice["currency"] != order["currency"]:
        problems.append(f"currency {invoice['currency']} differs from the order's {order['currency']}")
    order_lines = {line.get("lineNumber"): line for line in order.get("lines") or []}
    order_value = sum(((_decimal(line.get("quantity")) or 0) * (_decimal(line.get("unitPrice")) or 0)
                       for line in order_lines.values()), Decimal(0))
    net = _decimal(invoice.get("netAmount"))
    if net is not None and abs(net - order_value) > tolerance:
        problems.append(f"net amount {net} differs from the order lines' value {order_value} by {net - order_value:+} "
                        f"(tolerance {tolerance})")
    for line in invoice.get("lines") or []:
        po_line_number = line.get("poLineNumber")
        if po_line_number is None:
            continue
        label = f"line {line.get('lineNumber')}"
        order_line = order_lines.get(po_line_number)
        if order_line is None:
            problems.append(f"{label} refers to order line {po_line_number}, which the order does not have")
            continue
        quantity, ordered = _decimal(line.get("quantity")), _decimal(order_line.get("quantity"))
        if quantity is not None and ordered is not None and quantity > ordered:
            problems.append(f"{label}: quantity {quantity} above the {ordered} ordered on order line {po_line_number}")
        price, order_price = _decimal(line.get("unitPrice")), _decimal(order_line.get("unitPrice"))
        if price is not None and order_price is not None and price != order_price:
            problems.append(f"{label}: unit price {price} differs from the {order_price} of order line {po_line_number}")
    return problems
