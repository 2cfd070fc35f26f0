"""target-databricks: Singer streams into Delta tables (local or object storage) or a Databricks SQL warehouse."""

from __future__ import annotations

import re
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audited_target import AuditedTarget, PAYLOAD_RETENTION_SETTING
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.tls import ca_bundle_property
from target_databricks.delta import DeltaWriter
from target_databricks.jobs import JOB_STREAM, JobRunFailed, idempotency_token, job_entry, load_parameters, run_job
from target_databricks.sinks import DatabricksSink


class TargetDatabricks(AuditedTarget, Target):
    """Loads Singer streams into Databricks: Delta tables MERGEd on each stream's keys, audited record by record."""

    name = "target-databricks"
    default_sink_class = DatabricksSink

    config_jsonschema = th.PropertiesList(
        th.Property("load_method", th.StringType, default="delta", allowed_values=["delta", "warehouse"],
                    description="delta: write Delta tables with delta-rs at delta_root; warehouse: MERGE through a Databricks SQL warehouse."),
        th.Property("delta_root", th.StringType, default="output/delta",
                    description="Local folder or object-storage URI (s3://, abfss://, gs://) holding <target_schema>/<table> Delta tables."),
        th.Property("storage_options", th.ObjectType(additional_properties=th.StringType), secret=True,
                    description="delta-rs storage options for object storage (credentials; values may be sealed)."),
        th.Property("delta_rows_per_file", th.IntegerType(minimum=1),
                    description="Rows per Parquet file of a Delta table (delta path), which keeps its files in key order. Default: 250,000 for a table whose replaced rows are marked in deletion vectors (a change costs its row and about 3 kB of log for the file it falls in, whatever the file's size), 10,000 for one whose files are rewritten (a change rewrites the file that holds its key, so smaller files make changes spread over the table cheaper, larger ones make reading the whole table a little faster)."),
        th.Property("delta_deletion_vectors", th.BooleanType, default=True,
                    description="Delta path, tables on a local or mounted path: mark replaced rows in deletion vectors instead of rewriting the files that hold them, so that changes spread over a large table cost what they cost in a small one. Tables this target creates get the deletionVectors feature (Delta reader version 3: Databricks Runtime 12.2+, Delta Lake 2.3+, delta-rs, DuckDB); existing tables use them when they have it, unless delta.enableDeletionVectors=false. False: new tables without the feature, and files always rewritten. On object storage files are always rewritten (delta-rs commits no deletion vectors there)."),
        th.Property("target_schema", th.StringType, default="ifscloud",
                    description="Schema (folder) the source's tables go into."),
        th.Property("table_prefix", th.StringType, default="", description="Prefix for every table name."),
        th.Property("decimal_scale", th.IntegerType, default=24,
                    description="Scale of DECIMAL(38, s) columns whose source gives no scale (IFS: Scale=variable); 24 keeps 14 integer digits. A value that does not fit fails loudly, never rounds."),
        th.Property("stream_versions", th.ObjectType(additional_properties=th.StringType),
                    description="Per stream, the column that orders record versions; default: the stream's bookmark property."),
        th.Property("workspace_host", th.StringType, description="Databricks workspace URL, e.g. https://adb-123.4.azuredatabricks.net."),
        th.Property("token", th.StringType, secret=True, description="Personal access token (or use client_id/client_secret)."),
        th.Property("client_id", th.StringType, description="Service principal for OAuth machine-to-machine auth."),
        th.Property("client_secret", th.StringType, secret=True, description="Service principal secret (may be sealed)."),
        th.Property("warehouse_id", th.StringType, description="SQL warehouse id, for load_method warehouse."),
        th.Property("catalog", th.StringType, default="main", description="Unity Catalog catalog, for load_method warehouse."),
        th.Property("warehouse_load_method", th.StringType, default="statements", allowed_values=["statements", "volume"],
                    description="How load_method warehouse sends a batch: statements: its values as typed parameters of MERGE statements of at most max_statement_bytes; volume: as a Parquet file staged in staging_volume (Files API), MERGEd from read_files on the keys, then deleted: for large loads."),
        th.Property("staging_volume", th.StringType,
                    description="Unity Catalog volume (catalog.schema.volume) where warehouse_load_method volume stages batches, under <flow>/<table>/; this principal needs READ VOLUME and WRITE VOLUME on it. Files a killed run left are removed by the next run of the flow."),
        th.Property("max_statement_bytes", th.IntegerType, default=1_000_000,
                    description="Upper bound of one statement request (its text and its parameters) with warehouse_load_method statements."),
        th.Property("statement_wait_timeout_seconds", th.IntegerType, default=30,
                    description="How long each statement request waits for the statement to finish before the statement is polled (Databricks' wait_timeout: 0, or 5 to 50)."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per workspace request (429 after Retry-After, 5xx, lost connections) and per statement that failed for a transient reason (ABORTED by a concurrent write, TEMPORARILY_UNAVAILABLE, ...)."),
        th.Property("requests_per_minute", th.IntegerType, default=1200,
                    description="Client-side request budget for the workspace on the warehouse path."),
        ca_bundle_property(),
        th.Property("job_id", th.IntegerType, description="Databricks job to run after each load, with the loaded tables and watermarks."),
        th.Property("job_timeout_seconds", th.IntegerType, default=3600, description="How long to wait for the job run."),
        th.Property("audit_url", th.StringType,
                    description="Audit trail database: sqlite:///path or postgresql+psycopg://...; default MLC_AUDIT_URL or .ml-connector/audit.sqlite."),
        th.Property("flow", th.StringType, default="ifs-to-databricks", description="Flow name recorded in the audit trail."),
        EXPECT_CLOSING_STATE_SETTING,
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    def __init__(self, *args, **kwargs) -> None:
        self.loaded: dict[str, dict] = {}
        super().__init__(*args, **kwargs)

    @cached_property
    def writer(self):
        if self.config["load_method"] == "delta":
            return DeltaWriter(self.config["delta_root"], unsealed_storage_options(self.config.get("storage_options")),
                               rows_per_file=self.config.get("delta_rows_per_file"),
                               deletion_vectors=bool(self.config["delta_deletion_vectors"]))
        from target_databricks.warehouse import StatementRunner, WarehouseWriter

        runner = StatementRunner.from_config(self.config)
        if self.config["warehouse_load_method"] == "volume":
            from target_databricks.staging import StagingVolume, VolumeWriter

            staging = StagingVolume.from_config(self.config, runner.api, run_id=self.audit_run.run_id)
            return VolumeWriter(runner, self.config["catalog"], staging)
        return WarehouseWriter(runner, self.config["catalog"], int(self.config["max_statement_bytes"]))

    def table_name(self, stream_name: str) -> str:
        name = re.sub(r"[^0-9A-Za-z_]", "_", stream_name.split("-")[-1]).lower()
        return f"{self.config['table_prefix']}{name}"

    def version_column(self, stream_name: str, schema: dict) -> str | None:
        column = (self.config.get("stream_versions") or {}).get(stream_name)
        if column is None:
            bookmarks = self.bookmark_properties.get(stream_name) or []
            column = bookmarks[0] if bookmarks else None
        if column is not None and column not in schema.get("properties", {}):
            raise ConfigValidationError(f"stream '{stream_name}': version column '{column}' is not in its schema",
                                        errors=[column])
        return column

    def note_loaded(self, stream_name: str, location: str, counts: dict[str, int]) -> None:
        totals = self.loaded.setdefault(stream_name, {"table": location})
        for operation, n in counts.items():
            totals[operation] = totals.get(operation, 0) + n

    def audit_summary(self) -> dict:
        return {"streams": self.loaded}

    def process_endofpipe(self) -> None:
        if not self.config.get("job_id"):
            super().process_endofpipe()
            self._cluster_written_tables()
            return
        # Hold the last checkpoint (the STATE of the last batches) back until the job has run on what this load
        # wrote; the job is told the watermarks of the newest STATE the load covers.
        self._held_state = None
        self._holding_state = True
        try:
            super().process_endofpipe()
        finally:
            self._holding_state = False
        self._cluster_written_tables()
        if self.loaded:
            self._run_job(load_parameters(self.audit_run.run_id, self.loaded, self.last_checkpoint))
        if self._held_state is not None:
            super().emit_state(self._held_state)

    def _cluster_written_tables(self) -> None:
        """The Delta tables this run wrote, clustered by key when enough of their rows are out of key order (see
        delta.py). It changes no row: a failure (a concurrent writer) leaves the table as written, with a warning."""
        if self.config["load_method"] != "delta" or "writer" not in self.__dict__:
            return
        for location, keys in list(self.writer.keys_written.items()):
            try:
                done = self.writer.cluster(location, keys)
            except Exception as exc:  # noqa: BLE001 - the load is complete; only its layout waits for the next run
                self.logger.warning("%s was not clustered by key (the next run tries again): %s: %s", location,
                                    type(exc).__name__, exc)
                continue
            finally:
                self.writer.keys_written.pop(location, None)
            if done:
                self.logger.info("%s: %s", location, done)

    def emit_state(self, state: dict) -> None:
        if getattr(self, "_holding_state", False):
            self._held_state = state
            return
        super().emit_state(state)

    @cached_property
    def workspace(self):
        from target_databricks.workspace_api import workspace_api

        return workspace_api(self.config)

    def _run_job(self, parameters: dict[str, str]) -> None:
        job_id = int(self.config["job_id"])
        try:
            run_id, result, message = run_job(self.workspace, job_id, parameters, self.config["job_timeout_seconds"],
                                              token=idempotency_token(self.audit_run.run_id, job_id, parameters))
        except Exception as exc:  # noqa: BLE001 - any failure to run the job is recorded for a rerun
            run_id, result, message = None, "NOT_STARTED", f"{type(exc).__name__}: {exc}"
        self.audit_run.record([job_entry(job_id, parameters, run_id, result, message)])
        if result != "SUCCESS":
            raise JobRunFailed(
                f"Databricks job {job_id} run {run_id} ended {result}: {message}. The load is kept and marked in the "
                "audit trail; the next run of target-databricks runs the job again before reporting anything new."
            )
        self.logger.info("Databricks job %s run %s succeeded for tables %s", job_id, run_id, parameters["tables"])

    def redo_failed_work(self) -> None:
        """Job runs that failed after earlier loads run again first; until they succeed nothing new is reported."""
        if not self.config.get("job_id"):
            return
        for failed in list(self.audit_trail.failures(stream=JOB_STREAM)):
            parameters = failed.payload["job_parameters"]
            self.logger.info("Running Databricks job %s again for the earlier load %s", failed.payload["job_id"],
                             parameters.get("load_run_id"))
            self._run_job(parameters)
            self.audit_trail.mark_replayed([failed.id], self.audit_run.run_id)


def unsealed_storage_options(options: dict | None) -> dict | None:
    if not options:
        return options
    from target_databricks.workspace import unsealed_setting

    # Storage options mix credentials with plain settings (a region, an endpoint): only a credential is worth a
    # warning when it is not sealed.
    return {k: unsealed_setting(v, f"storage_options.{k}", warn_if_plain=_names_a_credential(k))
            for k, v in options.items()}


_CREDENTIAL_WORDS = ("secret", "key", "token", "password", "sas", "signature", "credential")


def _names_a_credential(option: str) -> bool:
    return any(word in option.lower() for word in _CREDENTIAL_WORDS)


if __name__ == "__main__":
    TargetDatabricks.cli()
