"""tap-ifscloud-check: whether this tenant fits the tap's configuration, before anything is synced. Read-only.

A token; then every stream the configuration offers (the built-in streams and custom_streams), judged by the tap's own
discovery: its projection and entity set readable (the first row, keys and change column only), its change column
there, its lines expanded or read from their own set; then each configured company visible in some stream. A stream
the user named that cannot be read fails; a built-in offered by default warns (the tap would leave it out).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from ml_connector_core import ifs_odata as odata
from ml_connector_core.check import CheckResult, check_command, failed, passed, warned
from ml_connector_core.ifs_check import SYSTEM, env_var, setting_namer, token_result
from ml_connector_core.ifs_metadata import MetadataError
from tap_ifscloud.client import ExpandRefused, IfsEntityStream
from tap_ifscloud.discovery import StreamAssessment, assess
from tap_ifscloud.streams import SelectRules
from tap_ifscloud.tap import TapIfsCloud

setting = setting_namer(TapIfsCloud.name)


def checks(config: dict) -> Iterator[CheckResult]:
    tap = TapIfsCloud(config=config, setup_mapper=False)
    tap.metrics_logger.setLevel(logging.WARNING)  # a line per request is not a check's business
    token = token_result(tap.authenticator, setting)
    yield token
    if token.status != "pass":
        return  # every further request would be refused the same way
    readable: list[IfsEntityStream] = []
    local_offsets: set[str] = set()  # offsets of timestamps IFS sent although asked for UTC
    offered = _selected(tap.offered_streams())
    for stream in offered:
        check = f"stream {stream.name}"
        try:
            assessment = assess(stream, tap.service_metadata)
        except MetadataError as exc:  # IFS kept failing (429, 5xx, cut-off): not an answer about the stream
            yield failed(SYSTEM, check, str(exc), "IFS kept failing: run the check again later")
            continue
        if not assessment.readable:
            yield _unreadable(assessment)
            continue
        entity_stream = IfsEntityStream(tap, assessment.definition, assessment.entity, assessment.lines)
        try:
            yield _first_row(entity_stream, local_offsets)
        except (FatalAPIError, RetriableAPIError) as exc:
            yield failed(SYSTEM, check, str(exc), _fix_for_a_refused_read(assessment))
            continue
        readable.append(entity_stream)
        if assessment.note:
            yield warned(SYSTEM, f"{check} lines", assessment.note,
                         f"set {setting(assessment.offered.setting + '.expand')}")
        elif assessment.lines is not None:
            yield _lines(entity_stream)
    if offered and not readable:
        yield failed(SYSTEM, "streams", f"none of the {len(offered)} streams offered can be read",
                     f"check {setting('base_url')} and {setting('api_path')} "
                     "(/int/ifsapplications/projection/v1 for integration endpoints)")
    if local_offsets:
        yield passed(SYSTEM, "timestamps", f"IFS answers in local time ({', '.join(sorted(local_offsets))}) although "
                                           "asked for UTC: handled (the tap writes its filters in that time and "
                                           "emits UTC)")
    for company in config.get("companies") or []:
        yield _company(readable, company)


def _selected(offered: list) -> list:
    """Under Meltano, only the streams the plugin's `select` rules pick (tap-ifscloud-jira is judged on purchase
    orders and work orders, not on vouchers); run on its own, every offered stream."""
    rules = SelectRules.from_environment(os.environ)
    return [o for o in offered if rules.selects(o.name)]


def _unreadable(assessment: StreamAssessment) -> CheckResult:
    problem, offered = assessment.problem, assessment.offered
    fix = f"{problem.fix} (in {env_var(TapIfsCloud.name, offered.setting)})"
    if assessment.is_error:
        return failed(SYSTEM, f"stream {assessment.name}", f"{problem.what} (named in {offered.named_in})", fix)
    return warned(SYSTEM, f"stream {assessment.name}", f"{problem.what}: the tap leaves it out",
                  f"{fix}; or list the streams wanted in {setting('built_in_streams')}")


def _fix_for_a_refused_read(assessment: StreamAssessment) -> str:
    projection = assessment.offered.definition.projection
    return (f"grant the IFS service user read access to {projection}.svc/{assessment.entity.name}, or set "
            f"{setting(assessment.offered.setting + '.entity_set')}")


def _first_row(stream: IfsEntityStream, local_offsets: set[str]) -> CheckResult:
    """The newest row the sync would read (keys and change column only); never $count, which some projections
    answer wrongly or not at all."""
    change_column = stream.replication_key
    options = {"$select": ",".join(dict.fromkeys([*stream.entity.keys, *([change_column] if change_column else [])])),
               "$filter": stream._company_filter(stream.entity), "$top": 1}
    if change_column:
        options["$orderby"] = f"{change_column} desc"
    rows = stream._get_rows(odata.with_query(stream.url_base + stream.path, options), None)
    check = f"stream {stream.name}"
    if not change_column:
        found = "first row read" if rows else "no rows visible"
        return passed(SYSTEM, check, f"{stream.label} readable ({found}; no change column: full-table reads)")
    if not rows:
        return passed(SYSTEM, check, f"{stream.label} readable, change column {change_column} present, no rows visible")
    newest = rows[0].get(change_column)
    shown = odata.normalize_utc(newest) if newest and stream._bookmark_is_timestamp else newest
    if newest and stream._bookmark_is_timestamp and not newest.endswith("Z") and not newest.endswith("+00:00"):
        local_offsets.add(newest[-6:])
    return passed(SYSTEM, check, f"{stream.label} readable, change column {change_column} present, newest change "
                                 f"{shown}")


def _lines(stream: IfsEntityStream) -> CheckResult:
    expand = stream.definition.expand
    check = f"stream {stream.name} lines"
    keys = ",".join(stream.entity.keys)
    try:
        stream._get(odata.with_query(stream.url_base + stream.path, {"$select": keys, "$expand": expand, "$top": 1}),
                    None)
        return passed(SYSTEM, check, f"$expand={expand} accepted")
    except ExpandRefused as refusal:
        lines_path = f"/{stream.definition.projection}.svc/{stream.expanded.name}"
        try:
            stream._get(odata.with_query(stream.url_base + lines_path, {"$select": keys, "$top": 1}), None)
        except (FatalAPIError, RetriableAPIError) as exc:
            return failed(SYSTEM, check, f"IFS refused $expand={expand} ({refusal}) and the lines' own set cannot be "
                                         f"read either: {exc}",
                          f"grant the IFS service user read access to {lines_path.lstrip('/')}")
        return passed(SYSTEM, check, f"lines read from {stream.expanded.name} (expand refused: {refusal})")


def _company(streams: list[IfsEntityStream], company: str) -> CheckResult:
    with_company = [s for s in streams if "Company" in s.entity.properties]
    for stream in with_company:
        condition = f"Company eq {odata.literal(company, stream.entity.edm_type('Company'))}"
        url = odata.with_query(stream.url_base + stream.path,
                               {"$select": ",".join(stream.entity.keys), "$filter": condition, "$top": 1})
        if stream._get_rows(url, None):
            return passed(SYSTEM, f"company {company}", f"visible (rows in {stream.label})")
    where = ", ".join(s.name for s in with_company) or "no stream read has a Company field"
    return warned(SYSTEM, f"company {company}", f"no row of company {company} in any stream ({where})",
                  f"the service user may not be allowed company {company}: allow it in IFS, or remove it from "
                  f"{setting('companies')}")


main = check_command(TapIfsCloud, SYSTEM, checks)
