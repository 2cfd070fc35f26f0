"""The site's issues: Jira's checks on create and edit (with its messages), the workflow's transitions, comments, and
every issue rendered as the REST API shapes it. Rich text (description, environment, comment bodies) is kept as
Atlassian Document Format documents: v3 sends and reads them as they are, v2 as wiki markup (see wiki.py)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from . import site as catalogue
from . import wiki
from .site import Site, Status, Project, IssueType
from .spec import AdfValidator
from .versions import View

ADF_MESSAGE = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
STRING_MESSAGE = "Operation value must be a string"
EMPTY_COMMENT = "Comment body can not be empty!"
MAX_TEXT = 255


def jira_time(epoch_ms: int, zone: ZoneInfo) -> str:
    """2026-11-25T20:15:03.123+0100, as Jira writes times (the user's zone, milliseconds, offset without colon)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, zone)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}" + moment.strftime("%z")


@dataclass
class Comment:
    id: str
    body: dict
    author: str  # accountId
    created_ms: int
    updated_ms: int


@dataclass
class Issue:
    id: int
    key: str
    number: int
    project: Project
    issue_type: IssueType
    summary: str
    reporter: str
    created_ms: int
    updated_ms: int
    status: Status = catalogue.TO_DO
    priority: tuple[str, str] = catalogue.DEFAULT_PRIORITY
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    description: dict | None = None
    environment: dict | None = None
    duedate: str | None = None
    resolution_ms: int | None = None
    custom: dict = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)


class FieldErrors(Exception):
    """A create or edit refused: Jira's 400 with one message per field."""

    def __init__(self, errors: dict[str, str], messages: list[str] | None = None):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()) or "; ".join(messages or []))
        self.errors, self.messages = errors, messages or []

    def body(self) -> dict:
        return {"errorMessages": self.messages, "errors": self.errors}


class NotFound(Exception):
    pass


class TransitionRefused(Exception):
    pass


class IssueStore:
    def __init__(self, site: Site, adf: AdfValidator):
        self.site = site
        self.adf = adf
        self.zone = ZoneInfo(site.settings.user_time_zone)
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._issues: dict[int, Issue] = {}
            self._by_key: dict[str, Issue] = {}
            self._next_id = 10000
            self._next_number = {p.key: 1 for p in catalogue.PROJECTS}
            self._next_comment = 10000
            self._last_ms = 0

    def _now_ms(self) -> int:
        """Strictly increasing across the site, so every change moves `updated` even within one millisecond."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    # look-ups

    def get(self, id_or_key: str) -> Issue:
        with self._lock:
            text = str(id_or_key)
            issue = self._issues.get(int(text)) if text.isdigit() else self._by_key.get(text.upper())
            if issue is None:
                raise NotFound(id_or_key)
            return issue

    def all(self) -> list[Issue]:
        with self._lock:
            return sorted(self._issues.values(), key=lambda i: i.id)

    # create / edit

    def create(self, body: dict, adf: bool = True) -> Issue:
        """`adf`: rich text comes as ADF documents (v3), else as wiki markup strings (v2)."""
        fields = dict(body.get("fields") or {})
        update = dict(body.get("update") or {})
        if "comment" in update:  # comments come on edit and transition; the create screen has no comment field
            raise FieldErrors({"comment": _not_settable("comment")})
        fields = self._merge_update(fields, update, None)
        errors: dict[str, str] = {}
        project = self._project(fields.get("project"))
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        issue_type = self.site.issue_type(project, fields.get("issuetype")) if project else None
        if issue_type is None:
            errors["issuetype"] = "Specify a valid issue type"
        if "summary" not in fields:
            errors["summary"] = "You must specify a summary of the issue."
        changes = self._check(fields, errors, adf)
        if errors:
            raise FieldErrors(errors)
        with self._lock:
            now = self._now_ms()
            number = self._next_number[project.key]
            self._next_number[project.key] += 1
            issue = Issue(id=self._next_id, key=f"{project.key}-{number}", number=number, project=project,
                          issue_type=issue_type, summary=changes.pop("summary"),
                          reporter=self.site.api_user.account_id, created_ms=now, updated_ms=now)
            self._next_id += 1
            self._apply(issue, changes)
            self._issues[issue.id] = issue
            self._by_key[issue.key] = issue
        return issue

    def edit(self, id_or_key: str, body: dict, adf: bool = True) -> Issue:
        issue = self.get(id_or_key)
        fields = dict(body.get("fields") or {})
        update = dict(body.get("update") or {})
        comments = self._comment_operations(update.pop("comment", None), adf)
        fields = self._merge_update(fields, update, issue)
        errors: dict[str, str] = {}
        if "project" in fields:
            errors["project"] = _not_settable("project")
        if "issuetype" in fields:
            issue_type = self.site.issue_type(issue.project, fields["issuetype"])
            if issue_type is None:
                errors["issuetype"] = "Specify a valid issue type"
        changes = self._check(fields, errors, adf)
        if errors:
            raise FieldErrors(errors)
        with self._lock:
            if "issuetype" in fields:
                issue.issue_type = self.site.issue_type(issue.project, fields["issuetype"])
            if "summary" in changes:
                issue.summary = changes.pop("summary")
            self._apply(issue, changes)
            issue.updated_ms = self._now_ms()
            self._add_comments(issue, comments)
        return issue

    def _comment_operations(self, operations, adf: bool) -> list[dict]:
        """The comment bodies of `update.comment` ([{"add": {"body": ...}}], as on edit and transition),
        checked like a comment of their own; stored form (ADF)."""
        if not operations:
            return []
        bodies = []
        for operation in operations if isinstance(operations, list) else [operations]:
            added = operation.get("add") if isinstance(operation, dict) else None
            if not isinstance(added, dict) or set(operation) != {"add"}:
                raise FieldErrors({"comment": "Operation 'add' with a comment body is the only one supported "
                                              "for field 'comment'."})
            bodies.append(self._comment_body(added.get("body"), adf))
        return bodies

    def _comment_body(self, body, adf: bool) -> dict:
        if adf:
            if not self.adf.is_document(body):
                raise FieldErrors({"comment": ADF_MESSAGE})
            return body
        if not isinstance(body, str):
            raise FieldErrors({"comment": STRING_MESSAGE})
        document = wiki.to_adf(body)
        if document is None:
            raise FieldErrors({"comment": EMPTY_COMMENT})
        return document

    def _add_comments(self, issue: Issue, bodies: list[dict]) -> None:
        for body in bodies:
            now = self._now_ms()
            issue.comments.append(Comment(str(self._next_comment), body, self.site.api_user.account_id, now, now))
            self._next_comment += 1
            issue.updated_ms = now

    def _merge_update(self, fields: dict, update, issue: Issue | None) -> dict:
        """`update` operations as plain field values: `set` for any field, add/remove for labels."""
        if not update:
            return fields
        errors = {}
        for name, operations in update.items():
            if name in fields:
                errors[name] = f"Field '{name}' cannot be set in both fields and update."
                continue
            value = list(issue.labels) if (issue is not None and name == "labels") else None
            for operation in operations:
                for verb, argument in operation.items():
                    if verb == "set":
                        value = argument
                    elif name == "labels" and verb in ("add", "remove"):
                        value = list(value or [])
                        if verb == "add" and argument not in value:
                            value.append(argument)
                        elif verb == "remove" and argument in value:
                            value.remove(argument)
                    else:
                        errors[name] = f"Operation '{verb}' is not supported for field '{name}'."
            fields[name] = value
        if errors:
            raise FieldErrors(errors)
        return fields

    def _project(self, reference) -> Project | None:
        if not isinstance(reference, dict):
            return None
        wanted = reference.get("id", reference.get("key"))
        return self.site.project(wanted) if wanted is not None else None

    def _check(self, fields: dict, errors: dict[str, str], adf: bool) -> dict:
        """The values to store, keyed by field id; problems go into `errors` with Jira's messages."""
        changes: dict = {}
        for name, value in fields.items():
            if name in ("project", "issuetype"):
                continue
            if name == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors["summary"] = "You must specify a summary of the issue."
                elif len(value) > MAX_TEXT:
                    errors["summary"] = "Summary must be less than 255 characters."
                elif "\n" in value or "\r" in value:
                    errors["summary"] = "The summary is invalid because it contains newline characters."
                else:
                    changes["summary"] = value
            elif name in ("description", "environment"):
                if value is None:
                    changes[name] = None
                elif adf:
                    if self.adf.is_document(value):
                        changes[name] = value
                    else:
                        errors[name] = ADF_MESSAGE
                elif isinstance(value, str):  # v2: wiki markup; an empty string clears the field
                    changes[name] = wiki.to_adf(value)
                else:
                    errors[name] = STRING_MESSAGE
            elif name == "priority":
                priority = self.site.priority(value)
                if priority is None:
                    errors["priority"] = "The priority selected is invalid."
                else:
                    changes["priority"] = priority
            elif name in ("assignee", "reporter"):
                if value is None or (isinstance(value, dict) and value.get("accountId") is None and
                                     name == "assignee" and "accountId" in value):
                    if name == "reporter":
                        errors[name] = "Reporter is required."
                    else:
                        changes[name] = None
                elif isinstance(value, dict) and self.site.user(value.get("accountId")) is not None:
                    changes[name] = value["accountId"]
                else:
                    errors[name] = "Specified user does not exist or you do not have required permissions"
            elif name == "labels":
                problem = _label_problem(value)
                if problem:
                    errors["labels"] = problem
                else:
                    changes["labels"] = list(dict.fromkeys(value or []))
            elif name == "duedate":
                if value is None:
                    changes["duedate"] = None
                else:
                    try:
                        changes["duedate"] = date.fromisoformat(value).isoformat() if isinstance(value, str) \
                            and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else _raise(ValueError())
                    except ValueError:
                        errors["duedate"] = f"Error parsing date string: {value}"
            elif name in self.site.custom_by_id:
                custom = self.site.custom_by_id[name]
                problem = _custom_problem(custom, value)
                if problem:
                    errors[name] = problem
                else:
                    changes[name] = value
            else:
                errors[name] = _not_settable(name)
        return changes

    @staticmethod
    def _apply(issue: Issue, changes: dict) -> None:
        for name, value in changes.items():
            if name.startswith("customfield_"):
                issue.custom[name] = value
            else:
                setattr(issue, name, value)

    # workflow and comments

    def transition(self, id_or_key: str, transition_id: str, fields: dict | None = None, update: dict | None = None,
                   adf: bool = True) -> Issue:
        """`fields` and `update` (comments included) are applied as an edit on the way."""
        with self._lock:
            issue = self.get(id_or_key)
            chosen = next((t for t in self.site.transitions_from(issue.status) if t.id == str(transition_id)), None)
            if chosen is None:
                raise TransitionRefused(f"Transition id '{transition_id}' is not valid for this issue.")
            if fields or update:
                self.edit(id_or_key, {"fields": fields or {}, "update": update or {}}, adf)
            self._enter(issue, chosen.target)
        return issue

    def move_to(self, id_or_key: str, status_name: str) -> Issue:
        """Through the workflow's transitions, the shortest way, as a person clicking would."""
        with self._lock:
            issue = self.get(id_or_key)
            target = next((s for s in catalogue.STATUSES if s.name.lower() == str(status_name).lower()), None)
            if target is None:
                raise ValueError(f"no status '{status_name}' (statuses: "
                                 f"{', '.join(s.name for s in catalogue.STATUSES)})")
            path = _shortest_path(issue.status, target)
            for transition in path:
                self._enter(issue, transition.target)
            if not path:
                issue.updated_ms = self._now_ms()
        return issue

    def _enter(self, issue: Issue, status: Status) -> None:
        now = self._now_ms()
        issue.status = status
        issue.resolution_ms = now if status == catalogue.DONE else None
        issue.updated_ms = now

    def comment(self, id_or_key: str, body, adf: bool = True) -> tuple[Issue, Comment]:
        stored = self._comment_body(body, adf)
        with self._lock:
            issue = self.get(id_or_key)
            self._add_comments(issue, [stored])
        return issue, issue.comments[-1]

    # rendering

    def value(self, issue: Issue, field_id: str, view: View):
        """One field as the API renders it."""
        site = self.site
        if field_id.startswith("customfield_"):
            return issue.custom.get(field_id)
        if field_id == "summary":
            return issue.summary
        if field_id == "status":
            return site.render_status(issue.status, view)
        if field_id == "issuetype":
            return site.render_issue_type(issue.issue_type, view)
        if field_id == "project":
            return site.render_project(issue.project, view)
        if field_id == "priority":
            return site.render_priority(issue.priority, view)
        if field_id in ("assignee", "reporter"):
            account = getattr(issue, field_id)
            return site.render_user(site.user(account), view) if account else None
        if field_id in ("labels",):
            return list(issue.labels)
        if field_id in ("description", "environment"):
            document = getattr(issue, field_id)
            return document if view.adf else wiki.from_adf(document)
        if field_id == "duedate":
            return issue.duedate
        if field_id == "created":
            return jira_time(issue.created_ms, self.zone)
        if field_id == "updated":
            return jira_time(issue.updated_ms, self.zone)
        if field_id == "resolution":
            return ({"self": f"{view.api}/resolution/10000", **catalogue.RESOLUTION_DONE}
                    if issue.resolution_ms is not None else None)
        if field_id == "resolutiondate":
            return jira_time(issue.resolution_ms, self.zone) if issue.resolution_ms is not None else None
        if field_id == "comment":
            comments = [self.render_comment(issue, c, view) for c in issue.comments]
            return {"comments": comments, "self": f"{view.api}/issue/{issue.id}/comment",
                    "maxResults": len(comments), "total": len(comments), "startAt": 0}
        raise KeyError(field_id)

    def field_ids(self) -> list[str]:
        return [f[0] for f in catalogue.SYSTEM_FIELDS] + [f.id for f in self.site.custom_fields]

    def render(self, issue: Issue, view: View, fields: list[str] | None = None) -> dict:
        """`fields` None: every field."""
        with self._lock:
            wanted = self.field_ids() if fields is None else [f for f in fields if f in self.field_ids()]
            return {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                    "id": str(issue.id), "self": f"{view.requested}/issue/{issue.id}", "key": issue.key,
                    "fields": {f: self.value(issue, f, view) for f in wanted}}

    def render_comment(self, issue: Issue, comment: Comment, view: View) -> dict:
        author = self.site.render_user(self.site.user(comment.author), view)
        author.pop("locale", None)
        return {"self": f"{view.api}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
                "author": author, "updateAuthor": author,
                "body": comment.body if view.adf else wiki.from_adf(comment.body),
                "created": jira_time(comment.created_ms, self.zone),
                "updated": jira_time(comment.updated_ms, self.zone), "jsdPublic": True}


def _raise(exc: Exception):
    raise exc


def _not_settable(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def _label_problem(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "Labels must be a list of strings."
    for label in value:
        if not label or any(c.isspace() for c in label):
            return f"The label '{label}' contains spaces which is invalid."
        if len(label) > MAX_TEXT:
            return f"The label '{label}' exceeds the 255 character limit."
    return None


def _custom_problem(custom: catalogue.CustomField, value) -> str | None:
    if value is None:
        return None
    if custom.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{custom.name}: Operation value must be a number"
        return None
    if not isinstance(value, str):
        return f"{custom.name}: Operation value must be a string"
    if len(value) > MAX_TEXT:
        return f"{custom.name}: The entered text is too long. It exceeds the allowed limit of 255 characters."
    if custom.kind == "url":
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in value:
            return f"{custom.name}: Not a valid URL"
    return None


def _shortest_path(source: Status, target: Status) -> list[catalogue.Transition]:
    frontier = [(source, [])]
    seen = {source}
    while frontier:
        status, path = frontier.pop(0)
        if status == target:
            return path
        for transition in catalogue.TRANSITIONS:
            if transition.source == status and transition.target not in seen:
                seen.add(transition.target)
                frontier.append((transition.target, path + [transition]))
    return []
