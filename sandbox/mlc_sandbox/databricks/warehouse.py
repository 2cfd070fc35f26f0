"""The storage behind the SQL warehouse: one DuckDB database file per Unity Catalog catalog.

Databricks names tables catalog.schema.table; DuckDB names them database.schema.table, so every catalog is a
DuckDB database file `<data dir>/catalogs/<catalog>.duckdb` attached as `uc_<catalog>` (DuckDB reserves `main`,
the usual first catalog, for itself). Schemas and tables keep their names. Catalog, schema and table names are
case-insensitive, as in Unity Catalog.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import duckdb

from .sql_errors import SqlError, catalog_not_found
from .volumes import Volumes

CATALOG_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
DUCKDB_PREFIX = "uc_"
HIDDEN_SCHEMAS = ("main", "information_schema", "pg_catalog")  # DuckDB's own, never Databricks'


def duckdb_database(catalog: str) -> str:
    return DUCKDB_PREFIX + catalog.lower()


class Warehouse:
    def __init__(self, data_dir: Path, catalogs: tuple[str, ...] = ("main",), default_schema: str = "default",
                 volumes: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir)
        self.catalog_dir = self.data_dir / "catalogs"
        self.catalog_dir.mkdir(parents=True, exist_ok=True)
        self.default_schema = default_schema
        self._root = duckdb.connect()
        self._lock = threading.Lock()
        self._catalogs: dict[str, str] = {}  # Databricks name -> DuckDB database
        # Delta's table versions, as far as conflicts need them: commits per table (plans.table_key) since start
        self._versions: dict[str, int] = {}
        self.commit_lock = threading.Lock()  # held while a write checks for conflicts and commits
        self.volumes = Volumes(self.data_dir)  # Unity Catalog volumes: files, for the Files API and read_files
        for path in sorted(self.catalog_dir.glob("*.duckdb")):
            self._attach(path.stem)
        for name in catalogs:
            self.create_catalog(name, if_not_exists=True)
        for full_name in volumes:
            parts = full_name.split(".")
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"a volume is named catalog.schema.volume, not '{full_name}'")
            self.create_volume(*parts, create_schema=True)

    def _attach(self, name: str) -> None:
        database = duckdb_database(name)
        path = self.catalog_dir / f"{name}.duckdb"
        self._root.execute(f"ATTACH '{path}' AS \"{database}\"")
        self._root.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"."{self.default_schema}"')
        self._catalogs[name] = database

    def create_catalog(self, name: str, if_not_exists: bool = False) -> None:
        name = name.lower()
        if not CATALOG_NAME.match(name):
            raise SqlError("INVALID_SCHEMA_OR_RELATION_NAME", f"`{name}` is not a valid name for a catalog.", "42602")
        with self._lock:
            if name in self._catalogs:
                if if_not_exists:
                    return
                raise SqlError("CATALOG_ALREADY_EXISTS",
                               f"Cannot create catalog `{name}` because it already exists.", "42000")
            self._attach(name)

    def catalogs(self) -> list[str]:
        with self._lock:
            return sorted(self._catalogs)

    def database_of(self, catalog: str) -> str:
        """The DuckDB database holding a catalog; unknown catalogs fail as Databricks fails them."""
        with self._lock:
            database = self._catalogs.get(catalog.lower())
        if database is None:
            raise catalog_not_found(catalog)
        return database

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one statement (cursors of one DuckDB instance see the same catalogs)."""
        with self._lock:
            cursor = self._root.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def schemas(self, cursor, catalog: str) -> list[str]:
        database = self.database_of(catalog)
        rows = cursor.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? AND NOT internal ORDER BY 1",
            [database]).fetchall()
        return [r[0] for r in rows if r[0] not in HIDDEN_SCHEMAS]

    def tables(self, cursor, catalog: str | None = None, schema: str | None = None) -> list[dict]:
        """Tables and views as {catalog, schema, table, duckdb_name, kind}."""
        with self._lock:
            by_database = {database: name for name, database in self._catalogs.items()}
        rows = cursor.execute(
            "SELECT database_name, schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT database_name, schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal "
            "ORDER BY 1, 2, 3").fetchall()
        found = []
        for database, schema_name, table, kind in rows:
            name = by_database.get(database)
            if name is None or schema_name in HIDDEN_SCHEMAS:
                continue
            if catalog is not None and name != catalog.lower():
                continue
            if schema is not None and schema_name.lower() != schema.lower():
                continue
            found.append({"catalog": name, "schema": schema_name, "table": table, "kind": kind,
                          "duckdb_name": f'"{database}"."{schema_name}"."{table}"'})
        return found

    def create_volume(self, catalog: str, schema: str, name: str, *, comment: str | None = None,
                      create_schema: bool = False) -> bool:
        """A volume (and its schema first, with `create_schema`), as an administrator arranges one; False when it
        was there already."""
        database = self.database_of(catalog)
        cursor = self.cursor()
        try:
            if create_schema:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"."{schema.lower()}"')
            exists = schema.lower() in [s.lower() for s in self.schemas(cursor, catalog)]
        finally:
            cursor.close()
        return self.volumes.create(catalog, schema, name, schema_exists=exists, if_not_exists=True,
                                   comment=comment) is not None

    def table_version(self, table: str) -> int:
        with self._lock:
            return self._versions.get(table, 0)

    def committed(self, table: str) -> None:
        with self._lock:
            self._versions[table] = self._versions.get(table, 0) + 1

    def close(self) -> None:
        self._root.close()
