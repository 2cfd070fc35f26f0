"""Everything a Salesforce stand-in run is configured with; `session_ttl`, `daily_api_limit` and `query_batch_size`
can be changed live via /_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "62.0"  # the version the stand-in's helpers (`api_url`) and our plugins use by default
OLDEST_VERSION = 31  # Summer '14: versions 21.0-30.0 were retired in Summer '25 (410 GONE since)
NEWEST_VERSION = 68  # Winter '27, the current release in December 2026; 31.0 ... 68.0 are served alike
RETIRED_VERSIONS = range(7, OLDEST_VERSION)  # 7.0-20.0 retired in Summer '22, 21.0-30.0 in Summer '25


def release_label(major: int) -> str:
    """Salesforce names each version after its release: 30.0 was Spring '14, then one version per Spring, Summer and
    Winter (Winter carries the next year: 62.0 is Winter '25, 68.0 Winter '27)."""
    steps = major - 30
    season = ("Spring", "Summer", "Winter")[steps % 3]
    year = 14 + steps // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02d}"


@dataclass
class SalesforceSettings:
    session_ttl: int = 7200  # seconds of inactivity after which a session ends (Salesforce's default: 2 hours)
    daily_api_limit: int = 15000  # API requests per rolling day; at the limit calls are refused with 403
    query_batch_size: int = 2000  # records per query page (Salesforce's default and maximum)
    client_id: str = "mlc-sf-client"
    client_secret: str = "mlc-sf-secret"
    org_id: str = "00D5e000000MLCsEAG"
    integration_user_id: str = "0055e000001MLCbAAO"  # the connected app's run-as user: API writes are made by it
    ui_user_id: str = "0055e000001MLCuAAO"  # the person whose edits /_admin/records makes
