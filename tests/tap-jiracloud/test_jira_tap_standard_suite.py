"""singer-sdk's standard tap tests, run against a live Jira stand-in with a few issues."""

from __future__ import annotations

import atexit

import requests
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from mlc_sandbox.jira import JiraSandboxProcess
from tap_jiracloud.tap import TapJiraCloud

# The SDK builds its test class from a config at import time, so the stand-in starts with the module.
_stand_in = JiraSandboxProcess(port=0, user_time_zone="Asia/Kolkata", field_id_base=12000)
atexit.register(_stand_in.stop)
_ids = _stand_in.field_ids()
for _n in range(5):
    requests.post(f"{_stand_in.base_url}/rest/api/3/issue", auth=(_stand_in.email, _stand_in.api_token), timeout=30, json={
        "fields": {"project": {"key": "MNT"}, "issuetype": {"name": "Work Order"}, "summary": f"Work order {_n}",
                   "labels": ["ifs"], _ids["IFS Key"]: f"WorkOrder:{_n}", _ids["Cost Center"]: "CC100"}},
    ).raise_for_status()

TestTapJiraCloud = get_tap_test_class(
    TapJiraCloud,
    config={"base_url": _stand_in.base_url, "email": _stand_in.email, "api_token": _stand_in.api_token,
            "jql": "project = MNT", "start_date": "2000-01-01T00:00:00Z",
            "custom_fields": {"ifs_key": "IFS Key", "cost_center": "Cost Center"}},
    suite_config=SuiteConfig(max_records_limit=100),
)
