"""The site's fixed configuration: people, projects with their issue types, fields, priorities and the one workflow;
each rendered as Jira's REST API shapes it (links follow the version a request came through)."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import JiraSettings
from .versions import View


@dataclass(frozen=True)
class User:
    account_id: str
    email: str
    display_name: str


API_USER_ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
PEOPLE = (
    User("5b10ac8d82e05b22cc7d4e01", "anna.berg@example.com", "Anna Berg"),
    User("5b10ac8d82e05b22cc7d4e02", "lars.holm@example.com", "Lars Holm"),
    User("5b10ac8d82e05b22cc7d4e03", "maria.lind@example.com", "Maria Lind"),
    User("5b10ac8d82e05b22cc7d4e04", "erik.dahl@example.com", "Erik Dahl"),
)


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str
    description: str


TASK = IssueType("10001", "Task", "A small, distinct piece of work.")
PURCHASE_ORDER = IssueType("10002", "Purchase Order", "A purchase order followed up from IFS Cloud.")
WORK_ORDER = IssueType("10003", "Work Order", "A maintenance work order followed up from IFS Cloud.")
ISSUE_TYPES = (TASK, PURCHASE_ORDER, WORK_ORDER)


@dataclass(frozen=True)
class Project:
    id: str
    key: str
    name: str
    issue_types: tuple[IssueType, ...]


PROJECTS = (
    Project("10000", "PUR", "Procurement", (TASK, PURCHASE_ORDER)),
    Project("10001", "MNT", "Maintenance", (TASK, WORK_ORDER)),
    Project("10002", "OPS", "Operations", (TASK,)),
)


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str
    category_name: str
    color: str


TO_DO = Status("10000", "To Do", 2, "new", "To Do", "blue-gray")
IN_PROGRESS = Status("3", "In Progress", 4, "indeterminate", "In Progress", "yellow")
DONE = Status("10001", "Done", 3, "done", "Done", "green")
STATUSES = (TO_DO, IN_PROGRESS, DONE)


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    source: Status
    target: Status


TRANSITIONS = (
    Transition("21", "Start progress", TO_DO, IN_PROGRESS),
    Transition("31", "Done", TO_DO, DONE),
    Transition("11", "Stop progress", IN_PROGRESS, TO_DO),
    Transition("31", "Done", IN_PROGRESS, DONE),
    Transition("41", "Reopen", DONE, TO_DO),
)

PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
DEFAULT_PRIORITY = ("3", "Medium")
RESOLUTION_DONE = {"id": "10000", "name": "Done", "description": "Work has been completed on this issue."}


@dataclass(frozen=True)
class CustomField:
    id: str  # customfield_<n>
    number: int
    name: str
    kind: str  # "string", "url" or "number"

    @property
    def custom_type(self) -> str:
        return "com.atlassian.jira.plugin.system.customfieldtypes:" + {
            "string": "textfield", "url": "url", "number": "float"}[self.kind]

    @property
    def schema(self) -> dict:
        return {"type": "number" if self.kind == "number" else "string", "custom": self.custom_type,
                "customId": self.number}


CUSTOM_FIELD_NAMES = (("IFS Key", "string"), ("GL Account", "string"), ("Cost Center", "string"),
                      ("IFS Link", "url"), ("Order Amount", "number"))

# system fields: id, name, JSON schema type, system name, items type, navigable and settable on create/edit
SYSTEM_FIELDS = (
    ("summary", "Summary", "string", None, True),
    ("description", "Description", "string", None, True),
    ("environment", "Environment", "string", None, True),
    ("issuetype", "Issue Type", "issuetype", None, True),
    ("project", "Project", "project", None, True),
    ("status", "Status", "status", None, False),
    ("priority", "Priority", "priority", None, True),
    ("assignee", "Assignee", "user", None, True),
    ("reporter", "Reporter", "user", None, True),
    ("labels", "Labels", "array", "string", True),
    ("duedate", "Due date", "date", None, True),
    ("created", "Created", "datetime", None, False),
    ("updated", "Updated", "datetime", None, False),
    ("resolution", "Resolution", "resolution", None, False),
    ("resolutiondate", "Resolved", "datetime", None, False),
    ("comment", "Comment", "comments-page", None, False),
)
SETTABLE_SYSTEM_FIELDS = frozenset(f[0] for f in SYSTEM_FIELDS if f[4])


class Site:
    """The catalogue of one stand-in run (custom field ids depend on --field-id-base)."""

    def __init__(self, settings: JiraSettings):
        self.settings = settings
        self.api_user = User(API_USER_ACCOUNT_ID, settings.email, "MLC Integration Bot")
        self.users = (self.api_user, *PEOPLE)
        self.custom_fields = tuple(CustomField(f"customfield_{settings.field_id_base + n}", settings.field_id_base + n,
                                               name, kind) for n, (name, kind) in enumerate(CUSTOM_FIELD_NAMES))
        self.custom_by_id = {f.id: f for f in self.custom_fields}

    # look-ups

    def user(self, account_id) -> User | None:
        return next((u for u in self.users if u.account_id == account_id), None)

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users if u.email.lower() == str(email).lower()), None)

    def find_users(self, query: str) -> list[User]:
        query = query.strip().lower()
        if not query:
            return list(self.users)
        return [u for u in self.users
                if u.email.lower().startswith(query) or u.display_name.lower().startswith(query)
                or any(word.startswith(query) for word in u.display_name.lower().split())]

    @staticmethod
    def project(id_or_key) -> Project | None:
        text = str(id_or_key)
        return next((p for p in PROJECTS if p.id == text or p.key.upper() == text.upper()), None)

    @staticmethod
    def issue_type(project: Project, reference: dict) -> IssueType | None:
        if not isinstance(reference, dict):
            return None
        wanted_id, wanted_name = reference.get("id"), reference.get("name")
        for issue_type in project.issue_types:
            if wanted_id is not None and str(wanted_id) == issue_type.id:
                return issue_type
            if wanted_id is None and isinstance(wanted_name, str) and wanted_name.lower() == issue_type.name.lower():
                return issue_type
        return None

    @staticmethod
    def priority(reference) -> tuple[str, str] | None:
        if not isinstance(reference, dict):
            return None
        wanted_id, wanted_name = reference.get("id"), reference.get("name")
        for priority in PRIORITIES:
            if wanted_id is not None and str(wanted_id) == priority[0]:
                return priority
            if wanted_id is None and isinstance(wanted_name, str) and wanted_name.lower() == priority[1].lower():
                return priority
        return None

    @staticmethod
    def transitions_from(status: Status) -> list[Transition]:
        return [t for t in TRANSITIONS if t.source == status]

    # rendering

    def render_user(self, user: User, view: View) -> dict:
        return {"self": f"{view.api}/user?accountId={user.account_id}", "accountId": user.account_id,
                "accountType": "atlassian", "emailAddress": user.email, "displayName": user.display_name,
                "active": True, "timeZone": self.settings.user_time_zone, "locale": "en_US",
                "avatarUrls": _avatars(f"{view.base}/avatar/{user.account_id}")}

    @staticmethod
    def render_issue_type(issue_type: IssueType, view: View) -> dict:
        return {"self": f"{view.api}/issuetype/{issue_type.id}", "id": issue_type.id,
                "description": issue_type.description, "iconUrl": f"{view.base}/images/issuetype/{issue_type.id}.svg",
                "name": issue_type.name, "subtask": False, "avatarId": 10318, "hierarchyLevel": 0}

    def render_project(self, project: Project, view: View, full: bool = False,
                       expand: frozenset[str] = frozenset()) -> dict:
        """The short form (as in lists and issues) with what `expand` asks for; `full` as GET project/{key}."""
        rendered = {"self": f"{view.api}/project/{project.id}", "id": project.id, "key": project.key,
                    "name": project.name, "projectTypeKey": "software", "simplified": False,
                    "avatarUrls": _avatars(f"{view.base}/avatar/project/{project.id}")}
        if full or "description" in expand:
            rendered["description"] = f"{project.name} follow-up"
        if full or "lead" in expand:
            rendered["lead"] = self.render_user(self.api_user, view)
        if full or "issueTypes" in expand:
            rendered["issueTypes"] = [self.render_issue_type(t, view) for t in project.issue_types]
        if "projectKeys" in expand:
            rendered["projectKeys"] = [project.key]
        if full:
            rendered.update({"assigneeType": "UNASSIGNED", "style": "classic", "isPrivate": False, "properties": {}})
        return rendered

    @staticmethod
    def render_status(status: Status, view: View) -> dict:
        return {"self": f"{view.api}/status/{status.id}", "description": "",
                "iconUrl": f"{view.base}/images/icons/status_generic.gif", "name": status.name, "id": status.id,
                "statusCategory": {"self": f"{view.api}/statuscategory/{status.category_id}",
                                   "id": status.category_id, "key": status.category_key,
                                   "colorName": status.color, "name": status.category_name}}

    @staticmethod
    def render_priority(priority: tuple[str, str], view: View) -> dict:
        return {"self": f"{view.api}/priority/{priority[0]}", "id": priority[0], "name": priority[1],
                "iconUrl": f"{view.base}/images/icons/priorities/{priority[1].lower()}.svg"}

    def render_transition(self, transition: Transition, view: View) -> dict:
        return {"id": transition.id, "name": transition.name, "to": self.render_status(transition.target, view),
                "hasScreen": False, "isGlobal": False, "isInitial": False, "isAvailable": True,
                "isConditional": False, "isLooped": False}

    def render_fields(self) -> list[dict]:
        fields = []
        for field_id, name, json_type, items, _settable in SYSTEM_FIELDS:
            schema = {"type": json_type, "system": field_id}
            if items:
                schema["items"] = items
            fields.append({"id": field_id, "key": field_id, "name": name, "custom": False, "orderable": True,
                           "navigable": True, "searchable": True, "clauseNames": [field_id], "schema": schema})
        for field in self.custom_fields:
            short = {"string": "Short text", "url": "URL", "number": "Number"}[field.kind]
            fields.append({"id": field.id, "key": field.id, "name": field.name,
                           "custom": True, "orderable": True, "navigable": True, "searchable": True,
                           "clauseNames": [f"cf[{field.number}]", field.name, f"{field.name}[{short}]"],
                           "schema": field.schema})
        return fields

    def create_meta_fields(self, project: Project, issue_type: IssueType, view: View) -> list[dict]:
        def meta(field_id, name, schema, required=False, has_default=False, allowed=None, default=None):
            item = {"fieldId": field_id, "key": field_id, "name": name, "required": required, "schema": schema,
                    "hasDefaultValue": has_default, "operations": ["set"] if field_id != "labels" else
                    ["add", "set", "remove"]}
            if allowed is not None:
                item["allowedValues"] = allowed
            if default is not None:
                item["defaultValue"] = default
            return item

        return [
            meta("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, True,
                 allowed=[self.render_issue_type(issue_type, view)]),
            meta("project", "Project", {"type": "project", "system": "project"}, True,
                 allowed=[self.render_project(project, view)]),
            meta("summary", "Summary", {"type": "string", "system": "summary"}, True),
            meta("reporter", "Reporter", {"type": "user", "system": "reporter"}, True, True),
            meta("description", "Description", {"type": "string", "system": "description"}),
            meta("environment", "Environment", {"type": "string", "system": "environment"}),
            meta("priority", "Priority", {"type": "priority", "system": "priority"}, False, True,
                 allowed=[self.render_priority(p, view) for p in PRIORITIES],
                 default=self.render_priority(DEFAULT_PRIORITY, view)),
            meta("assignee", "Assignee", {"type": "user", "system": "assignee"}),
            meta("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}),
            meta("duedate", "Due date", {"type": "date", "system": "duedate"}),
            *[meta(f.id, f.name, f.schema) for f in self.custom_fields],
        ]


def _avatars(prefix: str) -> dict:
    return {size: f"{prefix}?s={size[:2]}" for size in ("48x48", "24x24", "16x16", "32x32")}
