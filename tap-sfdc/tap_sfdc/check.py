"""tap-sfdc-check: can tap-sfdc read this org as configured? Read-only.

With the client a run uses (connector-core): token, API version and API usage; then each object of ``objects`` (parsed
as discovery parses it): it exists and is queryable for the run-as user, has SystemModstamp (the tap reads changes by
it), has every field named (the schema is built as discovery builds it), and the stream's own SOQL, WHERE included,
runs with ``LIMIT 1``.
"""

from __future__ import annotations

from collections.abc import Iterator

from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.api_checks import SALESFORCE, salesforce_connection
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref
from ml_connector_core.salesforce import SalesforceError
from tap_sfdc.streams import REPLICATION_KEY, FieldError, build_soql, object_schema, parse_utc
from tap_sfdc.tap import TapSfdc, object_reads

PLUGIN = TapSfdc.name


def checks(config: dict) -> Iterator[CheckResult]:
    try:
        reads = object_reads(config)
    except ConfigValidationError as exc:
        yield failed(SALESFORCE, "configuration", str(exc), setting_ref(PLUGIN, "objects"))
        return
    client, results = salesforce_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    since = parse_utc(config["start_date"]) if config.get("start_date") else None
    for read in reads:
        check = f"object {read.sobject}"
        try:
            describe = client.describe(read.sobject)
        except SalesforceError as exc:
            yield failed(SALESFORCE, check, str(exc),
                         setting_ref(PLUGIN, f"objects.{read.sobject}") + ": an object the run-as user can see")
            continue
        if not describe.get("queryable"):
            yield failed(SALESFORCE, check, f"{read.sobject} is not queryable for the run-as user",
                         f"give the connected app's run-as user Read on {read.sobject}")
            continue
        if not any(f.get("name") == REPLICATION_KEY for f in describe.get("fields") or []):
            yield failed(SALESFORCE, check, f"{read.sobject} has no {REPLICATION_KEY}, which the tap reads changes by",
                         setting_ref(PLUGIN, "objects") + f": leave {read.sobject} out")
            continue
        try:
            object_schema(read.sobject, describe, read.fields)
        except FieldError as exc:
            yield failed(SALESFORCE, check, str(exc), setting_ref(PLUGIN, f"objects.{read.sobject}.fields"))
            continue
        yield passed(SALESFORCE, check, f"queryable, {REPLICATION_KEY} present, the {len(read.fields)} fields read exist "
                                        f"(stream {read.stream_name})")
        soql = build_soql(read.sobject, read.fields, read.where, since) + " LIMIT 1"
        try:
            answer = client.get("query", q=soql)
        except SalesforceError as exc:
            yield failed(SALESFORCE, f"query {read.sobject}", str(exc),  # Salesforce quotes the query
                         setting_ref(PLUGIN, f"objects.{read.sobject}.where") + ": a SOQL condition on "
                                                                                f"{read.sobject}'s fields")
            continue
        rows = len(answer.get("records") or [])
        yield passed(SALESFORCE, f"query {read.sobject}", f"{soql} runs ({'a row' if rows else 'no row'} comes back)")


main = check_command(TapSfdc, SALESFORCE, checks)
