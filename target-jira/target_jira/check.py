"""target-jira-check: does this Jira site take what target-jira is configured to write? Read-only.

Checked with the client and the lookups a run uses (connector-core's Jira client, :class:`IssueWriter`): the site and
the credentials, every custom field by name, every project the routing settings can choose with the issue type it
would get, that the fields the writer sets are on that create screen (and that the screen requires nothing it does not
set), the priorities, the assignees, and that each status of ``status_transitions`` is in the workflow of each issue
type. Whether a transition leads into that status from where an issue stands shows only for an issue (Jira lists
transitions per issue; the workflow itself needs the admin permission to read): it is checked at the first move.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ml_connector_core.api_checks import JIRA, jira_connection
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref, warned
from ml_connector_core.jira import JiraClient, JiraError
from target_jira.issues import RecordError
from target_jira.target import TargetJira
from target_jira.writer import IssueWriter

PLUGIN = TargetJira.name
#: System fields the writer sets on every create (assignee too when the assignees setting maps any).
WRITTEN_SYSTEM_FIELDS = ("summary", "description", "priority", "labels")


@dataclass(frozen=True)
class Route:
    """A project and issue type the settings can send records to, and the settings that chose them."""

    project: str
    issue_type: str
    project_setting: str  # e.g. "projects[0]" or "default_project"
    type_setting: str  # e.g. "issue_types.jira_purchase_orders" or "default_issue_type"


def configured_routes(config: Mapping[str, Any]) -> list[Route]:
    """Every (project, issue type) the routing settings can choose, as :meth:`IssueWriter.plan` chooses them: the
    issue type of a stream from issue_types (else default_issue_type), its project from the first rule of projects
    that can match it (rules naming a company or site may not match, so later rules and default_project count too).
    Records that name project_key or issue_type themselves (through the stream maps) are not seen here."""
    issue_types = config.get("issue_types") or {}
    rules = config.get("projects") or []
    routes: dict[tuple[str, str], Route] = {}
    for stream in [*issue_types, None]:  # None: a stream issue_types does not name
        if stream is None:
            type_name, type_setting = str(config.get("default_issue_type") or "Task"), "default_issue_type"
        else:
            type_name, type_setting = str(issue_types[stream]), f"issue_types.{stream}"
        caught = False
        for index, rule in enumerate(rules):
            rule_stream = rule.get("stream") or None
            if rule_stream is not None and (rule_stream != stream if stream is not None else rule_stream in issue_types):
                continue
            routes.setdefault((str(rule["project"]), type_name.casefold()),
                              Route(str(rule["project"]), type_name, f"projects[{index}]", type_setting))
            if not rule.get("company") and not rule.get("site"):
                caught = True  # matches every record of the stream: later rules never see them
                break
        if not caught and config.get("default_project"):
            project = str(config["default_project"])
            routes.setdefault((project, type_name.casefold()), Route(project, type_name, "default_project", type_setting))
    return list(routes.values())


def checks(config: dict) -> Iterator[CheckResult]:
    client, results = jira_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    writer = IssueWriter(client, config)
    field_ids = yield from custom_field_checks(client, writer)
    routes = configured_routes(config)
    if not routes:
        yield warned(JIRA, "projects", "no rule of projects and no default_project chooses a project: only records "
                                       "that carry project_key can be written",
                     setting_ref(PLUGIN, "projects") + " or " + setting_ref(PLUGIN, "default_project"))
    existing = yield from project_checks(client, routes)
    routed = [r for r in routes if r.project in existing]
    type_ids = yield from issue_type_checks(writer, routed)
    written = [*WRITTEN_SYSTEM_FIELDS, *(["assignee"] if config.get("assignees") else []), *field_ids.values()]
    names = {field_id: writer.custom_fields[logical] for logical, field_id in field_ids.items()}
    for route in routed:
        if route in type_ids:
            yield create_screen_check(client, route, type_ids[route], written, names)
    yield from priority_checks(client, config)
    yield from assignee_checks(writer, config)
    yield from status_checks(client, config, [r for r in routed if r in type_ids])


def custom_field_checks(client: JiraClient, writer: IssueWriter):
    """One line per custom field the writer sets, resolved by name as the writer resolves them; returns logical name
    → field id of those found."""
    site_fields = client.fields()
    found: dict[str, str] = {}
    for logical, name in writer.custom_fields.items():
        try:
            field_id = client.field_ids([name], site_fields)[name]
        except JiraError as exc:
            yield failed(JIRA, f"custom field '{name}'", str(exc),
                         setting_ref(PLUGIN, f"custom_fields.{logical}") + f": the name of an existing field (or "
                         f"create the custom field '{name}'; an empty name leaves {logical} out)")
            continue
        found[logical] = field_id
        yield passed(JIRA, f"custom field '{name}'", f"{logical} is written to {field_id}")
    return found


def project_checks(client: JiraClient, routes: Iterable[Route]):
    """Each project the routes name exists and the account may browse it; returns the keys that do."""
    existing: set[str] = set()
    for project in dict.fromkeys(r.project for r in routes):
        setting = next(r.project_setting for r in routes if r.project == project)
        try:
            answer = client.get(f"project/{project}")
        except JiraError as exc:
            yield failed(JIRA, f"project {project}", str(exc),
                         setting_ref(PLUGIN, setting) + ": a project key the account can browse "
                         "(or give it the Browse projects permission there)")
            continue
        existing.add(project)
        yield passed(JIRA, f"project {project}", f"{answer.get('name')} ({answer.get('key')}), chosen by {setting}")
    return existing


def issue_type_checks(writer: IssueWriter, routes: Iterable[Route]):
    """Each route's issue type exists in its project (the writer's own lookup); returns route → issue type id."""
    ids: dict[Route, str] = {}
    for route in routes:
        where = f"{route.type_setting} '{route.issue_type}'"
        try:
            ids[route] = writer.issue_type_id(route.project, route.issue_type, where)
        except (RecordError, JiraError) as exc:
            yield failed(JIRA, f"issue type {route.project}/{route.issue_type}", str(exc),
                         setting_ref(PLUGIN, route.type_setting) + f": an issue type of project {route.project}")
            continue
        yield passed(JIRA, f"issue type {route.project}/{route.issue_type}", f"id {ids[route]}")
    return ids


def create_meta_fields(client: JiraClient, project: str, issue_type_id: str) -> list[dict]:
    fields: list[dict] = []
    while True:
        page = client.get(f"issue/createmeta/{project}/issuetypes/{issue_type_id}", startAt=len(fields), maxResults=100)
        fields += page.get("fields") or []
        if not page.get("fields") or len(fields) >= int(page.get("total") or 0):
            return fields


def create_screen_check(client: JiraClient, route: Route, issue_type_id: str, written: list[str],
                        names: Mapping[str, str]) -> CheckResult:
    """Every field the writer sets on create is on the create screen of the route, and the screen requires no field
    the writer leaves out (Jira refuses such a create)."""
    check = f"create screen {route.project}/{route.issue_type}"
    try:
        fields = create_meta_fields(client, route.project, issue_type_id)
    except JiraError as exc:
        return failed(JIRA, check, str(exc), f"give the account the Create issues permission in {route.project}")
    on_screen = {str(f.get("fieldId") or f.get("key")): f for f in fields}
    missing = [names.get(f, f) for f in written if f not in on_screen]
    required = [str(f.get("name") or key) for key, f in on_screen.items()
                if f.get("required") and not f.get("hasDefaultValue") and key not in written
                and key not in ("project", "issuetype")]
    problems = []
    if missing:
        problems.append(f"not on the screen: {', '.join(missing)}")
    if required:
        problems.append(f"required but not written by target-jira: {', '.join(required)}")
    if problems:
        return failed(JIRA, check, "; ".join(problems),
                      f"add {', '.join(missing) or 'nothing'} to the create screen of {route.project}/{route.issue_type}"
                      + (f" and give {', '.join(required)} a default (Jira admin)" if required else " (Jira admin)"))
    return passed(JIRA, check, f"the {len(written)} fields written are on it; it requires nothing else "
                               "(the edit screen shows only for an issue: checked at the first update)")


def priority_checks(client: JiraClient, config: Mapping[str, Any]) -> Iterator[CheckResult]:
    wanted: dict[str, str] = {}
    for tier, name in (config.get("priorities") or {}).items():
        wanted.setdefault(str(name), f"priorities.{tier}")
    wanted.setdefault(str(config.get("default_priority") or "Medium"), "default_priority")
    site = {str(p.get("name")).casefold(): p for p in client.get("priority") or []}
    known = ", ".join(str(p.get("name")) for p in site.values())
    for name, setting in wanted.items():
        if name.casefold() in site:
            yield passed(JIRA, f"priority '{name}'", f"id {site[name.casefold()].get('id')}")
        else:
            yield failed(JIRA, f"priority '{name}'", f"the site has no priority '{name}' (it has: {known})",
                         setting_ref(PLUGIN, setting) + ": one of the site's priorities")


def assignee_checks(writer: IssueWriter, config: Mapping[str, Any]) -> Iterator[CheckResult]:
    """Each assignee is one active user, found as the writer finds them (assignable per project shows at create)."""
    for tier, who in (config.get("assignees") or {}).items():
        try:
            account = writer.account_id(str(who), f"assignees.{tier}")
        except (RecordError, JiraError) as exc:
            yield failed(JIRA, f"assignee '{who}'", str(exc),
                         setting_ref(PLUGIN, f"assignees.{tier}") + ": the email of an active Jira user")
            continue
        yield passed(JIRA, f"assignee '{who}'", f"account {account}")


def status_checks(client: JiraClient, config: Mapping[str, Any], routes: list[Route]) -> Iterator[CheckResult]:
    """Each status status_transitions moves issues to is a status of the workflow of each routed issue type."""
    transitions = {str(ifs): str(jira) for ifs, jira in (config.get("status_transitions") or {}).items()}
    if not transitions:
        return
    by_project: dict[str, dict[str, list[str]]] = {}
    for route in routes:
        if route.project not in by_project:
            try:
                answer = client.get(f"project/{route.project}/statuses")
            except JiraError as exc:
                yield failed(JIRA, f"workflow {route.project}", str(exc),
                             f"give the account the Browse projects permission in {route.project}")
                by_project[route.project] = {}
                continue
            by_project[route.project] = {str(t.get("name")).casefold(): [str(s.get("name")) for s in t.get("statuses") or []]
                                         for t in answer or []}
        statuses = by_project[route.project].get(route.issue_type.casefold())
        if statuses is None:
            continue
        check = f"statuses {route.project}/{route.issue_type}"
        have = {s.casefold() for s in statuses}
        missing = {jira: [ifs for ifs, j in transitions.items() if j == jira]
                   for jira in dict.fromkeys(transitions.values()) if jira.casefold() not in have}
        if missing:
            named = "; ".join(f"'{jira}' (for IFS {', '.join(ifs)})" for jira, ifs in missing.items())
            yield failed(JIRA, check, f"the workflow has no status {named}; it has: {', '.join(statuses)}",
                         setting_ref(PLUGIN, "status_transitions") + ": map those IFS statuses to statuses of this "
                                                                     "workflow")
        else:
            yield passed(JIRA, check, f"{', '.join(dict.fromkeys(transitions.values()))} in the workflow; whether a "
                                      "transition leads there from an issue's status is checked at the first move")


main = check_command(TargetJira, JIRA, checks)
