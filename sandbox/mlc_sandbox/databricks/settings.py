"""Everything a Databricks stand-in run is configured with; the live values can be changed via /_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from .guards import FaultRates

SIXTEEN_MIB = 16 * 1024 * 1024


@dataclass
class DatabricksSettings:
    # personal access tokens accepted as `Authorization: Bearer <token>`
    token: str = "dapi-mlc-sandbox-token"
    # the OAuth service principal (machine-to-machine, client_credentials at /oidc/v1/token)
    client_id: str = "mlc-sandbox-sp"
    client_secret: str = "mlc-sandbox-sp-secret"
    token_ttl: int = 3600  # seconds an OAuth access token lives (Databricks: one hour)
    # how an expired OAuth token is refused: 403 "JWT has expired", or 401 "Token is expired" (see auth.py)
    expired_token_status: int = 403
    workspace_id: str = "1000000000000001"
    warehouse_ids: tuple[str, ...] = ("mlc-sandbox-warehouse",)
    catalogs: tuple[str, ...] = ("main",)  # created at start when missing
    volumes: tuple[str, ...] = ()  # catalog.schema.volume, each created at start (with its schema) when missing
    default_catalog: str = "main"
    default_schema: str = "default"
    chunk_rows: int = 10_000  # rows per result chunk; clients must follow next_chunk_index beyond it
    execution_delay: float = 0.0  # seconds every statement takes before it runs, so clients have to poll
    statement_size_limit: int = SIXTEEN_MIB
    workers: int = 4  # statements executing at once
    # RUNNING, or STOPPED as a warehouse is after its auto-stop: GET shows it, and a statement starts it again
    # (here at once; a serverless warehouse takes seconds, a classic one minutes)
    warehouse_state: str = "RUNNING"
    # random faults (guards.FaultRates), drawn from a generator seeded with fault_seed
    fault_rates: FaultRates = field(default_factory=FaultRates)
    fault_seed: int = 42
