"""target-jira: IFS purchase orders and work orders as Jira Cloud issues, never two for one IFS key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audit import AuditEntry
from ml_connector_core.audited_target import AuditedTarget
from ml_connector_core.jira import JiraClient, JiraConfigError, client_from_config
from ml_connector_core.jira_settings import jira_connection_properties
from ml_connector_core.secrets import SecretKeyError
from target_jira.sinks import JiraIssueSink
from target_jira.writer import DEFAULT_CUSTOM_FIELDS, IssueWriter

TEXT_MAP = th.ObjectType(additional_properties=th.StringType)

JIRA_CONNECTION = jira_connection_properties("acts as")


class TargetJira(AuditedTarget, Target):
    """One Jira issue per IFS record, found again by the IFS key stored on it and updated only where it differs."""

    name = "target-jira"
    default_sink_class = JiraIssueSink

    config_jsonschema = th.PropertiesList(
        *JIRA_CONNECTION,
        th.Property("projects", th.ArrayType(th.ObjectType(
            th.Property("company", th.StringType, description="IFS company the rule applies to (any when empty)."),
            th.Property("site", th.StringType, description="IFS site the rule applies to (any when empty)."),
            th.Property("stream", th.StringType, description="Stream the rule applies to (any when empty)."),
            th.Property("project", th.StringType, required=True, description="Jira project key."),
        )), description="Rules choosing the Jira project of a record by company, site and stream; the first match wins. "
                        "A project_key in the record wins over them."),
        th.Property("default_project", th.StringType, description="Project key when no rule matches."),
        th.Property("issue_types", TEXT_MAP,
                    description="Stream → issue type name, e.g. {\"jira_purchase_orders\": \"Purchase Order\"}."),
        th.Property("default_issue_type", th.StringType, default="Task",
                    description="Issue type when neither the record nor issue_types names one."),
        th.Property("priorities", TEXT_MAP,
                    description="Supplier tier or work category (tier_or_category) → Jira priority name."),
        th.Property("default_priority", th.StringType, default="Medium", description="Priority for unmapped tiers."),
        th.Property("assignees", TEXT_MAP,
                    description="tier_or_category → assignee email or display name (looked up once per run)."),
        th.Property("custom_fields", th.ObjectType(additional_properties=th.StringType),
                    default=DEFAULT_CUSTOM_FIELDS,
                    description="Record property → Jira field name (or id); ids are resolved per site. Merged with the "
                                "defaults; an empty name drops a default."),
        th.Property("label_prefix", th.StringType, default="ifs-",
                    description="Prefix of the label carrying the IFS key (PurchaseOrder:P1 → ifs-PurchaseOrder-P1)."),
        th.Property("status_transitions", TEXT_MAP,
                    description="IFS status → Jira status name the issue is moved to, e.g. {\"Closed\": \"Done\"}."),
        th.Property("description_layout", th.StringType, default="table", allowed_values=["table", "bullets"],
                    description="The order's key data in the description as a two-column table or a bullet list."),
        th.Property("bulk_create", th.BooleanType, default=True,
                    description="Create new issues 50 at a time (POST /issue/bulk)."),
        th.Property("audit_url", th.StringType, description="Audit trail database URL (default: .ml-connector/audit.sqlite)."),
        th.Property("flow", th.StringType, default="ifs-to-jira", description="Flow name in the audit trail."),
    ).to_dict()

    def __init__(self, *args, **kwargs) -> None:
        self.outcomes: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    @cached_property
    def client(self) -> JiraClient:
        try:
            return client_from_config(self.config)
        except (JiraConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    @cached_property
    def writer(self) -> IssueWriter:
        return IssueWriter(self.client, self.config)

    def count(self, entries: Iterable[AuditEntry]) -> None:
        for entry in entries:
            self.outcomes["failed" if entry.outcome == "failed" else str(entry.operation)] += 1

    def audit_status(self) -> str:
        return "failed" if self.outcomes["failed"] else "succeeded"

    def audit_summary(self) -> dict:
        return dict(self.outcomes)

    def listen(self, file_input=None) -> None:
        super().listen(file_input)
        self.logger.info("Jira issues: %s", ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "none")
        if self.outcomes["failed"]:
            self.logger.error("%d record(s) were refused by Jira; they are redone at the start of the next run "
                              "(see mlc-audit failures)", self.outcomes["failed"])

    def redo_failed_work(self) -> None:
        """Records Jira refused in earlier runs of this flow are written first, unless a later run wrote them since."""
        trail = self.audit_trail
        latest_failed: dict[tuple[str, str], list] = {}
        for failed in trail.failures():
            if failed.flow != self.config["flow"] or failed.source is None:
                continue
            latest_failed.setdefault((failed.stream, failed.record_key), []).append(failed)
        by_stream: dict[str, list] = {}
        for (stream, _), failures in latest_failed.items():
            newest = failures[-1]
            written_since = any(e.id > newest.id for e in trail.entries(stream=stream, key=newest.key, outcome="succeeded"))
            if written_since:
                trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)
            else:
                by_stream.setdefault(stream, []).append(failures)
        for stream, groups in by_stream.items():
            entries = self.writer.write(stream, [failures[-1].source for failures in groups])
            self.audit_run.record(entries)
            self.count(entries)
            done = {e.key["ifs_key"] for e in entries if e.outcome == "succeeded"}
            for failures in groups:
                if failures[-1].key.get("ifs_key") in done:
                    trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)


if __name__ == "__main__":
    TargetJira.cli()
