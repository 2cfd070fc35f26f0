"""tap-jaggaer-check: can tap-jaggaer read this JAGGAER instance as configured? Read-only.

With the client a run uses: the token (client credentials), then each listing the streams read (invoices, receipts,
suppliers) asked for one item with the tap's own ``modifiedSince`` (from ``start_date``), and the purchase order
lookup by externalId that the invoices' PO check makes.
"""

from __future__ import annotations

from collections.abc import Iterator

from ml_connector_core.api_checks import JAGGAER, jaggaer_connection, jaggaer_endpoint_fix
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref
from ml_connector_core.jaggaer import JaggaerError
from tap_jaggaer.streams import InvoicesStream, ReceiptsStream, SuppliersStream, parse_utc, utc_text
from tap_jaggaer.tap import TapJaggaer

PLUGIN = TapJaggaer.name
PROBE_EXTERNAL_ID = "mlc-check-no-such-key"


def checks(config: dict) -> Iterator[CheckResult]:
    client, results = jaggaer_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    since = {"modifiedSince": utc_text(parse_utc(config["start_date"]))} if config.get("start_date") else {}
    for stream in (InvoicesStream, ReceiptsStream, SuppliersStream):
        collection = stream.path.strip("/")
        check = f"stream {stream.name}"
        try:
            page = client.get(collection, **since, page=1, pageSize=1)
        except JaggaerError as exc:
            fix = (setting_ref(PLUGIN, "start_date") if exc.status == 400 and since
                   else jaggaer_endpoint_fix(PLUGIN, config, collection, exc.status))
            yield failed(JAGGAER, check, str(exc), fix)
            continue
        total = page.get("totalItems")
        yield passed(JAGGAER, check, f"GET {client.api_path(collection)} answers"
                                     + (f" ({total} item(s){' since start_date' if since else ''})" if total is not None else ""))
    try:
        client.find_by_external_id("purchase-orders", PROBE_EXTERNAL_ID)
    except JaggaerError as exc:
        yield failed(JAGGAER, "purchase order lookup", str(exc),
                     jaggaer_endpoint_fix(PLUGIN, config, "purchase-orders", exc.status))
        return
    yield passed(JAGGAER, "purchase order lookup", f"GET {client.api_path('purchase-orders')}?externalId=... answers "
                                                   "(invoices are checked against their purchase order)")


main = check_command(TapJaggaer, JAGGAER, checks)
