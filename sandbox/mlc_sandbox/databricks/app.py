"""The Databricks workspace stand-in as one request handler: discovery, OAuth, authentication, faults, routing."""

from __future__ import annotations

import json
import re
import threading
import time
from urllib.parse import parse_qs

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin, files_api
from .auth import Authenticator, host_metadata, oidc_discovery
from .guards import STATUS_ERROR_CODES, Fault, FaultInjector, FaultRates, RequestLog
from .jobs import JobService
from .responses import ApiError, api_error, ok, to_json
from .settings import DatabricksSettings
from .statements import StatementService
from .warehouse import Warehouse

STATEMENTS = "/api/2.0/sql/statements"
STATEMENT = re.compile(r"^/api/2\.0/sql/statements/([^/]+)$")
STATEMENT_CANCEL = re.compile(r"^/api/2\.0/sql/statements/([^/]+)/cancel$")
STATEMENT_CHUNK = re.compile(r"^/api/2\.0/sql/statements/([^/]+)/result/chunks/(\d+)$")
WAREHOUSE = re.compile(r"^/api/2\.0/sql/warehouses/([^/]+)$")
JOBS = re.compile(r"^/api/2\.[12]/jobs/(run-now|runs/get|runs/cancel|runs/list|get|list)$")
LOGGED_HEADERS = ("Content-Type", "User-Agent", "X-Databricks-Workspace-Id")


class DatabricksApp:
    def __init__(self, settings: DatabricksSettings, warehouse: Warehouse):
        self.settings = settings
        self.warehouse = warehouse
        self.auth = Authenticator(settings.token, settings.client_id, settings.client_secret, settings.token_ttl,
                                  settings.workspace_id, settings.expired_token_status)
        self.statements = StatementService(settings, warehouse)
        self.jobs = JobService()
        self.faults = FaultInjector(settings.fault_rates, settings.fault_seed)
        self.log = RequestLog()
        self.traffic = Traffic()
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def close(self) -> None:
        self.statements.close()
        self.warehouse.close()

    def apply_settings(self, changes: dict) -> None:
        if "token_ttl" in changes:
            self.settings.token_ttl = self.auth.token_ttl = int(changes["token_ttl"])
        if "chunk_rows" in changes:
            self.settings.chunk_rows = max(1, int(changes["chunk_rows"]))
        if "execution_delay" in changes:
            self.settings.execution_delay = max(0.0, float(changes["execution_delay"]))
        if "statement_size_limit" in changes:
            self.settings.statement_size_limit = int(changes["statement_size_limit"])
        if "warehouse_state" in changes:
            if changes["warehouse_state"] not in ("RUNNING", "STOPPED"):
                raise ValueError("warehouse_state is RUNNING or STOPPED")
            self.settings.warehouse_state = changes["warehouse_state"]
        if "expired_token_status" in changes:
            if int(changes["expired_token_status"]) not in (401, 403):
                raise ValueError("expired_token_status is 401 or 403")
            self.settings.expired_token_status = self.auth.expired_token_status = int(changes["expired_token_status"])
        if "fault_rates" in changes:
            if not isinstance(changes["fault_rates"], dict):
                raise ValueError("fault_rates is an object of shares, e.g. {\"status_5xx\": 0.02}")
            rates = FaultRates.from_json(changes["fault_rates"], self.settings.fault_rates)
            self.settings.fault_rates = self.faults.rates = rates

    def base_url(self, request: Request) -> str:
        return f"{self.scheme}://{request.headers.get('Host') or self.host_port}"

    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        entry = new_entry(request.method, request.target, bytes=len(request.body),
                          headers={h: request.headers.get(h) for h in LOGGED_HEADERS if request.headers.get(h)})
        self.traffic.count(request)
        response, entry["auth"], entry["fault"] = self._answer(request)
        self.log.finish(entry, response, started)
        return response

    def _answer(self, request: Request) -> tuple[Response, str | None, str | None]:
        """(answer, kind of the credential, the faults suffered as "kind" or "kind+kind")."""
        fault, statement_fault = self.faults.faults_for(
            request.path, request.method, _submitted_statement(request),
            self.auth.may_reach_its_end(request.headers.get("Authorization")))
        suffered = "+".join(f.kind for f in (statement_fault, fault) if f is not None) or None
        if fault is not None and fault.kind == "drop":
            return Response(0, drop=True), None, suffered
        if fault is not None and fault.kind == "rate_limit":
            return api_error(429, "REQUEST_LIMIT_EXCEEDED",
                             "The workspace's request rate limit was exceeded; retry after the given time.",
                             [("Retry-After", str(fault.retry_after))]), None, suffered
        if fault is not None and fault.kind == "status":
            headers = [("Retry-After", str(fault.retry_after))] if fault.status == 503 else []
            return api_error(fault.status, STATUS_ERROR_CODES.get(fault.status, "UNKNOWN"),
                             f"Injected HTTP {fault.status} from the Databricks stand-in.", headers), None, suffered
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_seconds)
        if fault is not None and fault.kind == "token_expired":
            self.auth.expire(request.headers.get("Authorization"), fault.status)
        response, auth_kind = self._route(request, statement_fault)
        if fault is not None and fault.kind == "drop_response":
            return Response(0, drop=True), auth_kind, suffered
        return response, auth_kind, suffered

    def _route(self, request: Request, statement_fault: Fault | None = None) -> tuple[Response, str | None]:
        path = request.path
        if path == "/.well-known/databricks-config" and request.method == "GET":
            return ok(host_metadata(self.base_url(request), self.settings.workspace_id)), None
        if path == "/oidc/.well-known/oauth-authorization-server" and request.method == "GET":
            return ok(oidc_discovery(f"{self.base_url(request)}/oidc")), None
        if path == "/oidc/v1/token":
            if request.method != "POST":
                return Response(405, to_json({"error": "invalid_request", "error_description": "POST only"})), None
            status, document = self.auth.issue(f"{self.base_url(request)}/oidc", request.body,
                                               request.headers.get("Authorization"))
            return Response(status, to_json(document)), None
        if not path.startswith("/api/"):
            return Response(404, b"<html><body><h2>404 Not Found</h2></body></html>", "text/html"), None
        problem, kind = self.auth.check(request.headers.get("Authorization"))
        if problem is not None:
            return api_error(problem.status, problem.status, problem.message,
                             [("X-Databricks-Reason-Phrase", problem.message)]), kind
        try:
            response = self._api(request, statement_fault)
        except ApiError as exc:
            response = exc.response()
        response.headers.append(("X-Databricks-Org-Id", self.settings.workspace_id))
        return response, kind

    def _api(self, request: Request, statement_fault: Fault | None = None) -> Response:
        path, method = request.path, request.method
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        if path == STATEMENTS and method == "POST":
            return ok(self.statements.execute(_body(request), statement_fault))
        if files_api.serves(path):
            return files_api.handle(self.warehouse.volumes, request, query)
        match = STATEMENT.match(path)
        if match and method == "GET":
            return ok(self.statements.get(match.group(1)).response())
        match = STATEMENT_CHUNK.match(path)
        if match and method == "GET":
            return ok(self.statements.get(match.group(1)).chunk(int(match.group(2))))
        match = STATEMENT_CANCEL.match(path)
        if match and method == "POST":
            self.statements.cancel(match.group(1))
            return ok({})
        match = JOBS.match(path)
        if match:
            answer = self._jobs(match.group(1), method, request, query)
            if answer is not None:
                return answer
        if path == "/api/2.0/sql/warehouses" and method == "GET":
            return ok({"warehouses": [self._warehouse(w) for w in self.settings.warehouse_ids]})
        match = WAREHOUSE.match(path)
        if match and method == "GET":
            if match.group(1) not in self.settings.warehouse_ids:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {match.group(1)} does not exist.")
            return ok(self._warehouse(match.group(1)))
        if path == "/api/2.0/preview/scim/v2/Me" and method == "GET":
            return ok({"id": "1000000000000001", "userName": "mlc-sandbox@example.com", "active": True,
                       "displayName": "ml-connector sandbox", "emails": [{"value": "mlc-sandbox@example.com",
                                                                          "primary": True}]})
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def _jobs(self, action: str, method: str, request: Request, query: dict) -> Response | None:
        base_url, workspace_id = self.base_url(request), self.settings.workspace_id
        if action == "run-now" and method == "POST":
            return ok(self.jobs.run_now(_body(request)))
        if action == "runs/get" and method == "GET":
            return ok(self.jobs.run(query.get("run_id")).as_json(base_url, workspace_id))
        if action == "runs/cancel" and method == "POST":
            self.jobs.cancel(_body(request).get("run_id"))
            return ok({})
        if action == "runs/list" and method == "GET":
            return ok(self.jobs.list_runs(base_url, workspace_id, query.get("job_id")))
        if action == "get" and method == "GET":
            return ok(self.jobs.get_job(query.get("job_id")))
        if action == "list" and method == "GET":
            return ok(self.jobs.list_jobs())
        return None

    def _warehouse(self, warehouse_id: str) -> dict:
        host, _, port = self.host_port.partition(":")
        return {"id": warehouse_id, "name": f"{warehouse_id} (stand-in)", "state": self.settings.warehouse_state,
                "cluster_size": "2X-Small", "warehouse_type": "PRO", "enable_serverless_compute": True,
                "num_clusters": 1, "auto_stop_mins": 10,
                "odbc_params": {"hostname": host, "path": f"/sql/1.0/warehouses/{warehouse_id}",
                                "protocol": self.scheme, "port": int(port or (443 if self.scheme == "https" else 80))}}


class Traffic:
    """What clients sent, in total since start (or the last reset): requests and body bytes, per kind of request
    (statements, files, other); the request log keeps only the latest requests, a benchmark wants them all."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def count(self, request: Request) -> None:
        kind = ("statements" if request.path.startswith(STATEMENTS) else "files" if files_api.serves(request.path)
                else "other")
        with self._lock:
            counts = self._counts.setdefault(kind, {"requests": 0, "bytes": 0})
            counts["requests"] += 1
            counts["bytes"] += len(request.body)

    def totals(self) -> dict:
        with self._lock:
            kinds = {kind: dict(counts) for kind, counts in self._counts.items()}
        return {"requests": sum(c["requests"] for c in kinds.values()),
                "bytes": sum(c["bytes"] for c in kinds.values()), "by_kind": kinds}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _submitted_statement(request: Request) -> str | None:
    """The text of a statement submission (what statement faults match); None for any other request."""
    if request.path != STATEMENTS or request.method != "POST":
        return None
    try:
        statement = json.loads(request.body).get("statement") if request.body else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return statement if isinstance(statement, str) else None


def _body(request: Request) -> dict:
    try:
        body = json.loads(request.body) if request.body else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "MALFORMED_REQUEST", f"Invalid JSON given in the body of the request: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map")
    return body
