"""target-jira: IFS purchase orders and work orders as Jira Cloud issues, never two for one IFS key."""

from __future__ import annotations

from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th

from ml_connector_core.api_target import ApiTarget
from ml_connector_core.audited_target import PAYLOAD_RETENTION_SETTING
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.jira import JiraClient, JiraConfigError, client_from_config
from ml_connector_core.jira_settings import jira_connection_properties
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING
from ml_connector_core.secrets import SecretKeyError
from target_jira.sinks import JiraIssueSink
from target_jira.writer import DEFAULT_CUSTOM_FIELDS, IssueWriter

TEXT_MAP = th.ObjectType(additional_properties=th.StringType)

JIRA_CONNECTION = jira_connection_properties("acts as")


class TargetJira(ApiTarget, Target):
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
        EXPECT_CLOSING_STATE_SETTING,
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    client_config_errors = (JiraConfigError, SecretKeyError)
    outcomes_title = "Jira issues"
    undelivered_log_text = "%d record(s) were refused by Jira; they are redone at the start of the next run"
    # Jira's writer takes any stream, stops for nothing and refuses nothing for a missing parent; its redo is quiet.
    announce_redo = False

    def connect(self) -> JiraClient:
        return client_from_config(self.config)

    @cached_property
    def writer(self) -> IssueWriter:
        return IssueWriter(self.client, self.config)

    def redo_key_field(self, stream: str) -> str:
        return "ifs_key"


if __name__ == "__main__":
    TargetJira.cli()
