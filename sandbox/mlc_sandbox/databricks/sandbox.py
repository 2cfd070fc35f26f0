"""Running the Databricks stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..runner import AdminClient, InProcessStandIn, LoggedStandInProcess, option_flags, serve_command, tls_flags
from .app import DatabricksApp
from .guards import FaultRates
from .settings import DatabricksSettings
from .warehouse import Warehouse


def default_data_dir() -> Path:
    return Path(os.environ.get("MLC_SANDBOX_DATA_DIR", ".sandbox-data")) / "databricks"


class _AdminClient(AdminClient):
    """The Databricks admin interface (SQL, tables, statements, jobs, delays, faults, tokens) over HTTP."""

    token: str
    client_id: str
    client_secret: str
    warehouse_id: str

    def sql(self, sql: str, dialect: str = "duckdb") -> list[list[str | None]]:
        """Rows of a query on the warehouse's storage, rendered as the Statement Execution API renders them."""
        return self.admin("POST", "sql", {"sql": sql, "dialect": dialect})["rows"]

    def tables(self) -> list[dict]:
        return self.admin("GET", "tables")["tables"]

    def statements(self) -> list[dict]:
        return self.admin("GET", "statements")["statements"]

    def define_job(self, job_id: int, name: str | None = None, duration_seconds: float = 0.5,
                   outcomes: list[str] | None = None, **options) -> dict:
        body = {"job_id": job_id, "name": name or f"job-{job_id}", "duration_seconds": duration_seconds,
                "outcomes": outcomes or [], **options}
        return self.admin("POST", "jobs", body)

    def runs(self, job_id: int | None = None) -> list[dict]:
        return self.admin("GET", "jobs/runs" + (f"?job_id={job_id}" if job_id is not None else ""))["runs"]

    def slow_down(self, seconds: float, count: int = 1, statement_contains: str | None = None) -> dict:
        """The next `count` statements (containing the text, if given) take `seconds` longer to run."""
        return self.add_fault("slow_statement", count=count, delay_seconds=seconds,
                              statement_contains=statement_contains)

    def release_statement(self, statement_id: str) -> dict:
        """A statement slowed down (slow_down) goes on at once: commits, or meets what committed meanwhile."""
        return self.admin("POST", f"statements/{statement_id}/release")

    def fail_statements(self, count: int = 1, error_code: str = "ABORTED", message: str | None = None,
                        statement_contains: str | None = None) -> dict:
        """The next `count` statements (containing the text, if given) end FAILED with `error_code` and `message`
        (default: Delta's concurrent-write conflict), nothing of them written."""
        return self.add_fault("statement_failed", count=count, error_code=error_code, message=message,
                              statement_contains=statement_contains)

    def create_volume(self, full_name: str, comment: str | None = None, create_schema: bool = True) -> bool:
        """A volume `catalog.schema.volume` (its schema too, unless told not to); False when it was there."""
        body = {"volume": full_name, "create_schema": create_schema, **({"comment": comment} if comment else {})}
        return self.admin("POST", "volumes", body)["created"]

    def volumes(self) -> list[dict]:
        """Every volume with the privileges the principal holds on it and its files (path, size)."""
        return self.admin("GET", "volumes")["volumes"]

    def volume_files(self, full_name: str) -> list[str]:
        """Paths of the files in a volume."""
        volume = next(v for v in self.volumes() if v["full_name"] == full_name.lower())
        return [f["path"] for f in volume["files"]]

    def grant_volume(self, full_name: str, *privileges: str) -> dict:
        """What the workspace's principal holds on the volume from now on: "READ VOLUME", "WRITE VOLUME" or none."""
        return self.admin("POST", "volumes/privileges", {"volume": full_name, "privileges": list(privileges)})

    def traffic(self) -> dict:
        """Requests and body bytes received since start or the last reset, in total and per kind."""
        return self.admin("GET", "traffic")

    def reset_traffic(self) -> dict:
        return self.admin("DELETE", "traffic")

    def fault_rates(self, **rates: float) -> dict:
        """Random faults from now on: shares of API requests per kind (see guards.FaultRates); 0 turns a kind off."""
        return self.change_settings(fault_rates=rates)["fault_rates"]

    def add_token(self, token: str | None = None, lifetime_seconds: float | None = None) -> str:
        return self.admin("POST", "tokens", {"token": token, "lifetime_seconds": lifetime_seconds})["token_value"]

    def revoke_tokens(self) -> dict:
        return self.admin("POST", "tokens/revoke")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oidc/v1/token"


class DatabricksSandbox(_AdminClient, InProcessStandIn):
    """The Databricks stand-in in this process, serving from a background thread.

        with DatabricksSandbox(port=0, token="t") as dbx:
            WorkspaceClient(host=dbx.base_url, token=dbx.token).statement_execution.execute_statement(
                "SELECT 1", warehouse_id=dbx.warehouse_id)

    Without `data_dir` the warehouse lives in a temporary directory removed on stop; with one, tables persist there.
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", data_dir: str | Path | None = None,
                 token: str = DatabricksSettings.token, client_id: str = DatabricksSettings.client_id,
                 client_secret: str = DatabricksSettings.client_secret, token_ttl: int = DatabricksSettings.token_ttl,
                 warehouse_id: str = DatabricksSettings.warehouse_ids[0],
                 chunk_rows: int = DatabricksSettings.chunk_rows,
                 execution_delay: float = 0.0, catalogs: tuple[str, ...] = DatabricksSettings.catalogs,
                 default_catalog: str = DatabricksSettings.default_catalog,
                 volumes: tuple[str, ...] = DatabricksSettings.volumes,
                 statement_size_limit: int = DatabricksSettings.statement_size_limit, workers: int = 4,
                 expired_token_status: int = DatabricksSettings.expired_token_status,
                 fault_rates: FaultRates | None = None, fault_seed: int = DatabricksSettings.fault_seed,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        self.settings = DatabricksSettings(
            token=token, client_id=client_id, client_secret=client_secret, token_ttl=token_ttl,
            warehouse_ids=(warehouse_id,), catalogs=tuple(catalogs), volumes=tuple(volumes),
            default_catalog=default_catalog,
            chunk_rows=chunk_rows, execution_delay=execution_delay, statement_size_limit=statement_size_limit,
            workers=workers, expired_token_status=expired_token_status, fault_rates=fault_rates or FaultRates(),
            fault_seed=fault_seed)
        self._init_server(host, port, tls_cert, tls_key)
        self.token, self.client_id, self.client_secret = token, client_id, client_secret
        self.warehouse_id = warehouse_id
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self.data_dir: Path | None = None
        self.app: DatabricksApp | None = None

    def start(self) -> "DatabricksSandbox":
        self.data_dir = self._given_data_dir or Path(tempfile.mkdtemp(prefix="mlc-databricks-"))
        warehouse = Warehouse(self.data_dir, self.settings.catalogs, self.settings.default_schema,
                              self.settings.volumes)
        self.app = DatabricksApp(self.settings, warehouse)
        self._serve(self.app)
        return self

    def stop(self) -> None:
        self._stop_server()
        if self.app is not None:
            self.app.close()
            self.app = None
        if self._given_data_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class DatabricksSandboxProcess(_AdminClient, LoggedStandInProcess):
    """The Databricks stand-in as a child process (`mlc-sandbox serve databricks ...`), started and stopped from
    Python. `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves.
    Other options are passed on as command-line flags (`chunk_rows=5` -> `--chunk-rows 5`)."""

    label = "Databricks"

    def __init__(self, *, port: int = 0, data_dir: str | Path | None = None,
                 token: str = DatabricksSettings.token, client_id: str = DatabricksSettings.client_id,
                 client_secret: str = DatabricksSettings.client_secret,
                 warehouse_id: str = DatabricksSettings.warehouse_ids[0], timeout: float = 60,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None, **options):
        self.token, self.client_id, self.client_secret = token, client_id, client_secret
        self.warehouse_id = warehouse_id
        self._prepare_folder("mlc-sandbox-")
        args = serve_command("databricks", "--port", str(port), "--token", token, "--client-id", client_id,
                             "--client-secret", client_secret, "--warehouse-id", warehouse_id,
                             "--data-dir", str(data_dir if data_dir is not None else self._folder / "data"),
                             "--ready-file", str(self._ready_file))
        self._spawn(args + option_flags(options) + tls_flags(self, tls_cert, tls_key), timeout)
