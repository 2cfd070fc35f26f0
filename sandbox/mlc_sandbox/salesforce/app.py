"""The Salesforce stand-in as one request handler: the token endpoint, then for /services/data/vNN.N/...: route known
(404, or 410 for a retired version), session (401 INVALID_SESSION_ID), daily API limit (403 REQUEST_LIMIT_EXCEEDED,
`Sforce-Limit-Info` on every answer), injected faults, then the operation (sObject rows, upsert by external id,
collections, the Composite resource, SOQL with paging, updated/deleted, limits)."""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin, composite, ids, replication, soql
from .auth import Sessions, TokenRefused
from .faults import FaultQueue, RequestLog
from .limits import org_limits
from .schema import OBJECTS, PREFIXES, Field, SObject, find_object
from .settings import NEWEST_VERSION, OLDEST_VERSION, RETIRED_VERSIONS, SalesforceSettings, release_label
from .soql import NO_SUCH_COLUMN_HINT
from .store import ROLLED_BACK, MultipleMatches, NotFound, Org, RecordFailure
from .values import render

NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
SESSION_INVALID = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
SERVER_BUSY = [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server Busy"}]
MAX_COLLECTION = 200
MAX_RETRIEVE = 2000  # ids one sObject Collections retrieve may ask for
MAX_OPEN_CURSORS = 500  # older query locators are forgotten (Salesforce also drops cursors; see the doc)
_LOCATOR_CHARS = string.ascii_letters + string.digits
_VERSIONED = re.compile(r"^/services/data/v(\d+)\.(\d+)(/.*)?$")


def to_json(document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def answer(status: int, document=None, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, b"" if document is None else to_json(document), headers=headers or [])


def api_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    error = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return answer(status, [error])


class BadBody(Exception):
    pass


@dataclass
class Call:
    request: Request
    version: str
    parts: list[str]
    user: str
    all_or_none: bool = False  # inside an all-or-none composite request: collections are all-or-none too

    def json_body(self):
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise BadBody(f"Unexpected character: {exc}") from None

    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.request.query, keep_blank_values=True).items()}


@dataclass
class Cursor:
    records: list[dict]
    batch_size: int
    resource: str  # "query" or "queryAll"


class SalesforceApp:
    def __init__(self, settings: SalesforceSettings):
        self.settings = settings
        self.org = Org(settings)
        self.sessions = Sessions(settings)
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.api_used = 0
        self._usage_lock = threading.Lock()
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._cursor_lock = threading.Lock()
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def base_url(self, request: Request | None = None) -> str:
        host = request.headers.get("Host") if request is not None else None
        return f"{self.scheme}://{host or self.host_port}"

    def apply_settings(self, changes: dict) -> None:
        for name in ("session_ttl", "daily_api_limit", "query_batch_size"):
            if name in changes:
                value = int(changes[name])
                if value < 1:
                    raise ValueError(f"'{name}' must be at least 1")
                setattr(self.settings, name, value)

    def set_api_usage(self, used: int) -> None:
        with self._usage_lock:
            self.api_used = max(0, int(used))

    def reset(self) -> None:
        self.org.reset()
        self.sessions.expire_all()
        self.faults.clear()
        self.log.clear()
        self.set_api_usage(0)
        with self._cursor_lock:
            self._cursors.clear()

    # --- the request pipeline -------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        entry = new_entry(request.method, request.path, query=request.query, fault=None)
        response = self._answer(request, entry)
        entry["error_codes"] = _error_codes(response, request.path)
        self.log.finish(entry, response, started)
        return response

    def _answer(self, request: Request, entry: dict) -> Response:
        path = request.path
        if path == "/services/oauth2/token":
            if request.method != "POST":
                return answer(405, NOT_FOUND)
            return self._token(request, entry)
        if path.rstrip("/") == "/services/data" and request.method == "GET":
            return answer(200, [{"label": release_label(major), "url": f"/services/data/v{major}.0",
                                 "version": f"{major}.0"} for major in range(OLDEST_VERSION, NEWEST_VERSION + 1)])
        routed = _route(request)
        if isinstance(routed, Response):
            return routed
        version, parts = routed
        authorization = request.headers.get("Authorization")
        if not self.sessions.use(authorization):
            return answer(401, SESSION_INVALID, headers=[("WWW-Authenticate", "Token")])
        with self._usage_lock:
            limit = self.settings.daily_api_limit
            if self.api_used >= limit:
                return answer(403, LIMIT_EXCEEDED, headers=[("Sforce-Limit-Info", f"api-usage={self.api_used}/{limit}")])
            self.api_used += 1
            usage = [("Sforce-Limit-Info", f"api-usage={self.api_used}/{limit}")]
        fault = self.faults.strike("rest", request.method, path, entry)
        truncated = fault is not None and fault.kind == "truncated"
        if fault is not None and not truncated:
            if fault.kind == "session":
                self.sessions.end(authorization)
                return answer(401, SESSION_INVALID, headers=[("WWW-Authenticate", "Token")])
            else:
                response = _fault_response(fault)
                response.headers = usage + response.headers
                return response
        call = Call(request, version, parts, self.settings.integration_user_id)
        try:
            response = self._dispatch(call)
        except BadBody as exc:
            response = api_error(400, "JSON_PARSER_ERROR", str(exc))
        response.headers = usage + response.headers
        response.truncate = truncated  # carried out; the answer loses its second half on the way
        return response

    def _token(self, request: Request, entry: dict) -> Response:
        fault = self.faults.strike("oauth", request.method, request.path, entry)
        if fault is not None and fault.kind != "truncated":
            if fault.kind == "drop":
                return Response(0, drop=True)
            else:
                status = 503 if fault.kind == "busy" else 403 if fault.kind == "rate_limit" else fault.status
                return answer(status, {"error": "unknown_error", "error_description": "retry your request"},
                              headers=[("Retry-After", str(fault.retry_after))] if status == 503 else [])
        try:
            response = answer(200, self.sessions.issue(request.body, self.base_url(request),
                                                        request.headers.get("Authorization")),
                              headers=[("Cache-Control", "no-cache,no-store")])
        except TokenRefused as refused:
            response = answer(400, refused.body)
        response.truncate = fault is not None  # a truncated fault: the session is issued, its answer cut off
        return response

    def _dispatch(self, call: Call) -> Response:
        parts, method = call.parts, call.request.method
        base = f"/services/data/v{call.version}"
        if not parts:
            return answer(200, {name: f"{base}/{name}" for name in ("sobjects", "query", "queryAll", "composite",
                                                                        "limits")})
        head = parts[0]
        if head == "limits":
            with self.org.lock:
                stored = sum(len(self.org.live(name)) for name in OBJECTS)
            return answer(200, org_limits(self.settings.daily_api_limit, self.api_used, stored))
        if head in ("query", "queryAll"):
            return self._query(call) if len(parts) == 1 else self._next_page(call)
        if head == "composite" and len(parts) == 1:
            if method == "GET":  # the composite resources served (tree, batch and graph are not)
                return answer(200, {"sobjects": f"{base}/composite/sobjects"})
            return self._composite_request(call)
        if head == "composite" and len(parts) == 3 and method in ("GET", "POST"):
            return self._retrieve_collection(call)
        if head == "composite":
            return self._collection_write(call)
        if len(parts) == 1:
            return answer(200, {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
                                "sobjects": [o.summary(call.version) for o in OBJECTS.values()]})
        sobject = find_object(parts[1])
        if sobject is None:
            return answer(404, NOT_FOUND)
        if len(parts) == 2:
            if method == "GET":
                return answer(200, {"objectDescribe": sobject.summary(call.version), "recentItems": []})
            return self._create(call, sobject)
        if len(parts) == 3 and parts[2] == "describe":
            return answer(200, sobject.describe(call.version))
        if len(parts) == 3 and parts[2] in ("updated", "deleted"):
            return self._replication(call, sobject, parts[2])
        if len(parts) == 3:
            return self._by_id(call, sobject, parts[2])
        return self._by_external_id(call, sobject, parts[2], parts[3])

    # --- single records -------------------------------------------------------------------------------------------
    def _record_body(self, call: Call) -> dict:
        body = call.json_body()
        if not isinstance(body, dict):
            raise BadBody("Cannot deserialize instance of sObject from a value that is not a JSON object")
        return body

    def _create(self, call: Call, sobject: SObject) -> Response:
        body = self._record_body(call)
        try:
            row = self.org.create(sobject, body, call.user)
        except RecordFailure as failure:
            return answer(400, [failure.as_api_error()])
        return answer(201, {"id": row["Id"], "success": True, "errors": []})

    def _missing_record(self, sobject: SObject, record_id: str) -> Response:
        try:
            self.org.get(sobject.name, record_id, include_deleted=True)
        except NotFound:
            return answer(404, NOT_FOUND)
        return answer(404, [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}])

    def _render_selected(self, call: Call, sobject: SObject, row: dict) -> Response:
        wanted = call.params().get("fields")
        fields = None
        if wanted:
            try:
                fields = _selected_fields(sobject, wanted.split(","))
            except RecordFailure as failure:
                return answer(400, [failure.as_api_error()])
        return answer(200, self.org.render(sobject, row, call.version, fields))

    def _by_id(self, call: Call, sobject: SObject, record_id: str) -> Response:
        method = call.request.method
        try:
            if method == "GET":
                return self._render_selected(call, sobject, self.org.get(sobject.name, record_id))
            if method == "PATCH":
                body = self._record_body(call)
                self.org.update(sobject, record_id, body, call.user)
                return answer(204)
            self.org.delete(sobject, record_id, call.user)
            return answer(204)
        except NotFound:
            return self._missing_record(sobject, record_id)
        except RecordFailure as failure:
            return answer(400, [failure.as_api_error()])

    def _by_external_id(self, call: Call, sobject: SObject, field_name: str, value: str) -> Response:
        method = call.request.method
        field = sobject.field(field_name)
        if field is not None and field.name == "Id":
            if method == "PATCH":
                try:
                    row = self.org.update(sobject, value, self._record_body(call), call.user)
                except NotFound:
                    return self._missing_record(sobject, value)
                except RecordFailure as failure:
                    return answer(400, [failure.as_api_error()])
                return answer(200, {"id": row["Id"], "success": True, "errors": [], "created": False})
            return self._by_id(call, sobject, value)
        if field is None or not field.external_id:
            return api_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                                               f"{field_name}")
        if method == "PATCH":
            body = self._record_body(call)
            update_only = call.params().get("updateOnly", "").lower() == "true"
            try:
                row, created = self.org.upsert(sobject, field, value, body, call.user, update_only=update_only)
            except MultipleMatches as several:
                return self._several(call, sobject, several.ids)
            except NotFound:
                return answer(404, NOT_FOUND)
            except RecordFailure as failure:
                return answer(400, [failure.as_api_error()])
            return answer(201 if created else 200, {"id": row["Id"], "success": True, "errors": [],
                                                    "created": created})
        with self.org.lock:
            matches = self.org.find_by_external(sobject.name, field.name, value)
            if not matches:
                return answer(404, NOT_FOUND)
            if len(matches) > 1:
                return self._several(call, sobject, [row["Id"] for row in matches])
            if method == "GET":
                return self._render_selected(call, sobject, matches[0])
            try:
                self.org.delete(sobject, matches[0]["Id"], call.user)
            except RecordFailure as failure:
                return answer(400, [failure.as_api_error()])
            return answer(204)

    def _several(self, call: Call, sobject: SObject, found: list[str]) -> Response:
        return answer(300, [f"/services/data/v{call.version}/sobjects/{sobject.name}/{record_id}"
                            for record_id in found])

    # --- collections ----------------------------------------------------------------------------------------------
    def _collection_write(self, call: Call) -> Response:
        parts, method = call.parts, call.request.method
        if method == "DELETE":
            return self._delete_collection(call)
        body = call.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise BadBody("The request body must be an object with a 'records' list")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise BadBody("'allOrNone' must be a boolean")
        all_or_none = all_or_none or call.all_or_none
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            return api_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                                                       "into this call")
        types = []
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                raise BadBody(f"Record {position} is not a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            sobject = find_object(type_name) if isinstance(type_name, str) else None
            if sobject is None:
                return api_error(400, "INVALID_TYPE", f"Record {position} must name its sObject type in "
                                                      f"attributes.type" if type_name is None else
                                                      f"sObject type '{type_name}' is not supported.")
            types.append(sobject)
        if len(parts) == 4 and method == "PATCH":
            sobject = find_object(parts[2])
            if sobject is None:
                return answer(404, NOT_FOUND)
            field = sobject.field(parts[3])
            if field is None or not field.external_id:
                return api_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not "
                                                   f"accessible: {parts[3]}")
            other = next((t for t in types if t is not sobject), None)
            if other is not None:
                return api_error(400, "INVALID_TYPE", f"The records must all be of type {sobject.name}, not "
                                                      f"{other.name}")
            return answer(200, self.org.upsert_collection(sobject, field, records, all_or_none, call.user))
        return answer(200, self._create_or_update_collection(call, types, records, all_or_none))

    def _create_or_update_collection(self, call: Call, types: list[SObject], records: list[dict],
                                     all_or_none: bool) -> list[dict]:
        update = call.request.method == "PATCH"
        results = []
        with self.org.lock:
            mark = self.org.begin()
            try:
                for sobject, record in zip(types, records):
                    body = {k: v for k, v in record.items() if k != "attributes" and (not update or k != "Id")}
                    try:
                        if update:
                            record_id = record.get("Id")
                            if not isinstance(record_id, str) or not ids.well_formed(record_id):
                                raise RecordFailure("MALFORMED_ID", f"malformed id {record_id}")
                            try:
                                row = self.org.update(sobject, record_id, body, call.user)
                            except NotFound:
                                raise RecordFailure("INVALID_CROSS_REFERENCE_KEY",
                                                    "invalid cross reference id") from None
                        else:
                            row = self.org.create(sobject, body, call.user)
                    except RecordFailure as failure:
                        results.append({"success": False, "errors": [failure.as_result_error()]})
                    else:
                        results.append({"id": row["Id"], "success": True, "errors": []})
                if all_or_none and any(not r["success"] for r in results):
                    self.org.rollback(mark)
                    results = [r if not r["success"] else {"success": False, "errors": [ROLLED_BACK.as_result_error()]}
                               for r in results]
            finally:
                self.org.commit()
        return results

    def _delete_collection(self, call: Call) -> Response:
        params = call.params()
        wanted = [i for i in params.get("ids", "").split(",") if i]
        if len(wanted) > MAX_COLLECTION:
            return api_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                                                       "into this call")
        all_or_none = params.get("allOrNone", "false").lower() == "true" or call.all_or_none
        results = []
        with self.org.lock:
            mark = self.org.begin()
            try:
                for record_id in wanted:
                    sobject = OBJECTS.get(PREFIXES.get(record_id[:3], ""))
                    try:
                        if not ids.well_formed(record_id) or sobject is None:
                            raise RecordFailure("MALFORMED_ID", f"malformed id {record_id}")
                        try:
                            self.org.delete(sobject, record_id, call.user)
                        except NotFound:
                            if self._is_deleted(sobject, record_id):
                                raise RecordFailure("ENTITY_IS_DELETED", "entity is deleted") from None
                            raise RecordFailure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id") from None
                    except RecordFailure as failure:
                        results.append({"id": record_id, "success": False, "errors": [failure.as_result_error()]})
                    else:
                        results.append({"id": ids.to18(record_id), "success": True, "errors": []})
                if all_or_none and any(not r["success"] for r in results):
                    self.org.rollback(mark)
                    results = [r if not r["success"] else {"id": r["id"], "success": False,
                                                           "errors": [ROLLED_BACK.as_result_error()]}
                               for r in results]
            finally:
                self.org.commit()
        return answer(200, results)

    def _is_deleted(self, sobject: SObject, record_id: str) -> bool:
        try:
            return self.org.get(sobject.name, record_id, include_deleted=True)["IsDeleted"]
        except NotFound:
            return False

    def _retrieve_collection(self, call: Call) -> Response:
        """sObject Collections retrieve: GET ?ids=...&fields=... or POST {"ids": [...], "fields": [...]}; one
        record per id, in order, null for an id that is malformed, of another object, unknown or deleted."""
        sobject = find_object(call.parts[2])
        if sobject is None:
            return answer(404, NOT_FOUND)
        if call.request.method == "GET":
            params = call.params()
            wanted_ids = [i.strip() for i in params.get("ids", "").split(",") if i.strip()]
            names = [f for f in params.get("fields", "").split(",") if f.strip()]
        else:
            body = call.json_body()
            if not isinstance(body, dict) or not all(isinstance(body.get(key, []), list) and
                                                     all(isinstance(v, str) for v in body.get(key, []))
                                                     for key in ("ids", "fields")):
                raise BadBody("The request body must be an object with 'ids' and 'fields' lists of strings")
            wanted_ids, names = body.get("ids", []), body.get("fields", [])
        for argument, given in (("ids", wanted_ids), ("fields", names)):
            if not given:  # both are required; the wording is the stand-in's
                return api_error(400, "MISSING_ARGUMENT", f"{argument} not specified")
        if len(wanted_ids) > MAX_RETRIEVE:
            return api_error(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot retrieve more than "
                                                       f"{MAX_RETRIEVE} records in this call")
        try:
            fields = _selected_fields(sobject, names)
        except RecordFailure as failure:
            return answer(400, [failure.as_api_error()])
        records = []
        with self.org.lock:
            for record_id in wanted_ids:
                try:
                    found = PREFIXES.get(record_id[:3]) == sobject.name and self.org.get(sobject.name, record_id)
                except NotFound:
                    found = None
                records.append(self.org.render(sobject, found, call.version, fields) if found else None)
        return answer(200, records)

    def _replication(self, call: Call, sobject: SObject, kind: str) -> Response:
        with self.org.lock:
            try:
                document = replication.changes(kind, sobject, call.params(), self.org.all_rows(sobject.name),
                                               self.org.now(), self.org.created)
            except replication.ReplicationRefused as refused:
                return api_error(400, refused.code, refused.message)
        return answer(200, document)

    # --- the Composite resource -----------------------------------------------------------------------------------
    def _composite_request(self, call: Call) -> Response:
        try:
            all_or_none, subrequests = composite.parse(call.json_body())
        except composite.CompositeRefused as refused:
            raise BadBody(str(refused)) from None
        over_limits = composite.limits_exceeded(subrequests)
        if over_limits is not None:
            return answer(200, over_limits)
        with self.org.lock:  # one transaction: an all-or-none request is rolled back as a whole
            mark = self.org.begin()
            try:
                results, roll_back = composite.run(subrequests, all_or_none,
                                                   lambda request: self._subrequest(call, request, all_or_none))
                if roll_back:
                    self.org.rollback(mark)
            finally:
                self.org.commit()
        return answer(200, {"compositeResponse": results})

    def _subrequest(self, call: Call, request: Request, all_or_none: bool) -> Response:
        """One subrequest of a composite request, answered as the API answers it (without a session check or an
        API request of its own: the composite request counted once)."""
        routed = _route(request)
        if isinstance(routed, Response):
            return routed
        version, parts = routed
        if parts and (parts[0] not in ("sobjects", "query", "queryAll", "composite")
                      or parts[0] == "composite" and parts[1:2] != ["sobjects"]):
            return answer(404, NOT_FOUND)  # limits or composite itself are no subrequests (stand-in's answer)
        try:
            return self._dispatch(Call(request, version, parts, call.user, all_or_none=all_or_none))
        except BadBody as exc:
            return api_error(400, "JSON_PARSER_ERROR", str(exc))

    # --- SOQL -----------------------------------------------------------------------------------------------------
    def _batch_size(self, call: Call) -> int:
        options = call.request.headers.get("Sforce-Query-Options") or ""
        match = re.search(r"batchSize\s*=\s*(\d+)", options)
        if match:
            return max(200, min(2000, int(match.group(1))))
        return self.settings.query_batch_size

    def _query(self, call: Call) -> Response:
        text = call.params().get("q", "")
        try:
            query = soql.parse(text, self.org.now())
        except soql.QueryError as error:
            return api_error(400, error.code, error.message)
        include_deleted = call.parts[0] == "queryAll"
        org = self.org
        with org.lock:
            rows = org.all_rows(query.sobject.name) if include_deleted else org.live(query.sobject.name)
            rows.sort(key=lambda row: row["Id"])
            found = soql.run(query, rows, lambda name, record_id: org.rows[name].get(ids.lookup_key(record_id)))
            if query.count_only:  # COUNT(): the number in totalSize, no records
                return answer(200, {"totalSize": len(found), "done": True, "records": []})
            if query.aggregates:
                end = None if query.limit is None else query.offset + query.limit
                records = [query.aggregate(found)][query.offset:end]
            else:
                records = [_render_row(query, row, call.version) for row in found]
        return self._page(call, Cursor(records, self._batch_size(call), call.parts[0]), None, 0)

    def _page(self, call: Call, cursor: Cursor, locator: str | None, offset: int) -> Response:
        end = offset + cursor.batch_size
        document = {"totalSize": len(cursor.records), "done": end >= len(cursor.records),
                    "records": cursor.records[offset:end]}
        if not document["done"]:
            if locator is None:
                locator = "01g" + ids.POD + "".join(secrets.choice(_LOCATOR_CHARS) for _ in range(13))
                with self._cursor_lock:
                    self._cursors[locator] = cursor
                    while len(self._cursors) > MAX_OPEN_CURSORS:
                        self._cursors.popitem(last=False)
            document["nextRecordsUrl"] = f"/services/data/v{call.version}/{cursor.resource}/{locator}-{end}"
        return answer(200, document)

    def _next_page(self, call: Call) -> Response:
        locator, _, offset = call.parts[1].rpartition("-")
        with self._cursor_lock:
            cursor = self._cursors.get(locator)
        if cursor is None or not offset.isdigit() or int(offset) > len(cursor.records):
            return api_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(call, cursor, locator, int(offset))


def _render_row(query: soql.Query, row: dict, version: str) -> dict:
    sobject = query.sobject
    record = {"attributes": {"type": sobject.name,
                             "url": f"/services/data/v{version}/sobjects/{sobject.name}/{row['Id']}"}}
    for path in query.fields:
        if path.relationship is None:
            record[path.field.name] = render(row[path.field.name])
            continue
        name = path.relationship.relationship_name
        parent_row = row["__parents__"].get(path.relationship.name)
        if parent_row is None:
            record[name] = None
            continue
        nested = record.get(name)
        if nested is None:
            nested = record[name] = {"attributes": {
                "type": path.parent.name,
                "url": f"/services/data/v{version}/sobjects/{path.parent.name}/{parent_row['Id']}"}}
        nested[path.field.name] = render(parent_row[path.field.name])
    return record


def _route(request: Request) -> tuple[str, list[str]] | Response:
    """(version, path parts) of an API path, or the answer to a path the API does not serve: 404, or 410 GONE for a
    retired version (as Salesforce answers them), 405 for a method the resource does not take."""
    match = _VERSIONED.match(request.path)
    if match is None or match.group(2) != "0":
        return answer(404, NOT_FOUND)
    major = int(match.group(1))
    if major in RETIRED_VERSIONS:
        return answer(410, [{"errorCode": "GONE", "message": f"API version {major}.0 has been retired and is no "
                                                             f"longer available"}])
    if not OLDEST_VERSION <= major <= NEWEST_VERSION:
        return answer(404, NOT_FOUND)
    parts = [unquote(p) for p in (match.group(3) or "").strip("/").split("/") if p != ""]
    methods = _allowed_methods(parts)
    if methods is None:
        return answer(404, NOT_FOUND)
    if request.method not in methods:
        return api_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are "
                                                    f"{','.join(methods)}")
    return f"{major}.0", parts


def _selected_fields(sobject: SObject, names: list[str]) -> list[Field]:
    """The fields asked for by name (case-insensitive) and then Id, which Salesforce adds to a record read with a
    field list; RecordFailure INVALID_FIELD for a name the object does not have."""
    fields = []
    for name in names:
        field = sobject.field(name.strip())
        if field is None:
            raise RecordFailure("INVALID_FIELD", f"No such column '{name.strip()}' on entity '{sobject.name}'. "
                                                 f"{NO_SUCH_COLUMN_HINT}")
        if field not in fields:
            fields.append(field)
    id_field = sobject.field("Id")
    return fields if id_field in fields else fields + [id_field]


def _allowed_methods(parts: list[str]) -> tuple[str, ...] | None:
    """The methods a path takes; None for a path the API does not have."""
    if not parts:
        return ("GET",)
    head, size = parts[0], len(parts)
    if head == "limits" and size == 1:
        return ("GET",)
    if head in ("query", "queryAll") and size in (1, 2):
        return ("GET",)
    if head == "composite" and size == 1:
        return ("GET", "POST")
    if head == "composite" and parts[1] == "sobjects":
        if size == 2:
            return ("POST", "PATCH", "DELETE")
        if size == 3:
            return ("GET", "POST")  # retrieve (the POST form takes the ids in its body)
        if size == 4:
            return ("PATCH",)
        return None
    if head == "sobjects":
        if size == 1:
            return ("GET",)
        if size == 2:
            return ("GET", "POST")
        if size == 3 and parts[2] in ("describe", "updated", "deleted"):
            return ("GET",)
        if size in (3, 4):
            return ("GET", "PATCH", "DELETE")
    return None


def _fault_response(fault) -> Response:
    if fault.kind == "drop":
        return Response(0, drop=True)
    if fault.kind == "rate_limit":
        return answer(403, LIMIT_EXCEEDED)
    if fault.kind == "busy" or fault.status == 503:
        return answer(503, SERVER_BUSY, headers=[("Retry-After", str(fault.retry_after))])
    return answer(fault.status, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred. Please "
                                  "include this ErrorId if you contact support: 1930224587-65403 (-1136396412)"}])


def _error_codes(response: Response, path: str) -> list[str]:
    """The error codes of an answer, for the request log (collections results included)."""
    if response.drop or not response.body or (response.status < 300 and "/composite" not in path):
        return []
    try:
        document = json.loads(response.body)
    except ValueError:
        return []
    return _codes_in(document)


def _codes_in(document) -> list[str]:
    if isinstance(document, dict) and isinstance(document.get("compositeResponse"), list):
        return [code for result in document["compositeResponse"] if isinstance(result, dict)
                for code in _codes_in(result.get("body"))]
    codes = []
    if isinstance(document, list):
        for item in document:
            if isinstance(item, dict):
                if "errorCode" in item:
                    codes.append(item["errorCode"])
                codes += [e.get("statusCode") for e in item.get("errors") or [] if isinstance(e, dict)]
    return codes
