"""singer-sdk's standard tap tests, run against a live JAGGAER stand-in holding suppliers, an order, invoices (one
naming the order) and a receipt."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from ml_connector_core.jaggaer import client_from_config
from mlc_sandbox.jaggaer import JaggaerSandboxProcess
from tap_jaggaer.tap import TapJaggaer

# The SDK builds its test class from a config at import time, so the stand-in starts with the module.
_stand_in = JaggaerSandboxProcess(port=0, rate_limit=0)
atexit.register(_stand_in.stop)
_CONFIG = {"base_url": _stand_in.base_url, "client_id": _stand_in.client_id, "client_secret": _stand_in.client_secret,
           "start_date": "2000-01-01T00:00:00Z", "page_size": 2}
_api = client_from_config(_CONFIG)
for _n in range(1, 4):
    _api.request("POST", "suppliers", json={"externalId": f"S{_n}", "name": f"Supplier {_n}", "country": "SE",
                                            "currency": "SEK", "paymentTerms": "NET30"})
_api.request("POST", "purchase-orders", json={
    "externalId": "P1", "supplierExternalId": "S1", "companyCode": "10", "orderDate": "2026-03-01", "currency": "SEK",
    "lines": [{"lineNumber": 1, "description": "Bolts", "quantity": "10", "unitOfMeasure": "EA", "unitPrice": "12.50",
               "glAccount": "4010", "costCenter": "CC1", "deliveryDate": "2026-03-20"}]})
for _n in range(1, 4):
    _stand_in.submit_invoice({
        "invoiceNumber": f"A-{_n}", "supplierExternalId": "S1", "purchaseOrderExternalId": "P1",
        "invoiceDate": "2026-03-05", "lines": [{"lineNumber": 1, "description": "Bolts", "quantity": str(_n * 4),
                                                 "unitPrice": "12.50", "glAccount": "4010", "costCenter": "CC1",
                                                 "poLineNumber": 1}]})
_stand_in.receive("P1", [{"poLineNumber": 1, "quantity": "4"}])

TestTapJaggaer = get_tap_test_class(TapJaggaer, config=_CONFIG, suite_config=SuiteConfig(max_records_limit=100))
