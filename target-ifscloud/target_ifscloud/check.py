"""target-ifscloud-check: whether IFS takes what the configured routes write, before anything is written. Read-only.

A token; then for each route of the streams setting: its projection's $metadata and entity set readable (the first
row, keys only), and the route checked against $metadata exactly as the target checks it when the stream's SCHEMA
arrives (plan_stream): the owned fields present and not marked read-only, the keys, the bound actions it calls.
"""

from __future__ import annotations

from collections.abc import Iterator

from ml_connector_core import ifs_odata as odata
from ml_connector_core.check import CheckResult, check_command, failed, passed
from ml_connector_core.ifs_check import SYSTEM, env_var, setting_namer, token_result
from ml_connector_core.ifs_metadata import MetadataError
from target_ifscloud.client import IfsUnavailable
from target_ifscloud.target import TargetIfsCloud
from target_ifscloud.writer import StreamConfigError, plan_stream

setting = setting_namer(TargetIfsCloud.name)
STREAMS_ENV = env_var(TargetIfsCloud.name, "streams")


def checks(config: dict) -> Iterator[CheckResult]:
    target = TargetIfsCloud(config=config, setup_mapper=False)
    token = token_result(target.authenticator, setting)
    yield token
    if token.status != "pass":
        return
    for stream, route in (config.get("streams") or {}).items():
        yield _route(target, stream, route)


def _route(target: TargetIfsCloud, stream: str, route: dict) -> CheckResult:
    check, where = f"route {stream}", f"streams.{stream}"
    projection, entity_set = route.get("projection"), route.get("entity_set")
    try:
        entity = target.entity(projection, entity_set)
    except MetadataError as exc:
        if exc.status == 403:
            fix = (f"grant the IFS service user a permission set that includes {projection}, or set "
                   f"{where}.projection (in {STREAMS_ENV})")
        elif exc.status is not None:
            fix = f"set {where}.projection (in {STREAMS_ENV}) to the projection's name on this tenant"
        else:
            fix = f"set {where}.entity_set (in {STREAMS_ENV})"
        return failed(SYSTEM, check, str(exc), fix)
    except IfsUnavailable as exc:
        return failed(SYSTEM, check, str(exc), "IFS kept failing: run the check again later")
    label = f"{projection}.svc/{entity.name}"
    answer = target.client.send("GET", odata.with_query(target.client.url(projection, f"/{entity.name}"),
                                                        {"$select": ",".join(entity.keys), "$top": 1}))
    if not answer.ok:
        return failed(SYSTEM, check, f"{label}: HTTP {answer.status} {answer.message}",
                      f"grant the IFS service user read access to {label}")
    try:
        # As at SCHEMA time, with the entity's own keys; the stream's properties are not known before it arrives.
        plan = plan_stream(stream, route, entity.keys, [], target.entity)
    except StreamConfigError as exc:
        return failed(SYSTEM, check, str(exc), exc.fix or f"change {where} (in {STREAMS_ENV}) as said")
    owned = f"writes {', '.join(plan.fields)}" if plan.fields else (
        "writes every property of the incoming stream but its keys (checked when its SCHEMA arrives)")
    actions = f"; actions {', '.join(sorted(set(plan.actions.values())))} present" if plan.actions else ""
    return passed(SYSTEM, check, f"{label} readable ({plan.mode}); {owned}{actions}")


main = check_command(TargetIfsCloud, SYSTEM, checks)
