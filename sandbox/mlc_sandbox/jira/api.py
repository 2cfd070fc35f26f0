"""The REST API endpoints the stand-in serves, each a function (app, call) -> Response. Routes are written for
/rest/api/3; a request through /rest/api/2 or /rest/api/latest reaches the same handler with its `view` telling the
version (links, rich text as wiki markup)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qs

from ..http import Request, Response
from . import site as catalogue
from .jql import Compiler, JqlError
from .store import FieldErrors, NotFound, TransitionRefused
from .versions import View

if TYPE_CHECKING:
    from .app import JiraApp

MAX_BULK = 50
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."


@dataclass
class Call:
    request: Request
    api_path: str  # under /rest/api/3, whichever version the request came through
    match: re.Match
    view: View  # where links start (the site URL or the /ex/jira/<cloudid> gateway) and the API version

    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.request.query, keep_blank_values=True)

    def first(self, name: str, default: str | None = None) -> str | None:
        return self.query().get(name, [default])[0]

    def json(self):
        return json.loads(self.request.body or b"{}")


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable
    retired: bool = False
    anonymous: bool = False  # answered without credentials too (as Jira Cloud does)


def _json(status: int, document) -> Response:
    from .app import to_json

    return Response(status, to_json(document))


def _error(status: int, messages: list[str] | None = None, errors: dict | None = None) -> Response:
    from .app import jira_error

    return jira_error(status, messages, errors)


# the site

def myself(app: "JiraApp", call: Call) -> Response:
    user = app.site.render_user(app.site.api_user, call.view)
    return _json(200, {**user, "groups": {"size": 1, "items": []}, "applicationRoles": {"size": 1, "items": []},
                       "expand": "groups,applicationRoles"})


def user_search(app: "JiraApp", call: Call) -> Response:
    account_id = call.first("accountId")
    query = call.first("query")
    if account_id is None and query is None:
        return _error(400, ["The query parameter 'query' or 'accountId' is required."])
    users = [u for u in app.site.users if u.account_id == account_id] if account_id is not None \
        else app.site.find_users(query)
    start, size = int(call.first("startAt", "0")), int(call.first("maxResults", "50"))
    return _json(200, [app.site.render_user(u, call.view) for u in users[start:start + size]])


# what Jira Cloud reports about itself: every Cloud site runs the same continuously deployed build, so the version is
# the fixed 1001.0.0-SNAPSHOT; the build number, its date and the commit id (scmInfo) change with each deployment
BUILD_NUMBER = 100280
BUILD_EPOCH_MS = 1_764_000_000_000
SCM_INFO = "5b0f3c1d9e8a7f6b4c2d1e0f9a8b7c6d5e4f3a2b"


def server_info(app: "JiraApp", call: Call) -> Response:
    """Also answered without credentials, as Jira Cloud does. Real answers carry `defaultLocale` too, which the
    document's schema for this answer forbids (its own example has it); it is left out so the answer validates."""
    import time

    from .store import jira_time

    return _json(200, {"baseUrl": app.base_url(call.request), "version": "1001.0.0-SNAPSHOT",
                       "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud", "buildNumber": BUILD_NUMBER,
                       "buildDate": jira_time(BUILD_EPOCH_MS, app.store.zone),
                       "serverTime": jira_time(int(time.time() * 1000), app.store.zone),
                       "scmInfo": SCM_INFO, "serverTitle": "JIRA"})


def project(app: "JiraApp", call: Call) -> Response:
    wanted = call.match.group("project")
    found = app.site.project(wanted)
    if found is None:
        return _error(404, [f"No project could be found with key '{wanted}'."])
    return _json(200, app.site.render_project(found, call.view, full=True))


def _expand(call: Call) -> frozenset[str]:
    return frozenset(e.strip() for value in call.query().get("expand", []) for e in value.split(",") if e.strip())


def all_projects(app: "JiraApp", call: Call) -> Response:
    """The deprecated list of every project the user may browse, as a bare array (no paging); `recent=N` keeps the
    first N (the stand-in keeps no history of which projects were looked at)."""
    recent = call.first("recent")
    projects = list(catalogue.PROJECTS)[:min(int(recent), 20)] if recent is not None else list(catalogue.PROJECTS)
    return _json(200, [app.site.render_project(p, call.view, expand=_expand(call)) for p in projects])


def project_search(app: "JiraApp", call: Call) -> Response:
    query = call.query()
    keys = {k.upper() for value in query.get("keys", []) for k in value.split(",") if k}
    ids = {i for value in query.get("id", []) for i in value.split(",") if i}
    text = (call.first("query") or "").lower()
    projects = [p for p in catalogue.PROJECTS if (not keys or p.key in keys) and (not ids or p.id in ids)
                and (not text or text in p.key.lower() or text in p.name.lower())]
    start, size = int(call.first("startAt", "0")), int(call.first("maxResults", "50"))
    page = projects[start:start + size]
    document = {"self": f"{call.view.requested}/project/search?startAt={start}&maxResults={size}",
                "maxResults": size, "startAt": start, "total": len(projects),
                "isLast": start + size >= len(projects),
                "values": [app.site.render_project(p, call.view, expand=_expand(call)) for p in page]}
    if not document["isLast"]:
        document["nextPage"] = f"{call.view.requested}/project/search?startAt={start + size}&maxResults={size}"
    return _json(200, document)


def project_statuses(app: "JiraApp", call: Call) -> Response:
    """The statuses of each issue type's workflow in the project (the site has one workflow, shared by every type)."""
    wanted = call.match.group("project")
    found = app.site.project(wanted)
    if found is None:
        return _error(404, [f"No project could be found with key '{wanted}'."])
    statuses = [app.site.render_status(s, call.view) for s in catalogue.STATUSES]
    return _json(200, [{"self": f"{call.view.api}/issueType/{t.id}", "id": t.id, "name": t.name,
                        "subtask": False, "statuses": statuses} for t in found.issue_types])


def create_meta_issue_types(app: "JiraApp", call: Call) -> Response:
    found = app.site.project(call.match.group("project"))
    if found is None:
        return _error(400, [f"No project could be found with key '{call.match.group('project')}'."])
    types = [{**app.site.render_issue_type(t, call.view)} for t in found.issue_types]
    return _json(200, {"issueTypes": types, "maxResults": 50, "startAt": 0, "total": len(types)})


def create_meta_fields(app: "JiraApp", call: Call) -> Response:
    found = app.site.project(call.match.group("project"))
    if found is None:
        return _error(400, [f"No project could be found with key '{call.match.group('project')}'."])
    issue_type = app.site.issue_type(found, {"id": call.match.group("type")})
    if issue_type is None:
        return _error(400, ["The issue type ID provided is invalid."])
    start, size = int(call.first("startAt", "0")), int(call.first("maxResults", "50"))
    fields = app.site.create_meta_fields(found, issue_type, call.view)
    return _json(200, {"fields": fields[start:start + size], "maxResults": size, "startAt": start,
                       "total": len(fields)})


def fields(app: "JiraApp", call: Call) -> Response:
    return _json(200, app.site.render_fields())


def priorities(app: "JiraApp", call: Call) -> Response:
    rendered = []
    for priority in catalogue.PRIORITIES:
        rendered.append({**app.site.render_priority(priority, call.view), "description": priority[1],
                         "statusColor": "#999999", "isDefault": priority == catalogue.DEFAULT_PRIORITY})
    return _json(200, rendered)


# issues

def _created(issue, view: View) -> dict:
    return {"id": str(issue.id), "key": issue.key, "self": f"{view.requested}/issue/{issue.id}"}


def create_issue(app: "JiraApp", call: Call) -> Response:
    try:
        issue = app.store.create(call.json(), call.view.adf)
    except FieldErrors as refused:
        return _error(400, refused.messages, refused.errors)
    return _json(201, _created(issue, call.view))


def create_issues(app: "JiraApp", call: Call) -> Response:
    updates = call.json().get("issueUpdates") or []
    if len(updates) > MAX_BULK:  # in the shape the spec documents for this 400
        return _json(400, {"issues": [], "errors": [{"status": 400, "elementErrors": {
            "errorMessages": [f"Bulk create is limited to {MAX_BULK} issues."], "errors": {}}}]})
    created, errors = [], []
    for number, update in enumerate(updates):
        try:
            created.append(_created(app.store.create(update, call.view.adf), call.view))
        except FieldErrors as refused:
            errors.append({"status": 400, "elementErrors": {"errorMessages": refused.messages,
                                                            "errors": refused.errors},
                           "failedElementNumber": number})
    return _json(400 if updates and not created else 201, {"issues": created, "errors": errors})


def _requested_fields(app: "JiraApp", values: list[str], default: str) -> list[str] | None:
    """The field ids asked for, from `fields` (comma-separated and/or repeated); None: every field."""
    names = [n.strip() for value in values for n in value.split(",") if n.strip()] or [default]
    every = app.store.field_ids()
    chosen: list[str] = []
    if any(n in ("*all", "*navigable") for n in names) or all(n.startswith("-") for n in names):
        chosen = list(every)
    for name in names:
        if name in every and name not in chosen:
            chosen.append(name)
        elif name in ("id", "key") and name not in chosen:
            chosen.append(name)
    excluded = {n[1:] for n in names if n.startswith("-")}
    return [f for f in chosen if f not in excluded]


def get_issue(app: "JiraApp", call: Call) -> Response:
    try:
        issue = app.store.get(call.match.group("issue"))
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    fields_asked = call.query().get("fields")
    wanted = None if not fields_asked else _requested_fields(app, fields_asked, "*all")
    return _json(200, app.store.render(issue, call.view, wanted))


def edit_issue(app: "JiraApp", call: Call) -> Response:
    try:
        app.store.edit(call.match.group("issue"), call.json(), call.view.adf)
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    except FieldErrors as refused:
        return _error(400, refused.messages, refused.errors)
    return Response(204, b"")


def get_transitions(app: "JiraApp", call: Call) -> Response:
    try:
        issue = app.store.get(call.match.group("issue"))
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    return _json(200, {"expand": "transitions", "transitions": [
        app.site.render_transition(t, call.view) for t in app.site.transitions_from(issue.status)]})


def do_transition(app: "JiraApp", call: Call) -> Response:
    body = call.json()
    transition = body.get("transition") or {}
    if transition.get("id") is None:
        return _error(400, ["Missing 'transition' identifier"])
    try:
        app.store.transition(call.match.group("issue"), str(transition["id"]), body.get("fields"),
                             body.get("update"), call.view.adf)
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    except TransitionRefused as refused:
        return _error(400, [str(refused)])
    except FieldErrors as refused:
        return _error(400, refused.messages, refused.errors)
    return Response(204, b"")


def add_comment(app: "JiraApp", call: Call) -> Response:
    try:
        issue, comment = app.store.comment(call.match.group("issue"), call.json().get("body"), call.view.adf)
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    except FieldErrors as refused:
        return _error(400, refused.messages, refused.errors)
    return _json(201, app.store.render_comment(issue, comment, call.view))


def get_comments(app: "JiraApp", call: Call) -> Response:
    try:
        issue = app.store.get(call.match.group("issue"))
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    comments = [app.store.render_comment(issue, c, call.view) for c in issue.comments]
    start, size = int(call.first("startAt", "0")), int(call.first("maxResults", "5000"))
    return _json(200, {"comments": comments[start:start + size], "startAt": start, "maxResults": size,
                       "total": len(comments)})


def get_comment(app: "JiraApp", call: Call) -> Response:
    """One comment, where its `self` link points."""
    try:
        issue = app.store.get(call.match.group("issue"))
    except NotFound:
        return _error(404, [ISSUE_NOT_FOUND])
    wanted = call.match.group("comment")
    comment = next((c for c in issue.comments if c.id == wanted), None)
    if comment is None:
        return _error(404, [f"Can not find a comment for the id: {wanted}."])
    return _json(200, app.store.render_comment(issue, comment, call.view))


# search

def search(app: "JiraApp", call: Call) -> Response:
    if call.request.method == "POST":
        body = call.json()
        jql, token = body.get("jql"), body.get("nextPageToken")
        max_results = body.get("maxResults")
        field_values = body.get("fields") or []
    else:
        jql, token = call.first("jql"), call.first("nextPageToken")
        max_results = call.first("maxResults")
        field_values = call.query().get("fields", [])
    wanted = _requested_fields(app, field_values, "id")
    only_ids = all(f in ("id", "key") for f in wanted)
    cap = 5000 if only_ids else 100
    size = min(int(max_results) if max_results is not None else 50, cap)
    if size < 0:
        return _error(400, ["The 'maxResults' parameter must be positive."])
    query = _bounded_query(app, jql)
    if isinstance(query, Response):
        return query
    fingerprint = hashlib.sha256((jql or "").encode()).hexdigest()[:16]
    offset = 0
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
            offset = int(state["o"])
            if state["q"] != fingerprint or offset < 0:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _error(400, ["The provided next page token is invalid or expired."])
    matching = sorted((i for i in app.store.all() if query.predicate(i)), key=query.sort_key)
    page = matching[offset:offset + size]
    issues = [_search_issue(app, issue, wanted, call.view) for issue in page]
    document: dict = {"issues": issues, "isLast": size == 0 or offset + size >= len(matching)}
    if not document["isLast"]:
        document["nextPageToken"] = base64.urlsafe_b64encode(
            json.dumps({"q": fingerprint, "o": offset + size}).encode()).decode().rstrip("=")
    return _json(200, document)


def _bounded_query(app: "JiraApp", jql: str | None):
    """The compiled query, or the 400 Jira answers for JQL it cannot run here (syntax, unknown names, unbounded)."""
    compiler = Compiler(app.site, app.store.zone, lambda key: _key_exists(app, key))
    try:
        query = compiler.compile(jql or "")
    except JqlError as refused:
        return _error(400, [str(refused)])
    if query.predicate is None:
        return _error(400, [UNBOUNDED])
    return query


def approximate_count(app: "JiraApp", call: Call) -> Response:
    """POST search/approximate-count {"jql"} -> {"count"}; bounded JQL only, as search/jql. Jira documents the count
    as an estimate that may miss recent updates; the stand-in's is exact."""
    query = _bounded_query(app, call.json().get("jql"))
    if isinstance(query, Response):
        return query
    return _json(200, {"count": sum(1 for issue in app.store.all() if query.predicate(issue))})


def _key_exists(app: "JiraApp", key: str) -> bool:
    try:
        app.store.get(key)
        return True
    except NotFound:
        return False


def _search_issue(app: "JiraApp", issue, wanted: list[str], view: View) -> dict:
    field_ids = [f for f in wanted if f not in ("id", "key")]
    if not field_ids:
        return {"id": str(issue.id), **({"key": issue.key} if "key" in wanted else {})}
    return app.store.render(issue, view, field_ids)


def retired(app: "JiraApp", call: Call) -> Response:  # pragma: no cover - answered before dispatch
    return _error(410, [])


_ISSUE = r"(?P<issue>[A-Za-z0-9_-]+)"
_PROJECT = r"(?P<project>[A-Za-z0-9_]+)"
ROUTES = [
    Route("GET", re.compile(r"/rest/api/3/myself"), myself),
    Route("GET", re.compile(r"/rest/api/3/serverInfo"), server_info, anonymous=True),
    Route("GET", re.compile(r"/rest/api/3/user/search"), user_search),
    Route("GET", re.compile(r"/rest/api/3/project"), all_projects),
    Route("GET", re.compile(r"/rest/api/3/project/search"), project_search),
    Route("GET", re.compile(rf"/rest/api/3/project/{_PROJECT}"), project),
    Route("GET", re.compile(rf"/rest/api/3/project/{_PROJECT}/statuses"), project_statuses),
    Route("GET", re.compile(rf"/rest/api/3/issue/createmeta/{_PROJECT}/issuetypes"), create_meta_issue_types),
    Route("GET", re.compile(rf"/rest/api/3/issue/createmeta/{_PROJECT}/issuetypes/(?P<type>[^/]+)"),
          create_meta_fields),
    Route("GET", re.compile(r"/rest/api/3/field"), fields),
    Route("GET", re.compile(r"/rest/api/3/priority"), priorities),
    Route("POST", re.compile(r"/rest/api/3/issue"), create_issue),
    Route("POST", re.compile(r"/rest/api/3/issue/bulk"), create_issues),
    Route("GET", re.compile(rf"/rest/api/3/issue/{_ISSUE}"), get_issue),
    Route("PUT", re.compile(rf"/rest/api/3/issue/{_ISSUE}"), edit_issue),
    Route("GET", re.compile(rf"/rest/api/3/issue/{_ISSUE}/transitions"), get_transitions),
    Route("POST", re.compile(rf"/rest/api/3/issue/{_ISSUE}/transitions"), do_transition),
    Route("GET", re.compile(rf"/rest/api/3/issue/{_ISSUE}/comment"), get_comments),
    Route("POST", re.compile(rf"/rest/api/3/issue/{_ISSUE}/comment"), add_comment),
    Route("GET", re.compile(rf"/rest/api/3/issue/{_ISSUE}/comment/(?P<comment>[^/]+)"), get_comment),
    Route("GET", re.compile(r"/rest/api/3/search/jql"), search),
    Route("POST", re.compile(r"/rest/api/3/search/jql"), search),
    Route("POST", re.compile(r"/rest/api/3/search/approximate-count"), approximate_count),
    Route("GET", re.compile(r"/rest/api/3/search"), retired, retired=True),
    Route("POST", re.compile(r"/rest/api/3/search"), retired, retired=True),
]


@dataclass
class Found:
    handler: Callable
    match: re.Match
    retired: bool
    anonymous: bool


def find(method: str, api_path: str) -> Found | None:
    for route in ROUTES:
        if route.method == method:
            match = route.pattern.fullmatch(api_path)
            if match and not (route.handler is get_issue and match.group("issue") in ("bulk", "createmeta")):
                return Found(route.handler, match, route.retired, route.anonymous)
    return None


def methods_of(api_path: str) -> list[str]:
    return sorted({r.method for r in ROUTES if r.pattern.fullmatch(api_path)})


def known_path(api_path: str) -> bool:
    return bool(methods_of(api_path))
