"""tap-jaggaer: invoices (with their lines, checked against their purchase order), goods receipts and suppliers read
back from a JAGGAER customer instance, incremental on lastModified, with OAuth 2.0 client credentials."""

from __future__ import annotations

import typing as t
from decimal import Decimal, InvalidOperation
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core.jaggaer import (
    MAX_PAGE_SIZE,
    JaggaerClient,
    JaggaerConfigError,
    client_from_config,
    connection_properties,
)
from ml_connector_core.secrets import SecretKeyError
from ml_connector_core.tap_cli import ConfigErrorsInOneLine, state_interval_property
from tap_jaggaer.streams import (
    InvoiceLinesStream,
    InvoicesStream,
    JaggaerStream,
    ReceiptsStream,
    SuppliersStream,
    po_discrepancies,
)


class TapJaggaer(ConfigErrorsInOneLine, Tap):
    """Reads what changed in JAGGAER since the last run: invoices and their lines, receipts, suppliers."""

    name = "tap-jaggaer"

    config_jsonschema = th.PropertiesList(
        state_interval_property("target-ifscloud writes one record at a time"),
        *connection_properties("reads as"),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest lastModified read on the first run (UTC); empty reads everything."),
        th.Property("page_size", th.IntegerType, default=100, description=f"Items per page (1 to {MAX_PAGE_SIZE})."),
        th.Property("amount_tolerance", th.NumberType, default=0.01,
                    description="An invoice's net amount may differ from its purchase order lines' value by this much "
                                "before it is flagged."),
        th.Property("lookback_seconds", th.IntegerType, default=60,
                    description="Each run reads from the bookmark minus this many seconds, to catch changes that became "
                                "visible late; versions already emitted are skipped."),
    ).to_dict()

    @cached_property
    def client(self) -> JaggaerClient:
        try:
            return client_from_config(self.config)
        except (JaggaerConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    @cached_property
    def page_size(self) -> int:
        size = int(self.config.get("page_size") or 100)
        if not 1 <= size <= MAX_PAGE_SIZE:
            _refuse(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {size}")
        return size

    @cached_property
    def lookback_seconds(self) -> int:
        seconds = self.config.get("lookback_seconds")
        seconds = 60 if seconds is None else int(seconds)
        if seconds < 0:
            _refuse(f"lookback_seconds cannot be negative ({seconds})")
        return seconds

    @cached_property
    def amount_tolerance(self) -> Decimal:
        value = self.config.get("amount_tolerance")
        try:
            tolerance = Decimal(str(0.01 if value is None else value))
        except InvalidOperation:
            _refuse(f"amount_tolerance must be a number, not {value!r}")
        if tolerance < 0:
            _refuse(f"amount_tolerance cannot be negative ({tolerance})")
        return tolerance

    @cached_property
    def _orders(self) -> dict[str, dict | None]:
        return {}

    def purchase_order(self, external_id: str | None, order_id: str | None) -> dict | None:
        """The purchase order an invoice names, fetched once per run."""
        cache_key = f"ext:{external_id}" if external_id else f"id:{order_id}"
        if cache_key not in self._orders:
            if external_id:
                self._orders[cache_key] = self.client.find_by_external_id("purchase-orders", external_id)
            else:
                self._orders[cache_key] = self.client.find_by_id("purchase-orders", str(order_id))
        return self._orders[cache_key]

    def po_check(self, invoice: dict) -> tuple[bool | None, str | None]:
        """(po_matched, po_discrepancies) of an invoice; (None, None) when it names no purchase order."""
        external_id, order_id = invoice.get("purchaseOrderExternalId"), invoice.get("purchaseOrderId")
        if not external_id and not order_id:
            return None, None
        order = self.purchase_order(external_id, order_id)
        problems = po_discrepancies(invoice, order, str(external_id or order_id), self.amount_tolerance)
        return not problems, "; ".join(problems)

    def discover_streams(self) -> list[JaggaerStream]:
        return [InvoicesStream(self), InvoiceLinesStream(self), ReceiptsStream(self), SuppliersStream(self)]

    def sync_all(self) -> None:
        super().sync_all()
        # End on STATE even when every item read was one already emitted.
        self.write_message(StateMessage(value=self.state))


def _refuse(message: str) -> t.NoReturn:
    raise ConfigValidationError(message, errors=[message])


if __name__ == "__main__":
    TapJaggaer.cli()
