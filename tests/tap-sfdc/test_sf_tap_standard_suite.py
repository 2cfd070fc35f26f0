"""singer-sdk's standard tap tests, run against a live Salesforce stand-in holding a few customer Accounts and a Contact."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from mlc_sandbox.salesforce import SalesforceSandboxProcess
from tap_sfdc.tap import TapSfdc

# The SDK builds its test class from a config at import time, so the stand-in starts with the module.
_stand_in = SalesforceSandboxProcess(port=0)
atexit.register(_stand_in.stop)
for _n in range(5):
    _account = _stand_in.insert("Account", {"Name": f"Customer {_n}", "IFS_Customer_Id__c": f"C{_n}", "Type": "Customer",
                                            "Credit_Limit__c": f"{_n}000.50"})
_stand_in.insert("Contact", {"LastName": "Berg", "FirstName": "Anna", "Email": "anna.berg@example.com",
                             "AccountId": _account, "IFS_Customer_Id__c": "C4-1"})

TestTapSfdc = get_tap_test_class(
    TapSfdc,
    config={"base_url": _stand_in.base_url, "client_id": _stand_in.client_id, "client_secret": _stand_in.client_secret,
            "start_date": "2000-01-01T00:00:00Z",
            "objects": {"Account": {"fields": ["Id", "Name", "IFS_Customer_Id__c", "Credit_Limit__c", "Type"],
                                    "where": "IFS_Customer_Id__c != null"},
                        "Contact": {"fields": ["Id", "LastName", "FirstName", "Email", "AccountId"]}}},
    suite_config=SuiteConfig(max_records_limit=100),
)
