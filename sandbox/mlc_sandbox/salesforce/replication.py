"""sObject Get Updated / Get Deleted (GET /sobjects/<Type>/updated|deleted?start=...&end=...): the ids of the records
changed or deleted in a window, as Salesforce's data replication resources answer them.

Salesforce's rules (REST API Developer Guide, "sObject Get Updated" / "sObject Get Deleted"; SOAP API "getUpdated()"):
start and end are UTC date-times in ISO 8601 whose seconds are ignored (12:30:15 counts as 12:30:00); the window must
span at least a minute; results reach back at most 30 days (updated) or 15 days (deleted); the change time is
SystemModstamp; more than 600,000 ids is EXCEEDED_ID_LIMIT."""

from __future__ import annotations

from datetime import datetime, timedelta

from .schema import SObject
from .values import parse_datetime, render_datetime

MAX_IDS = 600_000
REACH_BACK = {"updated": timedelta(days=30), "deleted": timedelta(days=15)}


class ReplicationRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _to_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _window_edge(params: dict[str, str], name: str) -> datetime:
    moment = parse_datetime(params.get(name, "").strip())
    if moment is None:
        # text as a simple-salesforce user reported it (issue #266); the error code is the stand-in's choice
        raise ReplicationRefused("INVALID_PARAMETER_VALUE", f"{name} date is not in the correct format")
    return _to_minute(moment)


def changes(kind: str, sobject: SObject, params: dict[str, str], rows: list[dict], now: datetime,
            org_created: datetime) -> dict:
    """The answer of `updated` or `deleted` for `rows` (every stored row of the object, deleted ones included)."""
    start, end = _window_edge(params, "start"), _window_edge(params, "end")
    if end - start < timedelta(minutes=1):
        # Salesforce's text, start and end named the wrong way round as it words it
        raise ReplicationRefused("INVALID_REPLICATION_DATE", "startDate must be at least one minute greater than "
                                                             "endDate")
    reach = REACH_BACK[kind]
    if start < _to_minute(now) - reach:
        raise ReplicationRefused("INVALID_REPLICATION_DATE", f"startDate can not be more than {reach.days} days ago")
    covered = min(end, _to_minute(now))
    wanted = sorted((row for row in rows if row["IsDeleted"] == (kind == "deleted")
                     and start <= row["SystemModstamp"] < end), key=lambda row: (row["SystemModstamp"], row["Id"]))
    if len(wanted) > MAX_IDS:
        raise ReplicationRefused("EXCEEDED_ID_LIMIT", f"More than {MAX_IDS} {sobject.name} records changed in the "
                                                      f"window: choose start and end dates closer together")
    if kind == "updated":
        return {"ids": [row["Id"] for row in wanted], "latestDateCovered": render_datetime(covered)}
    return {"deletedRecords": [{"id": row["Id"], "deletedDate": render_datetime(row["SystemModstamp"])}
                               for row in wanted],
            "earliestDateAvailable": render_datetime(_to_minute(org_created)),
            "latestDateCovered": render_datetime(covered)}
