"""tap-jiracloud-check: can tap-jiracloud read this Jira site as configured? Read-only.

The site and the credentials (as target-jira's check: connector-core), each custom field of ``custom_fields`` resolved
by name as discovery resolves it, and the search the stream sends (the ``jql`` setting with the tap's own
``updated >=`` condition and ORDER BY) run once with ``maxResults=1``, which is how Jira says whether the JQL parses.
"""

from __future__ import annotations

from collections.abc import Iterator

from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.api_checks import JIRA, jira_connection
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref
from ml_connector_core.jira import JiraError
from tap_jiracloud.streams import EPOCH, SYSTEM_FIELDS, UTC, issues_jql, jql_since, parse_utc
from tap_jiracloud.tap import TapJiraCloud, custom_field_types, refuse_order_by

PLUGIN = TapJiraCloud.name


def checks(config: dict) -> Iterator[CheckResult]:
    try:
        refuse_order_by(config.get("jql"))
    except ConfigValidationError as exc:
        yield failed(JIRA, "jql", str(exc), setting_ref(PLUGIN, "jql") + ": the condition alone, without ORDER BY")
        return
    client, results = jira_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    site_fields = client.fields()
    field_ids: list[str] = []
    for name, field in (config.get("custom_fields") or {}).items():
        if not field:
            continue
        try:
            resolved = custom_field_types(client, {name: field}, site_fields)
        except ConfigValidationError as exc:
            yield failed(JIRA, f"custom field '{field}'", str(exc),
                         setting_ref(PLUGIN, f"custom_fields.{name}") + ": a field of the site, by name or id")
            continue
        field_id, kind = resolved[name]
        field_ids.append(field_id)
        yield passed(JIRA, f"custom field '{field}'", f"{name} is read from {field_id} ({kind})")
    start = parse_utc(config["start_date"]) if config.get("start_date") else EPOCH
    jql = issues_jql(config.get("jql"), jql_since(start, UTC))
    try:
        first_page = next(client.search_pages(jql, SYSTEM_FIELDS + field_ids, page_size=1))
    except JiraError as exc:
        yield failed(JIRA, "search", f"POST search/jql with '{jql}': {exc}",
                     setting_ref(PLUGIN, "jql") + ": a JQL condition this site accepts")
        return
    found = f"first issue {first_page[0].get('key')}" if first_page else "no issue matches yet"
    yield passed(JIRA, "search", f"JQL accepted ({jql}); {found} (maxResults 1)")


main = check_command(TapJiraCloud, JIRA, checks)
