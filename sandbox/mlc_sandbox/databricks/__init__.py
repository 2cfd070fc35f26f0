"""The Databricks workspace stand-in: SQL Statement Execution API on DuckDB, Jobs API, PAT and OAuth M2M auth,
faults and an admin interface."""

from .sandbox import DatabricksSandbox, DatabricksSandboxProcess
from .settings import DatabricksSettings

__all__ = ["DatabricksSandbox", "DatabricksSandboxProcess", "DatabricksSettings"]
