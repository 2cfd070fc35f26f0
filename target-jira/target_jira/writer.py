"""Writing a batch of IFS records to Jira: find the issues that exist (one search per 100 keys), create the missing ones
(bulk, 50 at a time), PUT only the fields that differ on the others, move statuses through the workflow, and say for
every record what happened, as audit entries."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_connector_core.audit import AuditEntry
from ml_connector_core.jira import JiraAuthError, JiraClient, JiraError, element_error_text
from target_jira import issues
from target_jira.issues import RecordError

logger = logging.getLogger(__name__)

DEFAULT_CUSTOM_FIELDS = {
    "ifs_key": "IFS Key",
    "gl_account": "GL Account",
    "cost_center": "Cost Center",
    "ifs_url": "IFS Link",
    "amount": "Order Amount",
}
SEARCH_CHUNK = 100  # labels per JQL search
BULK_CHUNK = 50  # Jira's limit for POST /issue/bulk
SYSTEM_FIELDS = ["summary", "description", "priority", "assignee", "labels", "status", "project", "issuetype"]

INSERT, UPDATE, UNCHANGED, SKIPPED = "insert", "update", "unchanged", "skipped_duplicate"


@dataclass
class PlannedIssue:
    """One record, and the issue it should be."""

    stream: str
    record: dict
    ifs_key: str
    label: str
    project: str
    issue_type_id: str
    owned: dict[str, Any]  # the fields we keep in step: field id → value as sent
    target_status: str | None
    # Filled in while writing.
    issue_key: str | None = None
    requests: list[dict] = field(default_factory=list)

    def create_body(self) -> dict:
        fields = {"project": {"key": self.project}, "issuetype": {"id": self.issue_type_id}}
        fields.update({k: v for k, v in self.owned.items() if v is not None})
        return {"fields": fields}

    def entry(self, operation: str, outcome: str = "succeeded", error: str | None = None) -> AuditEntry:
        payload: Any = None
        if len(self.requests) == 1:
            payload = self.requests[0]
        elif self.requests:
            payload = list(self.requests)
        return AuditEntry(stream=self.stream, key={"ifs_key": self.ifs_key}, operation=operation, outcome=outcome,
                          payload=payload, source=self.record, destination=self.issue_key, error=error)


class IssueWriter:
    """Keeps one Jira issue per IFS key in step with the records it is given; lookups are cached for the run."""

    def __init__(self, client: JiraClient, config: Mapping[str, Any]) -> None:
        self.client = client
        self.config = config
        self.label_prefix = str(config.get("label_prefix") or "ifs-")
        custom = {**DEFAULT_CUSTOM_FIELDS, **(config.get("custom_fields") or {})}
        self.custom_fields = {logical: name for logical, name in custom.items() if name}
        self.bulk_create = bool(config.get("bulk_create", True))
        self.description_layout = str(config.get("description_layout") or "table")
        self._field_ids: dict[str, str] | None = None
        self._issue_types: dict[str, dict[str, str]] = {}
        self._accounts: dict[str, str] = {}

    # Lookups (once per run)

    @property
    def field_ids(self) -> dict[str, str]:
        """Logical name (record property) → custom field id on this site."""
        if self._field_ids is None:
            by_name = self.client.field_ids(self.custom_fields.values())
            self._field_ids = {logical: by_name[name] for logical, name in self.custom_fields.items()}
        return self._field_ids

    def issue_type_id(self, project: str, name: str, where: str) -> str:
        if project not in self._issue_types:
            try:
                answer = self.client.get(f"issue/createmeta/{project}/issuetypes", maxResults=200)
            except JiraAuthError:
                raise
            except JiraError as exc:
                raise RecordError(f"{where}: project '{project}': {exc}") from None
            self._issue_types[project] = {str(t["name"]): str(t["id"]) for t in answer.get("issueTypes") or []}
        types = self._issue_types[project]
        for known, type_id in types.items():
            if known.casefold() == name.casefold():
                return type_id
        raise RecordError(f"{where}: project '{project}' has no issue type '{name}' "
                          f"(it has: {', '.join(sorted(types)) or 'none'}); change issue_types or the mapping")

    def account_id(self, who: str, where: str) -> str:
        if who not in self._accounts:
            user = self.client.find_user(who)
            if user is None:
                raise RecordError(f"{where}: assignee '{who}' is not an active Jira user (check the assignees setting)")
            self._accounts[who] = user["accountId"]
        return self._accounts[who]

    # Planning

    def project_for(self, stream: str, record: Mapping[str, Any], where: str) -> str:
        if record.get("project_key"):
            return str(record["project_key"])
        values = {"company": record.get("company"), "site": record.get("site"), "stream": stream}
        for rule in self.config.get("projects") or []:
            conditions = {k: rule[k] for k in ("company", "site", "stream") if rule.get(k) not in (None, "")}
            if all(values[k] is not None and str(values[k]) == str(v) for k, v in conditions.items()):
                return str(rule["project"])
        if self.config.get("default_project"):
            return str(self.config["default_project"])
        raise RecordError(f"{where}: no Jira project for company '{values['company']}', site '{values['site']}' "
                          f"(add a rule to projects, set default_project, or map project_key)")

    def plan(self, stream: str, record: dict) -> PlannedIssue:
        ifs_key = record.get("ifs_key")
        where = f"stream '{stream}' record {ifs_key!r}"
        if not isinstance(ifs_key, str) or not ifs_key.strip():
            raise RecordError(f"stream '{stream}': a record has no ifs_key (the IFS key, e.g. 'PurchaseOrder:P1000123'); "
                              "check the stream map in mappers/")
        if not str(record.get("summary") or "").strip():
            raise RecordError(f"{where}: summary is empty; check the stream map in mappers/")
        project = self.project_for(stream, record, where)
        type_name = record.get("issue_type") or (self.config.get("issue_types") or {}).get(stream) \
            or self.config.get("default_issue_type") or "Task"
        tier = record.get("tier_or_category")
        tier_key = None if tier is None else str(tier)
        priority = (self.config.get("priorities") or {}).get(tier_key) if tier_key is not None else None
        priority = priority or self.config.get("default_priority") or "Medium"
        label = issues.issue_label(ifs_key, self.label_prefix)
        owned: dict[str, Any] = {
            "summary": issues.one_line_summary(record["summary"]),
            "description": issues.description_document(record, self.description_layout),
            "priority": {"name": priority},
        }
        assignee = (self.config.get("assignees") or {}).get(tier_key) if tier_key is not None else None
        if assignee:
            owned["assignee"] = {"accountId": self.account_id(str(assignee), where)}
        owned["labels"] = [label]
        for logical, field_id in self.field_ids.items():
            owned[field_id] = issues.jira_value(record.get(logical))
        status = record.get("status")
        target_status = (self.config.get("status_transitions") or {}).get(str(status)) if status is not None else None
        return PlannedIssue(stream, record, ifs_key, label, project,
                            self.issue_type_id(project, str(type_name), where), owned, target_status)

    # Writing

    def write(self, stream: str, records: Sequence[dict]) -> list[AuditEntry]:
        """Write a batch; returns one audit entry per record. Jira refusing one record fails that record only; a
        record that cannot be mapped, refused credentials or an unreachable search stop the batch (nothing audited,
        the state stays)."""
        latest: dict[str, PlannedIssue] = {}
        entries: list[AuditEntry] = []
        superseded: list[PlannedIssue] = []
        for record in records:
            planned = self.plan(stream, record)
            if planned.ifs_key in latest:
                superseded.append(latest[planned.ifs_key])
            latest[planned.ifs_key] = planned
        existing = self.find_existing(list(latest.values()))
        to_create = []
        for planned in latest.values():
            issue = existing.get(planned.ifs_key)
            if issue is None:
                to_create.append(planned)
            else:
                entries.append(self.update(planned, issue))
        entries.extend(self.create(to_create))
        for planned in superseded:
            # An older version of a record later in the same batch: the later one is what Jira gets.
            planned.issue_key = latest[planned.ifs_key].issue_key
            entries.append(planned.entry(SKIPPED))
        return entries

    def find_existing(self, planned: list[PlannedIssue]) -> dict[str, Mapping[str, Any]]:
        ifs_key_field = self.field_ids.get("ifs_key")
        wanted_fields = SYSTEM_FIELDS + sorted(set(self.field_ids.values()))
        found: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(planned), SEARCH_CHUNK):
            chunk = planned[start : start + SEARCH_CHUNK]
            labels = {p.ifs_key: p.label for p in chunk}
            page_issues = [i for page in self.client.search_pages(issues.labels_jql(sorted(set(labels.values()))),
                                                                  wanted_fields) for i in page]
            chosen, extra = issues.pick_issue_per_key(page_issues, labels, ifs_key_field)
            for ifs_key, others in extra.items():
                logger.warning("IFS key %s is on several issues: keeping %s, not %s (clones carry the label; remove it "
                               "from them)", ifs_key, chosen[ifs_key].get("key"), ", ".join(others))
            found.update(chosen)
        return found

    def update(self, planned: PlannedIssue, issue: Mapping[str, Any]) -> AuditEntry:
        planned.issue_key = str(issue["key"])
        current = issue.get("fields") or {}
        changes = issues.changed_fields(current, planned.owned, planned.label)
        try:
            if changes:
                body = {"fields": changes}
                planned.requests.append(body)
                self.client.request("PUT", f"issue/{planned.issue_key}", json=body)
            moved = self.move_to_status(planned, (current.get("status") or {}).get("name"))
        except JiraAuthError:
            raise
        except JiraError as exc:
            return planned.entry(UPDATE, "failed", str(exc))
        return planned.entry(UPDATE if changes or moved else UNCHANGED)

    def create(self, planned: list[PlannedIssue]) -> list[AuditEntry]:
        entries: list[AuditEntry] = []
        if not planned:
            return entries
        if not self.bulk_create or len(planned) == 1:
            for one in planned:
                entries.append(self._create_one(one))
            return entries
        for start in range(0, len(planned), BULK_CHUNK):
            entries.extend(self._create_bulk(planned[start : start + BULK_CHUNK]))
        return entries

    def _create_one(self, planned: PlannedIssue) -> AuditEntry:
        body = planned.create_body()
        planned.requests.append(body)
        try:
            # Not retried after a 5xx or a lost connection: Jira may have created it; the next run finds it by label.
            created = self.client.request("POST", "issue", json=body, retry_unsafe=False).json()
        except JiraAuthError:
            raise
        except JiraError as exc:
            return planned.entry(INSERT, "failed", str(exc))
        planned.issue_key = str(created["key"])
        return self._after_create(planned)

    def _create_bulk(self, chunk: list[PlannedIssue]) -> list[AuditEntry]:
        bodies = [p.create_body() for p in chunk]
        for planned, body in zip(chunk, bodies):
            planned.requests.append(body)
        try:
            response = self.client.request("POST", "issue/bulk", json={"issueUpdates": bodies}, retry_unsafe=False,
                                           accept=(400,))
        except JiraAuthError:
            raise
        except JiraError as exc:
            return [p.entry(INSERT, "failed", str(exc)) for p in chunk]
        answer = response.json() if response.content else {}
        if response.status_code == 400 and not isinstance(answer.get("errors"), list):
            message = f"POST issue/bulk: HTTP 400: {element_error_text(answer)}"
            return [p.entry(INSERT, "failed", message) for p in chunk]
        failed = {int(e.get("failedElementNumber", -1)): e for e in answer.get("errors") or []}
        succeeded = [p for index, p in enumerate(chunk) if index not in failed]
        created = answer.get("issues") or []
        if len(created) != len(succeeded):
            raise JiraError(f"POST issue/bulk: Jira created {len(created)} issues for {len(succeeded)} accepted "
                            "elements; rerun to let the search by label sort it out")
        for planned, issue in zip(succeeded, created):
            planned.issue_key = str(issue["key"])
        entries = []
        for index, planned in enumerate(chunk):
            if index in failed:
                error = failed[index]
                entries.append(planned.entry(INSERT, "failed", f"Jira refused the issue (HTTP {error.get('status', 400)}): "
                                                               f"{element_error_text(error.get('elementErrors'))}"))
            else:
                entries.append(self._after_create(planned))
        return entries

    def _after_create(self, planned: PlannedIssue) -> AuditEntry:
        if planned.target_status:
            try:
                current = self.client.get(f"issue/{planned.issue_key}", fields="status")
                self.move_to_status(planned, ((current.get("fields") or {}).get("status") or {}).get("name"))
            except JiraAuthError:
                raise
            except JiraError as exc:
                return planned.entry(INSERT, "failed", f"created, but the status could not be set: {exc}")
        return planned.entry(INSERT)

    def move_to_status(self, planned: PlannedIssue, current_status: str | None) -> bool:
        target = planned.target_status
        if not target or str(current_status or "").casefold() == target.casefold():
            return False
        transitions = self.client.get(f"issue/{planned.issue_key}/transitions").get("transitions") or []
        matching = [t for t in transitions if str((t.get("to") or {}).get("name", "")).casefold() == target.casefold()]
        if not matching:
            offered = ", ".join(f"{t.get('name')} → {(t.get('to') or {}).get('name')}" for t in transitions) or "none"
            raise JiraError(f"issue {planned.issue_key} is in status '{current_status}' and has no transition to "
                            f"'{target}' (offered: {offered}); check status_transitions")
        body = {"transition": {"id": str(matching[0]["id"])}}
        planned.requests.append(body)
        self.client.request("POST", f"issue/{planned.issue_key}/transitions", json=body)
        return True


def failed_count(entries: Iterable[AuditEntry]) -> int:
    return sum(1 for e in entries if e.outcome == "failed")
