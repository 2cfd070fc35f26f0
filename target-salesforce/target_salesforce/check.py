"""target-salesforce-check: can target-salesforce upsert into this org as configured? Read-only.

With the client a run uses (connector-core): the token (My Domain, client credentials), the API version, the org's API
usage; then for every stream of ``sobjects`` (parsed as the target parses them) the object's describe: the run-as user
may create and update it, its external id field exists and is an External ID usable for lookups (idLookup) and
writable, each field of ``defaults`` exists and is createable, and each reference field pointing at an object another
stream writes can be set by that object's external id. The other fields a record carries come from the stream maps
(mappers/), which the target's settings do not name: Salesforce names any it refuses at the first upsert.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ml_connector_core.api_checks import SALESFORCE, salesforce_connection
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref
from ml_connector_core.salesforce import SalesforceClient, SalesforceError
from target_salesforce.target import TargetSalesforce
from target_salesforce.writer import RecordError, Route, parse_routes

PLUGIN = TargetSalesforce.name


def sobjects_setting(part: str = "") -> str:
    """``sobjects.sf_orders.defaults (TARGET_SALESFORCE_SOBJECTS)``."""
    return setting_ref(PLUGIN, "sobjects" + (f".{part}" if part else ""))


def checks(config: dict) -> Iterator[CheckResult]:
    try:
        routes = parse_routes(config)
    except RecordError as exc:
        yield failed(SALESFORCE, "configuration", str(exc), sobjects_setting())
        return
    client, results = salesforce_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    describes = yield from object_checks(client, routes)
    usable: dict[str, list[str]] = {}  # object → its external ids that work, for references to it
    for route in routes.values():
        describe = describes.get(route.sobject)
        if describe is None:
            continue
        fields = {str(f["name"]).casefold(): f for f in describe.get("fields") or []}
        result = external_id_check(route, fields)
        if result.status == "pass":
            usable.setdefault(route.sobject, []).append(route.external_id_field)
        yield result
        yield from default_checks(route, fields)
    for route in routes.values():
        if route.sobject in describes:
            yield from reference_checks(route, describes[route.sobject], routes, usable)


def object_checks(client: SalesforceClient, routes: Mapping[str, Route]):
    """Describe each object once; returns object → describe for those that exist."""
    describes: dict[str, dict] = {}
    for sobject in dict.fromkeys(r.sobject for r in routes.values()):
        streams = ", ".join(s for s, r in routes.items() if r.sobject == sobject)
        try:
            describe = client.describe(sobject)
        except SalesforceError as exc:
            first = next(s for s, r in routes.items() if r.sobject == sobject)
            yield failed(SALESFORCE, f"object {sobject}", f"{exc} (streams {streams})",
                         sobjects_setting(f"{first}.sobject") + ": an object the run-as user can see")
            continue
        describes[sobject] = describe
        cannot = [what for what in ("createable", "updateable") if not describe.get(what)]
        if cannot:
            yield failed(SALESFORCE, f"object {sobject}", f"the run-as user's {sobject} is not {' or '.join(cannot)}",
                         f"give the connected app's run-as user Create and Edit on {sobject} (profile or permission set)")
        else:
            yield passed(SALESFORCE, f"object {sobject}", f"createable and updateable (streams {streams})")
    return describes


def external_id_check(route: Route, fields: Mapping[str, dict]) -> CheckResult:
    check = f"external id {route.sobject}.{route.external_id_field}"
    setting = sobjects_setting(f"{route.stream}.external_id_field")
    field = fields.get(route.external_id_field.casefold())
    if field is None:
        known = ", ".join(str(f["name"]) for f in fields.values() if f.get("externalId")) or "none"
        return failed(SALESFORCE, check, f"{route.sobject} has no field {route.external_id_field} "
                                         f"(its external ids: {known})", setting)
    if not field.get("externalId"):
        return failed(SALESFORCE, check, f"{route.sobject}.{field['name']} is not marked External ID",
                      f"mark {route.sobject}.{field['name']} as External ID (Setup → Object Manager), or change "
                      + setting)
    if not field.get("idLookup"):
        return failed(SALESFORCE, check, f"{route.sobject}.{field['name']} cannot be used to find records (idLookup "
                                         "false)", setting)
    if not field.get("createable"):
        return failed(SALESFORCE, check, f"the run-as user cannot write {route.sobject}.{field['name']}",
                      f"give the run-as user Edit on {route.sobject}.{field['name']} (field-level security)")
    unique = "unique" if field.get("unique") else "not unique: two records with one value make the upsert refuse it"
    return passed(SALESFORCE, check, f"External ID, idLookup, {unique} (stream {route.stream})")


def default_checks(route: Route, fields: Mapping[str, dict]) -> Iterator[CheckResult]:
    for name in route.defaults:
        check = f"default {route.sobject}.{name}"
        field = fields.get(str(name).casefold())
        if field is None:
            yield failed(SALESFORCE, check, f"{route.sobject} has no field {name}",
                         sobjects_setting(f"{route.stream}.defaults"))
        elif field.get("calculated") or field.get("autoNumber"):
            yield failed(SALESFORCE, check, f"{route.sobject}.{field['name']} is calculated by Salesforce: it cannot be "
                                            "set", sobjects_setting(f"{route.stream}.defaults") + f": drop {name}")
        elif not field.get("createable"):
            yield failed(SALESFORCE, check, f"the run-as user cannot set {route.sobject}.{field['name']}",
                         f"give the run-as user Edit on {route.sobject}.{field['name']} (field-level security), or drop "
                         f"it from sobjects.{route.stream}.defaults")
        else:
            yield passed(SALESFORCE, check, f"{field.get('type')}, createable")


def reference_checks(route: Route, describe: Mapping[str, Any], routes: Mapping[str, Route],
                     usable: Mapping[str, list[str]]) -> Iterator[CheckResult]:
    """Each reference field of the object that points at an object another stream writes: records set it by the
    parent's external id (``Account.IFS_Supplier_Id__c``), which needs the relationship and a working external id."""
    for field in describe.get("fields") or []:
        if field.get("type") != "reference" or not field.get("relationshipName"):
            continue
        parents = [r for r in routes.values() if r.sobject in (field.get("referenceTo") or []) and r.stream != route.stream]
        if not parents:
            continue
        parent = parents[0].sobject
        check = f"reference {route.sobject}.{field['relationshipName']}"
        if not field.get("createable"):
            yield failed(SALESFORCE, check, f"the run-as user cannot set {route.sobject}.{field['name']}",
                         f"give the run-as user Edit on {route.sobject}.{field['name']} (field-level security)")
            continue
        ways = usable.get(parent) or []
        if not ways:
            wanted = ", ".join(dict.fromkeys(r.external_id_field for r in parents))
            yield failed(SALESFORCE, check, f"{field['name']} → {parent}: none of the external ids the streams give "
                                            f"{parent} ({wanted}) works, so the reference cannot be resolved",
                         f"fix the external id of {parent} (see its line above)")
            continue
        by = " or ".join(f"{parent}.{name}" for name in ways)
        broken = [r.external_id_field for r in parents if r.external_id_field not in ways]
        not_by = f"; not by {', '.join(broken)} (see its line)" if broken else ""
        yield passed(SALESFORCE, check, f"{field['name']} → {parent} by {by}{not_by} (stream(s) "
                                        f"{', '.join(r.stream for r in parents)} written first)")


main = check_command(TargetSalesforce, SALESFORCE, checks)
