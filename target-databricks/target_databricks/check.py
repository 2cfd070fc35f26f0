"""target-databricks-check: does this configuration fit the Databricks workspace or storage it names?

Read-only, with two exceptions where writing is the only way to learn whether writing is permitted: on the Delta path
the check writes a one-row Delta table under ``<delta_root>/_mlc_check/<random id>`` with the same delta-rs writer and
storage options as a load, and removes it again (its data file and ``_delta_log``, and on a local disk the folders the
probe itself created); with ``warehouse_load_method: volume`` it uploads a small probe file to
``/Volumes/<staging volume>/_mlc_check/<random id>.probe`` through the Files API, as a load stages a batch, and deletes
it. Nothing else is written: the warehouse path only reads (``SELECT 1``, ``SHOW CATALOGS``, ``SHOW SCHEMAS``; the
schema is never created; a stopped warehouse is not started), and the job is looked up, never run.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref, warned
from target_databricks.target import TargetDatabricks, unsealed_storage_options
from target_databricks.workspace_api import (DatabricksApiError, DatabricksAuthError, WorkspaceApi,
                                             workspace_api)

SYSTEM = "Databricks"
PROBE_FOLDER = "_mlc_check"
CHECK_MAX_TRIES = 3  # a few tries, not the load's patience: a check should answer within a minute
CHECK_TIMEOUT_SECONDS = 20
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def setting(name: str) -> str:
    return setting_ref(TargetDatabricks.name, name)


def checks(config: dict) -> Iterator[CheckResult]:
    if config["load_method"] == "delta":
        yield delta_location(config)
    if config["load_method"] == "warehouse" or config.get("job_id"):
        yield from workspace_checks(config)


# The Delta path


def delta_location(config: dict) -> CheckResult:
    root = config["delta_root"].rstrip("/")
    name = f"Delta location {root}"
    if "://" in root and not root.startswith("file://"):
        return _object_storage_probe(name, root, unsealed_storage_options(config.get("storage_options")))
    return _local_probe(name, Path(root.removeprefix("file://") or "/"), config["target_schema"])


def _local_probe(name: str, root: Path, target_schema: str) -> CheckResult:
    fix = f"set {setting('delta_root')} to a folder the user running Meltano may write"
    for path in [root / target_schema, root, *root.parents]:
        if path.exists() and not path.is_dir():
            return failed(SYSTEM, name, f"{path} is a file, not a folder", fix + f" (or move the file {path} away)")
    existing = next(p for p in [root, *root.parents] if p.exists())
    created = [p for p in [root / PROBE_FOLDER, root, *root.parents] if not p.exists()]
    try:
        _write_and_remove_probe(str(root), None)
    except Exception as exc:  # noqa: BLE001 - whatever stops the probe stops a load: it is the answer
        return failed(SYSTEM, name, f"cannot write in {existing.resolve()}: {_one_line(exc)}", fix)
    finally:
        for folder in created:  # innermost first: only the folders the probe itself made
            try:
                folder.rmdir()
            except OSError:
                pass
    where = (f"{root.resolve()} is writable" if existing == root
             else f"{root} does not exist yet; {existing.resolve()} lets the first load create it")
    return passed(SYSTEM, name, f"{where} (a probe table was written and removed under {PROBE_FOLDER}/)")


def _object_storage_probe(name: str, root: str, storage_options: dict | None) -> CheckResult:
    try:
        _write_and_remove_probe(root, storage_options)
    except Exception as exc:  # noqa: BLE001
        return failed(SYSTEM, name, f"cannot write a Delta table there: {_one_line(exc)}",
                      f"set {setting('delta_root')} to a bucket/container that exists, and "
                      f"{setting('storage_options')} to credentials allowed to write and delete in it")
    return passed(SYSTEM, name, f"writable with the configured storage_options (a probe table was written and "
                                f"removed under {PROBE_FOLDER}/)")


def _write_and_remove_probe(root: str, storage_options: dict | None) -> None:
    """A one-row Delta table written exactly as a load writes one, then every object of it removed."""
    import pyarrow as pa
    from deltalake import write_deltalake

    probe = f"{PROBE_FOLDER}/{uuid.uuid4().hex}"
    write_deltalake(f"{root}/{probe}", pa.table({"written_by": ["mlc-check"]}), storage_options=storage_options)
    if "://" not in root:
        shutil.rmtree(Path(root) / probe)
        return
    from deltalake.fs import DeltaStorageHandler
    from pyarrow.fs import FileSelector, PyFileSystem

    storage = PyFileSystem(DeltaStorageHandler(root, storage_options))
    written = [info.path for info in storage.get_file_info(FileSelector(probe, recursive=True))]
    storage.delete_dir(probe)
    if any(info.type.name != "NotFound" for info in storage.get_file_info(written)):
        raise OSError(f"wrote the probe table {probe} but could not remove all of it: delete permission missing?")


# The workspace: credentials, SQL warehouse, catalog and schema, job


def workspace_checks(config: dict) -> Iterator[CheckResult]:
    host = config.get("workspace_host")
    if not host:
        yield failed(SYSTEM, "workspace", "load_method warehouse and job_id need the workspace's URL",
                     f"set {setting('workspace_host')}, e.g. https://adb-123.4.azuredatabricks.net")
        return
    # The same REST client and send loop as a load (retries of 429/5xx/lost connections, token renewal), with the
    # check's shorter patience: a check should answer within a minute.
    api = workspace_api(config, max_tries=CHECK_MAX_TRIES, timeout_seconds=CHECK_TIMEOUT_SECONDS)
    credential = "personal access token" if config.get("token") else f"service principal {config.get('client_id')}"
    try:
        me = api.get("/api/2.0/preview/scim/v2/Me")
    except DatabricksApiError as exc:
        yield _credentials_failure(host, credential, config, exc)
        return  # every later check would fail the same way
    principal = me.get("userName") or me.get("displayName") or credential
    yield passed(SYSTEM, "credentials", f"{host} accepted the {credential} (as {principal})")
    if config["load_method"] == "warehouse":
        yield from warehouse_checks(api, config, principal)
        if config.get("warehouse_load_method") == "volume":
            yield staging_volume_check(api, config, principal)
    if config.get("job_id"):
        yield job_check(api, int(config["job_id"]), principal)


def _credentials_failure(host: str, credential: str, config: dict, exc: DatabricksApiError) -> CheckResult:
    if config.get("token"):
        fix = f"set {setting('token')} to a valid personal access token of this workspace"
    else:
        fix = (f"set {setting('client_secret')} to an OAuth secret of the service principal whose application id "
               f"is {setting('client_id')}")
    if not isinstance(exc, DatabricksAuthError) and exc.status is None:
        return failed(SYSTEM, "credentials", f"{host} could not be reached: {_one_line(exc)}",
                      f"set {setting('workspace_host')} to the workspace's URL (and check the network path to it)")
    return failed(SYSTEM, "credentials", f"{host} refused the {credential}: {_one_line(exc)}", fix)


def warehouse_checks(api: WorkspaceApi, config: dict, principal: str) -> Iterator[CheckResult]:
    warehouse_id, catalog, schema = config.get("warehouse_id"), config["catalog"], config["target_schema"]
    if not warehouse_id:
        yield failed(SYSTEM, "SQL warehouse", "load_method warehouse needs a warehouse id",
                     f"set {setting('warehouse_id')} (SQL Warehouses → the warehouse → Connection details)")
        return
    name = f"SQL warehouse {warehouse_id}"
    try:
        warehouse = api.get(f"/api/2.0/sql/warehouses/{quote(warehouse_id, safe='')}")
    except DatabricksApiError as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        known = sorted(w.get("id", "?") for w in api.get("/api/2.0/sql/warehouses").get("warehouses") or [])
        yield failed(SYSTEM, name, "no such SQL warehouse in this workspace (or not visible to " + principal + ")",
                     f"set {setting('warehouse_id')} to one of: {', '.join(known) or '(none visible)'}")
        return
    from target_databricks.warehouse import StatementRunner

    runner = StatementRunner.from_config(config, max_tries=CHECK_MAX_TRIES)
    state, warehouse_name = warehouse.get("state"), warehouse.get("name")
    if state in ("STOPPED", "STOPPING"):
        # Any statement would start it: minutes of compute for a classic warehouse, for a check that only reads.
        yield warned(SYSTEM, name, f"'{warehouse_name}' is {state}; not started by the check, so catalog {catalog} "
                                   f"and schema {schema} were not checked (the first load starts it)",
                     f"start warehouse {warehouse_id} (SQL Warehouses → Start), then run the check again")
        return
    try:
        answer = _rows(runner, "SELECT 1")
    except Exception as exc:  # noqa: BLE001
        yield failed(SYSTEM, name, f"SELECT 1 failed: {_one_line(exc)}",
                     f"grant {principal} CAN USE on warehouse {warehouse_id}")
        return
    yield passed(SYSTEM, name, f"'{warehouse_name}' ({state}) answered SELECT 1 with {answer[0][0] if answer else '?'}")

    if not _rows(runner, f"SHOW CATALOGS LIKE '{_pattern(catalog)}'"):
        yield failed(SYSTEM, f"catalog {catalog}", f"catalog {catalog} does not exist or is not visible to {principal}",
                     f"set {setting('catalog')} to an existing catalog, or grant {principal} USE CATALOG on {catalog}")
        return
    yield passed(SYSTEM, f"catalog {catalog}", "exists and is visible")
    from target_databricks.sql import ident

    if _rows(runner, f"SHOW SCHEMAS IN {ident(catalog)} LIKE '{_pattern(schema)}'"):
        yield passed(SYSTEM, f"schema {catalog}.{schema}", "exists: the tables are created and merged there")
    else:
        # Whether the principal may create it (CREATE SCHEMA on the catalog, through any group) is only known for
        # sure by trying, and a check creates nothing.
        yield warned(SYSTEM, f"schema {catalog}.{schema}",
                     "does not exist yet: the first load runs CREATE SCHEMA IF NOT EXISTS",
                     f"create schema {catalog}.{schema}, or make sure {principal} has CREATE SCHEMA on catalog "
                     f"{catalog} (or set {setting('target_schema')} to an existing schema)")


def staging_volume_check(api: WorkspaceApi, config: dict, principal: str) -> CheckResult:
    from singer_sdk.exceptions import ConfigValidationError

    from target_databricks.staging import StagingVolume, StagingVolumeError

    volume = config.get("staging_volume")
    name = f"staging volume {volume}" if volume else "staging volume"
    fix = (f"set {setting('staging_volume')} to a volume (catalog.schema.volume) on which {principal} has READ VOLUME "
           "and WRITE VOLUME")
    try:
        staging = StagingVolume(api, volume or "", flow=config["flow"], run_id="check")
    except ConfigValidationError as exc:
        return failed(SYSTEM, name, str(exc) if volume else "warehouse_load_method volume needs a staging volume", fix)
    probe = f"{staging.root}/{PROBE_FOLDER}/{uuid.uuid4().hex}.probe"
    try:
        api.put_file(probe, b"target-databricks-check\n")
    except DatabricksAuthError:
        raise
    except DatabricksApiError as exc:
        problem = staging.unusable(exc, "write")
        return failed(SYSTEM, name, _one_line(problem) if isinstance(problem, StagingVolumeError)
                      else f"a probe file could not be uploaded: {_one_line(exc)}", fix)
    try:
        api.delete_file(probe)
        api.delete_empty_directory(probe.rsplit("/", 1)[0])  # unless another check's probe is there meanwhile
    except DatabricksApiError as exc:
        return failed(SYSTEM, name, f"wrote the probe file {probe} but could not delete it: {_one_line(exc)}",
                      f"grant {principal} WRITE VOLUME on {volume} (and delete {probe})")
    return passed(SYSTEM, name, f"{principal} may stage files there (a probe file was written and deleted)")


def job_check(api: WorkspaceApi, job_id: int, principal: str) -> CheckResult:
    name = f"job {job_id}"
    fix = f"set {setting('job_id')} to the id of the job to run after each load (Workflows → Jobs), or unset it"
    try:
        job = api.get("/api/2.1/jobs/get", {"job_id": job_id})
    except DatabricksApiError as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return failed(SYSTEM, name, f"no such job in this workspace: {_one_line(exc)}", fix)
        if exc.error_code == "PERMISSION_DENIED":
            return failed(SYSTEM, name, f"not visible to {principal}: {_one_line(exc)}",
                          f"grant {principal} CAN MANAGE RUN on job {job_id}")
        raise
    job_name = (job.get("settings") or {}).get("name")
    return passed(SYSTEM, name, f"exists ({job_name!r}); it runs after each load with the loaded tables")


def _rows(runner, statement: str) -> list[list]:
    from target_databricks.warehouse import StatementFailed

    try:
        return runner.rows(statement)
    except StatementFailed as exc:
        raise RuntimeError(f"{exc.error_code}: {exc.message}" if exc.error_code else exc.message) from None


def _pattern(name: str) -> str:
    """A SHOW ... LIKE pattern matching exactly this name (`*` and `|` are Databricks' wildcards)."""
    return re.sub(r"[*|'\\]", "", name)


def _one_line(exc: Exception) -> str:
    text = _ANSI.sub("", str(exc))
    return " ".join(text.split())[:400] or type(exc).__name__


main = check_command(TargetDatabricks, SYSTEM, checks)

if __name__ == "__main__":
    main()
