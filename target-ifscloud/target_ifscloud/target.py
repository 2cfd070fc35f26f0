"""target-ifscloud: records from Jira, Salesforce, JAGGAER (or any Singer tap) written into IFS Cloud projections.

Custom fields updated with the record's ETag, records created where missing, states moved through bound actions;
nothing written when IFS already holds the values; never someone else's change overwritten; every record audited.
"""

from __future__ import annotations

from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core import ifs_odata
from ml_connector_core.audited_target import AuditedTarget, PAYLOAD_RETENTION_SETTING
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.http import shared_budget
from ml_connector_core.ifs_metadata import EntitySetInfo
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING
from ml_connector_core.secrets import SecretKeyError, unseal
from ml_connector_core.tls import ca_bundle_property, new_session
from target_ifscloud.client import IfsClient
from target_ifscloud.sinks import IfsWriteSink
from target_ifscloud.writer import MODES, RecordWrite, StreamConfigError, StreamPlan, flag_of, plan_stream

STREAM_SETTING = th.ObjectType(
    th.Property("projection", th.StringType, required=True,
                description="Projection service, e.g. PurchaseOrderHandling or ActiveWorkOrdersHandling."),
    th.Property("entity_set", th.StringType, required=True, description="Entity set in it, e.g. PurchaseOrderSet."),
    th.Property("mode", th.StringType, default="update", allowed_values=list(MODES),
                description="update (default): the record must exist in IFS; upsert: create it when missing, else "
                            "update it; create: create it when missing, never change an existing one."),
    th.Property("fields", th.ArrayType(th.StringType),
                description="The IFS fields this stream owns (written and compared); default every record property "
                            "except the keys, the state_field and _sdc_* properties."),
    th.Property("state_field", th.StringType,
                description="Record property carrying the wanted IFS state (Objstate), reached through actions."),
    th.Property("actions", th.ObjectType(additional_properties=th.StringType),
                description="Wanted Objstate → bound action that reaches it, without the type prefix "
                            "(e.g. {\"Released\": \"Release\"} calls IfsApp.<Projection>.PurchaseOrder_Release)."),
    th.Property("flag_field", th.StringType,
                description="Record property whose value, when not empty, flags the record for a person to look at: "
                            "the record is still written, its audit entry (succeeded) holds \"flagged: <value>\" in "
                            "the error column, a warning is logged and the run's summary counts it. Not written to "
                            "IFS unless also listed in fields."),
)


class TargetIfsCloud(AuditedTarget, Target):
    """Writes records into IFS Cloud entity sets: ETag-guarded field updates, creations, state actions."""

    name = "target-ifscloud"
    default_sink_class = IfsWriteSink

    config_jsonschema = th.PropertiesList(
        th.Property("base_url", th.StringType, required=True, title="Base URL",
                    description="The IFS Cloud host, e.g. https://acme.ifs.cloud or a customer-managed "
                                "https://erp.example.com:8080."),
        th.Property("realm", th.StringType,
                    description="IFS IAM realm (namespace) of the tenant; not derived from the host name. Needed "
                                "unless token_url is set."),
        th.Property("token_url", th.StringType,
                    description="Token endpoint; default <base_url>/auth/realms/<realm>/protocol/openid-connect/token."),
        th.Property("client_id", th.StringType, required=True, description="OAuth2 client id of the IFS service user."),
        th.Property("client_secret", th.StringType, required=True, secret=True,
                    description="OAuth2 client secret; plain or sealed (sealed:v1:..., opened with MLC_SECRET_KEY)."),
        th.Property("scope", th.StringType, default="openid microprofile-jwt", description="OAuth2 scope requested."),
        th.Property("api_path", th.StringType, default=ifs_odata.DEFAULT_API_PATH,
                    description="Path of the projection services under the host (/int/... for integration endpoints)."),
        th.Property("requests_per_minute", th.IntegerType, default=900,
                    description="Client-side request budget per tenant (base URL), shared with every other IFS client "
                                "in the process (IFS allows about 1,000)."),
        th.Property("timeout", th.IntegerType, default=60, description="Timeout of one HTTP request, in seconds."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429, 5xx and connection errors (waits honour Retry-After)."),
        th.Property("max_conflict_retries", th.IntegerType, default=3,
                    description="Times a write is applied again after IFS answers 412 (the record changed since it "
                                "was read) and only fields this stream does not own changed."),
        th.Property("token_refresh_margin_seconds", th.IntegerType, default=30,
                    description="Fetch a new token this long before the current one expires."),
        ca_bundle_property(),
        th.Property("streams", th.ObjectType(additional_properties=STREAM_SETTING), required=True,
                    description="Incoming stream name → the IFS entity set it writes and how."),
        th.Property("flow", th.StringType, default="ifscloud-writeback",
                    description="Flow name in the audit trail; failed records of this flow are redone first next run."),
        EXPECT_CLOSING_STATE_SETTING,
        th.Property("audit_url", th.StringType,
                    description="Audit trail database URL (default .ml-connector/audit.sqlite, or MLC_AUDIT_URL)."),
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    outcomes_title = "IFS writes"
    undelivered_log_text = "%d record(s) could not be written to IFS; they are redone at the start of the next run"

    def __init__(self, *args, **kwargs) -> None:
        self.flagged_records = 0
        self._entities: dict[tuple[str, str], EntitySetInfo] = {}
        super().__init__(*args, **kwargs)

    # The connection

    @cached_property
    def host_url(self) -> str:
        return ifs_odata.host_url(self.config["base_url"])

    @cached_property
    def authenticator(self) -> ClientCredentialsAuth:
        try:
            secret = unseal(self.config["client_secret"], setting_name="client_secret")
        except SecretKeyError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        token_url = self.config.get("token_url")
        if not token_url:
            if not self.config.get("realm"):
                raise ConfigValidationError("target-ifscloud needs realm (or token_url)", errors=["set realm"])
            token_url = ifs_odata.token_url(self.host_url, self.config["realm"])
        return ClientCredentialsAuth(
            token_url, self.config["client_id"], secret, scope=self.config.get("scope"),
            refresh_margin_seconds=float(self.config["token_refresh_margin_seconds"]),
            timeout_seconds=float(self.config["timeout"]), session=new_session(self.config),
        )

    @cached_property
    def client(self) -> IfsClient:
        return IfsClient(
            ifs_odata.service_root(self.host_url, self.config["api_path"]),
            self.authenticator,
            shared_budget(self.host_url, int(self.config["requests_per_minute"])),
            timeout_seconds=float(self.config["timeout"]),
            max_tries=int(self.config["max_tries"]),
            session=new_session(self.config),
        )

    def entity(self, projection: str, entity_set: str) -> EntitySetInfo:
        return self.client.metadata(projection).entity_set(entity_set, f"{projection}.svc")

    def plan_for(self, stream: str, key_properties: list[str], schema_properties: list[str]) -> StreamPlan:
        try:
            return plan_stream(stream, (self.config.get("streams") or {}).get(stream), key_properties,
                               schema_properties, self.entity)
        except StreamConfigError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    # Writing

    def write(self, plan: StreamPlan, record: dict, *, record_entry: bool = True):
        entry = RecordWrite(self.client, plan, record, int(self.config["max_conflict_retries"])).run()
        if record_entry:
            self.audit_run.record([entry])
            self._count(entry)
        if entry.outcome == "failed":
            self.logger.error("%s %s: %s", plan.stream, dict(entry.key), entry.error)
        elif (flag := flag_of(entry)) is not None:
            self.logger.warning("%s %s written (%s), flagged by %s: %s", plan.stream, dict(entry.key),
                                entry.operation, plan.flag_field, flag)
        return entry

    def _count(self, entry) -> None:
        self.count([entry])
        if entry.outcome != "failed" and flag_of(entry) is not None:
            self.flagged_records += 1

    def audit_summary(self) -> dict:
        return {**super().audit_summary(), "flagged_records": self.flagged_records}

    def redo_failed_work(self) -> None:
        """Records of this flow that failed in earlier runs are written again first, from the record as received;
        only the latest failure of a key is redone, and none where a later run already wrote that key."""
        # Entries without the record are kept: they are named in a warning instead of passed over silently.
        for (stream, _), failures in self.open_failures(with_source_only=False).items():
            newest = failures[-1]
            if self.written_since(newest, by_same_flow_only=True):
                self.mark_replayed(failures)
                continue
            record = newest.source
            if record is None:
                self.logger.warning("failed entry %s of stream %s has no record to redo it from; replay it with "
                                    "mlc-audit", newest.id, stream)
                continue
            remembered = self.audit_trail.schema(newest.run_id, stream)
            try:
                plan = self.plan_for(stream, remembered.key_properties if remembered else list(newest.key),
                                     list((remembered.schema.get("properties") or {}) if remembered else record))
            except ConfigValidationError as exc:
                self.logger.error("cannot redo failed entry %s: %s", newest.id, exc)
                self.unrecorded_failures += 1
                continue
            entry = self.write(plan, record, record_entry=False)
            if entry.outcome == "failed":
                self.logger.error("redoing failed entry %s still fails: %s", newest.id, entry.error)
                self.unrecorded_failures += 1
                continue
            self.audit_run.record([entry])
            self._count(entry)
            self.mark_replayed(failures)


if __name__ == "__main__":
    TargetIfsCloud.cli()
