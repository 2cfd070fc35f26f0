"""The admin interface (/_admin, loopback only, no auth): what tests use to arrange a scenario and to check what a
client did: statements log, jobs and their runs, faults, settings, tokens, tables and direct SQL."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import duckdb

from ..admin import AdminRefused, open_request, shared_route
from ..http import Request, Response
from . import plans, translate
from .datatypes import column_type
from .guards import Fault
from .jobs import JobDefinition
from .responses import ApiError, to_json
from .sql_errors import SqlError
from .volumes import VolumeProblem

if TYPE_CHECKING:
    from .app import DatabricksApp

SETTINGS = ("token_ttl", "chunk_rows", "execution_delay", "statement_size_limit", "warehouse_state",
            "expired_token_status", "fault_rates")


def _json(status: int, document) -> Response:
    return Response(status, to_json(document))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def handle(app: "DatabricksApp", request: Request) -> Response:
    try:
        route, body = open_request(request)
    except AdminRefused as refused:
        return _error(refused.status, refused.message)
    method = request.method
    query = {k: v[0] for k, v in parse_qs(request.query).items()}
    try:
        return _route(app, request, method, route, query, body)
    except ApiError as exc:
        return _error(exc.status, exc.message)
    except (SqlError, VolumeProblem) as exc:
        return _error(400, exc.message)
    except (ValueError, TypeError, KeyError) as exc:
        return _error(400, str(exc))


def _route(app: "DatabricksApp", request: Request, method: str, route: str, query: dict, body: dict) -> Response:
    if route == "faults" and method == "GET":  # with the random fault rates
        return _json(200, {"faults": app.faults.pending(), "rates": asdict(app.settings.fault_rates)})
    shared = shared_route(app, method, route, body, answer=_json, error=_error, settings=SETTINGS,
                          fault_from_json=Fault.from_json, settings_view=lambda: _settings(app))
    if shared is not None:
        return shared
    if route == "info" and method == "GET":
        return _json(200, _info(app))
    if route == "statements":
        if method == "GET":
            return _json(200, {"statements": app.statements.log()})
        if method == "DELETE":
            app.statements.clear_log()
            return _json(200, {"statements": []})
    if route.startswith("statements/") and route.endswith("/release") and method == "POST":
        app.statements.release(route.split("/")[1])
        return _json(200, app.statements.get(route.split("/")[1]).log_entry())
    if route.startswith("statements/") and method == "GET":
        return _json(200, app.statements.get(route.split("/", 1)[1]).log_entry())
    if route == "jobs":
        if method == "POST":
            return _json(200, app.jobs.define(JobDefinition.from_json(body)))
        if method == "GET":
            return _json(200, {"jobs": app.jobs.jobs()})
    if route == "jobs/runs":
        if method == "GET":
            job_id = int(query["job_id"]) if "job_id" in query else None
            return _json(200, {"runs": app.jobs.runs(app.base_url(request), app.settings.workspace_id, job_id)})
        if method == "DELETE":
            app.jobs.clear_runs()
            return _json(200, {"runs": []})
    if route == "tokens" and method == "POST":
        return _json(200, app.auth.add_pat(body.get("token"), body.get("lifetime_seconds")))
    if route == "tokens/revoke" and method in ("POST", "GET"):
        return _json(200, {"revoked": app.auth.revoke_all()})
    if route == "tables" and method == "GET":
        return _json(200, {"tables": _tables(app)})
    if route == "sql" and method == "POST":
        return _sql(app, body)
    if route == "volumes":
        if method == "POST":
            return _json(200, _create_volume(app, body))
        if method == "GET":
            volumes = app.warehouse.volumes
            return _json(200, {"volumes": [{**asdict(v), "full_name": v.full_name, "files": volumes.files_of(v)}
                                           for v in volumes.all()]})
    if route == "volumes/privileges" and method == "POST":
        volume = app.warehouse.volumes.set_privileges(str(body.get("volume", "")), list(body.get("privileges", [])))
        return _json(200, {**asdict(volume), "full_name": volume.full_name})
    if route == "traffic":
        if method == "GET":
            return _json(200, app.traffic.totals())
        if method == "DELETE":
            app.traffic.reset()
            return _json(200, app.traffic.totals())
    return _error(404, f"no admin route {method} /_admin/{route}")


def _create_volume(app: "DatabricksApp", body: dict) -> dict:
    """Arrange a volume (`{"volume": "catalog.schema.volume", "comment"?, "create_schema"?: true}`): what an
    administrator does once, before any load stages files in it."""
    unknown = set(body) - {"volume", "comment", "create_schema"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    parts = str(body.get("volume", "")).split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError("'volume' is catalog.schema.volume")
    return {"created": app.warehouse.create_volume(*parts, comment=body.get("comment"),
                                                   create_schema=bool(body.get("create_schema", True)))}


def _settings(app: "DatabricksApp") -> dict:
    settings = {name: getattr(app.settings, name) for name in SETTINGS}
    settings["fault_rates"] = asdict(app.settings.fault_rates)
    return settings


def _info(app: "DatabricksApp") -> dict:
    s = app.settings
    return {"workspace_id": s.workspace_id, "warehouse_ids": list(s.warehouse_ids),
            "catalogs": app.warehouse.catalogs(), "default_catalog": s.default_catalog,
            "default_schema": s.default_schema, "client_id": s.client_id, "data_dir": str(app.warehouse.data_dir),
            "settings": _settings(app)}


def _tables(app: "DatabricksApp") -> list[dict]:
    cursor = app.warehouse.cursor()
    try:
        tables = app.warehouse.tables(cursor)
        for table in tables:
            cursor.execute(f"SELECT * FROM {table['duckdb_name']} LIMIT 0")
            table["columns"] = [{"name": d[0], "type": column_type(d[1]).describe_text}
                                for d in cursor.description]
            cursor.execute(f"SELECT count(*) FROM {table['duckdb_name']}")
            table["rows"] = cursor.fetchone()[0]
        return tables
    finally:
        cursor.close()


def _sql(app: "DatabricksApp", body: dict) -> Response:
    """Read (or arrange) what landed: DuckDB SQL by default, or Databricks SQL with {"dialect": "databricks"}.

    Values come back as the Statement Execution API renders them (strings, exact decimals, UTC timestamps)."""
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        return _error(400, "send {\"sql\": \"...\"}")
    dialect = body.get("dialect", "duckdb")
    cursor = app.warehouse.cursor()
    try:
        if dialect == "databricks":
            scope = translate.Scope(body.get("catalog") or app.settings.default_catalog,
                                    body.get("schema") or app.settings.default_schema)
            plan = translate.plan(sql, {}, scope, app.warehouse)
            result = plans.execute(plan, cursor, app.warehouse)
        elif dialect == "duckdb":
            cursor.execute(sql)
            result = plans.fetch(cursor)
        else:
            return _error(400, "dialect must be 'duckdb' or 'databricks'")
    except SqlError as exc:
        return _error(400, exc.message)
    except duckdb.Error as exc:
        return _error(400, f"{type(exc).__name__}: {exc}")
    finally:
        cursor.close()
    return _json(200, {"columns": [{"name": n, "type": t.type_text} for n, t in result.columns],
                       "rows": result.rows})

