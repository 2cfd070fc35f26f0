"""The OData side of a projection service: service document, $metadata, collections, entities, and the writes
(POST creates, PATCH, bound actions)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import quote, unquote

from ..http import Request, Response
from . import csdl, model, render, writes
from .filters import FilterError, TimeRules
from .query import BadRequest, QueryOptions, encode_skiptoken
from .query import parse as parse_query
from .reader import ELEMENT_LIMIT, ElementLimitExceeded, Reader

JSON = "application/json;odata.metadata=minimal;IEEE754Compatible=false"
# The one protocol version IFS projections speak (their CSDL says Version="4.0"). OData 4.01 Part 1 §8.1.5: every
# response names it in OData-Version; a request's OData-Version the service cannot honour, or an OData-MaxVersion below
# every version it speaks (§8.2.7, §5.1), fails with a 4xx.
ODATA_VERSION = "4.0"
VERSION_NUMBER = re.compile(r"^\s*(\d+\.\d+)\s*$")  # OData-ABNF: 1*DIGIT "." 1*DIGIT


def odata_error(status: int, code: str, message: str, details: list[dict] | None = None,
                headers: list[tuple[str, str]] | None = None) -> Response:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return Response(status, render.to_json({"error": error}), JSON, headers or [])


def malformed(detail: str) -> Response:
    return odata_error(400, "ODP_BAD_REQUEST", "Malformed Request.", [{"code": "ODP_BAD_REQUEST", "message": detail}])


def not_found(message: str = "Resource not found.") -> Response:
    return odata_error(404, "ODP_RESOURCE_NOTFOUND", message)


def metadata_not_found() -> Response:
    """What IFS answers for a projection it does not have (unknown, or missing from this tenant's release)."""
    return odata_error(404, "ODP_NOT_FOUND", "Metadata not found.")


def forbidden(projection: str) -> Response:
    """A projection the service user's permission sets do not grant (profile forbidden_projections)."""
    message = f"Access denied: the projection {projection} is not granted to the user."
    return odata_error(403, "ODP_FORBIDDEN", message,
                       [{"code": "FndProjectionGrant.SRV_NOT_ACCESS", "message": message}])


def expand_refused(how: str, entity: model.Entity, navigation: str) -> Response:
    """$expand of a collection navigation on a set whose server refuses it (profile expand_refused)."""
    if how == "not_implemented":
        return odata_error(501, "ODP_NOT_IMPLEMENTED",
                           f"$expand of the navigation '{navigation}' on {entity.entity_set} is not implemented.")
    return malformed(f"$expand of the navigation '{navigation}' is not supported on {entity.entity_set}: "
                     f"read its entity set filtered by the keys instead")


# Never taken from a client's body: IFS's own bookkeeping, and annotations (names starting with "@").
HOUSEKEEPING = ("luname", "keyref", "Objgrants")


def key_predicate(entity: model.Entity, key: dict) -> str:
    """`OrderNo='P1'` / `Company='10',LineNo=3`: the canonical key segment of an entity's URL, percent-encoded."""
    parts = []
    for name in entity.keys:
        value = key[name]
        literal = "'" + str(value).replace("'", "''") + "'" if entity.field_by_name[name].edm == model.STRING \
            else str(value)
        parts.append(f"{name}={literal}")
    return quote(",".join(parts), safe="=',:")


def version_refusal(request: Request) -> Response | None:
    """400 for an OData-Version other than 4.0 or an OData-MaxVersion below 4.0, naming the header and what to send."""
    sent = request.headers.get("OData-Version")
    if sent is not None and sent.strip() != ODATA_VERSION:
        return malformed(f"OData-Version {sent.strip()!r} is not supported: this service speaks OData "
                         f"{ODATA_VERSION} only; send OData-Version: {ODATA_VERSION} or leave the header out")
    maximum = request.headers.get("OData-MaxVersion")
    if maximum is None:
        return None
    number = VERSION_NUMBER.match(maximum)
    if number is None:
        return malformed(f"OData-MaxVersion {maximum.strip()!r} is not a version number such as {ODATA_VERSION}")
    if Decimal(number.group(1)) < Decimal(ODATA_VERSION):
        return malformed(f"OData-MaxVersion {number.group(1)} is below {ODATA_VERSION}, the only version this "
                         f"service speaks; send OData-MaxVersion: {ODATA_VERSION} or higher")
    return None


def _json_body(request: Request) -> dict | Response:
    try:
        body = json.loads(request.body or b"{}", parse_float=Decimal)
    except ValueError as exc:
        return odata_error(400, "ODP_DESERIALIZATION_ERROR", f"The request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return odata_error(400, "ODP_DESERIALIZATION_ERROR", "The request body must be a JSON object.")
    return body


def _missing_precondition() -> Response:
    return odata_error(428, "ODP_MISSING_PRECONDITION",
                       "The request must be conditional: send If-Match with the record's ETag.")


def _stale(if_match: str, current_etag: str) -> bool:
    offered = [tag.strip() for tag in if_match.split(",")]
    return "*" not in offered and current_etag not in offered


def _precondition_failed() -> Response:
    return odata_error(412, "ODP_PRECONDITION_FAILED", "The record was changed by someone else: read it again and retry.")


def parse_key_predicate(text: str, entity: model.Entity) -> dict:
    """`'P1'` or `Company='10',InvoiceNo='A''B'` or `AccountingYear=2024,...` → typed key values."""
    parts: list[str] = []
    current, in_string, i = [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if in_string and i + 1 < len(text) and text[i + 1] == "'":
                current.append("''")
                i += 2
                continue
            in_string = not in_string
        if ch == "," and not in_string:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    if in_string:
        raise BadRequest(f"Unterminated string in key predicate ({text})")
    named: dict[str, str] = {}
    if len(parts) == 1 and "=" not in parts[0].split("'")[0] and len(entity.keys) == 1:
        named[entity.keys[0]] = parts[0]
    else:
        for part in parts:
            name, eq, literal = part.partition("=")
            if not eq:
                raise BadRequest(f"Invalid key predicate ({text})")
            named[name.strip()] = literal.strip()
    if set(named) != set(entity.keys):
        raise BadRequest(f"The key of {entity.type_name} is ({', '.join(entity.keys)}), not ({', '.join(named)})")
    key = {}
    for name, literal in named.items():
        f = entity.field_by_name[name]
        if f.edm == model.STRING:
            if len(literal) < 2 or not (literal.startswith("'") and literal.endswith("'")):
                raise BadRequest(f"Key '{name}' needs a string literal, not {literal}")
            key[name] = literal[1:-1].replace("''", "'")
        else:
            try:
                key[name] = int(literal)
            except ValueError as exc:
                raise BadRequest(f"Key '{name}' needs an integer, not {literal}") from exc
    return key


class _Refused(Exception):
    """A request the tenant refuses with the answer carried."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


class ODataService:
    """Answers requests below `<prefix>/<Projection>.svc/` for one stand-in."""

    def __init__(self, ifs):
        self.ifs = ifs  # the IfsApp: store, settings, time zone, tenant profile and catalogue
        self.profile = ifs.profile
        self.companies = ifs.profile.allowed_companies

    def handle(self, request: Request, projection: str, service_root: str, rest: str) -> Response:
        refusal = version_refusal(request)
        if refusal is not None:
            return refusal
        service = self.ifs.catalogue.services.get(projection)
        if service is None:
            return metadata_not_found()
        if projection in self.ifs.catalogue.forbidden:
            return forbidden(projection)
        # a tenant may ignore the header: then every request gets local times and local filter literals
        utc = (self.profile.time_zone_header != "ignored"
               and (request.headers.get("X-Ifs-Time-Zone-Aware-Request") or "").strip().lower() == "true")
        context_root = f"{self.ifs.scheme}://{request.headers.get('Host') or self.ifs.host_port}{service_root}"
        try:
            if rest in ("", "/"):
                if request.method != "GET":
                    return odata_error(405, "ODP_METHOD_NOT_ALLOWED", "Method not allowed.")
                return Response(200, render.to_json(csdl.service_document(service, f"{context_root}/$metadata")),
                                JSON)
            if rest == "/$metadata":
                return Response(200, self.ifs.catalogue.metadata(projection), "application/xml")
            return self._resource(request, service, rest.lstrip("/"), context_root, utc)
        except _Refused as refusal:
            return refusal.response
        except BadRequest as exc:
            return malformed(str(exc))
        except FilterError as exc:
            return malformed(str(exc))
        except ElementLimitExceeded:
            return odata_error(500, "ODP_ELEMENT_LIMIT", "The response exceeds the maximum of 5000 elements.")

    def _resource(self, request: Request, service: model.Service, path: str, context_root: str,
                  utc: bool) -> Response:
        segments = path.split("/")
        head = unquote(segments[0])
        set_name, paren, predicate = head.partition("(")
        entity = service.entity_by_set.get(set_name)
        if entity is None:
            return not_found(f"The entity set '{set_name}' does not exist in {service.projection}.")
        rules = TimeRules(utc, self.ifs.zone)
        if not paren:
            if len(segments) == 2 and segments[1] == "$count":
                return self._count(request, service, entity, rules)
            if len(segments) > 1:
                return not_found()
            if request.method == "POST":
                return self._create(request, service, entity, rules, context_root, {})
            if request.method != "GET":
                return odata_error(405, "ODP_METHOD_NOT_ALLOWED", f"{request.method} is not allowed on a collection.")
            return self._collection(request, service, entity, rules, context_root, set_name, None)
        if not predicate.endswith(")"):
            raise BadRequest(f"Invalid key predicate in '{head}'")
        key = parse_key_predicate(predicate[:-1], entity)
        if len(segments) == 2:
            name = unquote(segments[1])
            if "." in name:  # a namespace-qualified bound action
                return self._action(request, entity, key, name, rules)
            navigation = entity.navigation_by_name.get(name)
            if navigation is None or request.method not in ("GET", "POST"):
                return not_found(f"No navigation '{segments[1]}' on {entity.type_name}.")
            target = service.target(navigation)
            if target is None:  # the tenant does not serve the set it leads to
                return not_found(f"The navigation '{name}' on {entity.type_name} has no entity set bound.")
            fixed = {remote: key[local] for local, remote in navigation.key_pairs}
            if request.method == "POST":
                if not navigation.collection:
                    return odata_error(405, "ODP_METHOD_NOT_ALLOWED", f"POST is not allowed on {name}.")
                return self._create(request, service, target, rules, context_root, fixed)
            with self.ifs.store.reader() as conn:
                if self._reader(conn, service, entity, rules).by_key(key) is None:
                    return not_found()
            if not navigation.collection:  # the related keys are this record's: answer the one entity
                return self._entity(request, service, target, fixed, rules, context_root)
            return self._collection(request, service, target, rules, context_root, path, fixed)
        if len(segments) > 2:
            return not_found()
        if request.method == "GET":
            return self._entity(request, service, entity, key, rules, context_root)
        if request.method == "PATCH":
            return self._patch(request, service, entity, key, rules, context_root)
        return odata_error(405, "ODP_METHOD_NOT_ALLOWED", f"{request.method} is not allowed here.")

    def _renderer(self, entity, select, utc, expand: tuple[str, ...] = ()):
        return render.renderer_for(entity, select, utc, self.ifs.zone, expand, self.ifs.objversions)

    def _reader(self, conn, service, entity, rules) -> Reader:
        """Reads as the tenant's service user: only the rows of its allowed companies exist."""
        return Reader(conn, entity, service, rules, self.companies)

    def _options(self, request: Request, service, entity) -> QueryOptions:
        """The query options, or the tenant's refusal of an $expand (profile expand_refused) as an exception."""
        options = parse_query(request.query, entity, service)
        how = self.profile.expand_refused.get(entity.entity_set)
        if how is not None:
            refused = next((e.navigation.name for e in options.expand if e.navigation.collection), None)
            if refused is not None:
                raise _Refused(expand_refused(how, entity, refused))
        return options

    def _count(self, request, service, entity, rules) -> Response:
        options = self._options(request, service, entity)
        if self.profile.count == "absent":
            return odata_error(501, "ODP_NOT_IMPLEMENTED", f"$count is not implemented on {entity.entity_set}.")
        with self.ifs.store.reader() as conn:
            total = self._reader(conn, service, entity, rules).count(options)
        if self.profile.count == "wrong":  # the count stops where the first page does
            total = min(total, self.ifs.settings.page_size)
        return Response(200, str(total).encode(), "text/plain")

    def _collection(self, request: Request, service, entity, rules, context_root: str, resource: str,
                    fixed: dict | None) -> Response:
        options = self._options(request, service, entity)
        settings = self.ifs.settings
        if self.profile.count == "absent":
            options.count = False  # $count=true is accepted and ignored
        next_links = entity.paging == model.NEXT_LINK and self.profile.next_link != "never"
        with self.ifs.store.reader() as conn:
            page = self._reader(conn, service, entity, rules).page(options, settings.page_size, next_links, fixed)
        if page.count is not None and self.profile.count == "wrong":
            page.count = len(page.rows)  # counts the rows of this page only
        expand_names = tuple(e.navigation.name for e in options.expand)
        renderer = self._renderer(entity, options.select, rules.utc, expand_names)
        records = [renderer.record(row) for row in page.rows]
        for expand in options.expand:
            child = self._renderer(expand.target, expand.select, rules.utc)
            name = expand.navigation.name
            for record, children in zip(records, page.expanded[name]):
                if isinstance(children, list):
                    renderer.attach(record, name, [child.record(c) for c in children])
                else:
                    renderer.attach(record, name, child.record(children) if children is not None else None)
        select = f"({','.join(options.select)})" if options.select is not None else ""
        document = {"@odata.context": f"{context_root}/$metadata#{entity.entity_set}{select}"}
        if page.count is not None:
            document["@odata.count"] = page.count
        document["value"] = records
        if page.next_position is not None:
            document["@odata.nextLink"] = _next_link(resource, options, encode_skiptoken(page.next_position))
        return Response(200, render.to_json(document), JSON)

    def _entity(self, request, service, entity, key, rules, context_root) -> Response:
        options = self._options(request, service, entity)
        with self.ifs.store.reader() as conn:
            reader = self._reader(conn, service, entity, rules)
            row = reader.by_key(key)
            if row is None:
                return not_found()
            expanded = {e.navigation.name: reader.children([row], e.navigation)[0] for e in options.expand}
        elements = 1 + sum(len(c) if isinstance(c, list) else c is not None for c in expanded.values())
        if elements > ELEMENT_LIMIT:
            raise ElementLimitExceeded()
        renderer = self._renderer(entity, options.select, rules.utc)
        record = {"@odata.context": f"{context_root}/$metadata#{entity.entity_set}/$entity", **renderer.as_dict(row)}
        for expand in options.expand:
            child = self._renderer(expand.target, expand.select, rules.utc)
            children = expanded[expand.navigation.name]
            if isinstance(children, list):
                record[expand.navigation.name] = [child.record(c) for c in children]
            else:
                record[expand.navigation.name] = child.record(children) if children is not None else None
        return Response(200, render.to_json(record), JSON, [("ETag", renderer.etag(row))])

    def _patch(self, request: Request, service, entity, key, rules: TimeRules, context_root: str) -> Response:
        if_match = request.headers.get("If-Match")
        if not if_match:
            return _missing_precondition()
        body = _json_body(request)
        if isinstance(body, Response):
            return body
        changes = {k: v for k, v in body.items() if not k.startswith("@") and k not in HOUSEKEEPING}
        for name in writes.read_only(entity):
            if name in changes:
                how = "call an action" if name == "Objstate" else "IFS sets it on every change"
                return malformed(f"{name} cannot be changed with PATCH: {how}")
        renderer = self._renderer(entity, None, rules.utc)
        try:
            with self.ifs.store.writer() as conn:
                current = writes.fetch(conn, entity, key)
                if current is None or not writes.visible(entity, current, self.companies):
                    return not_found()
                if _stale(if_match, renderer.etag(current)):
                    return _precondition_failed()
                row = writes.change(conn, entity, key, changes, render.utc_now(), rules.epoch,
                                    self.ifs.store.change_counts, self.companies)
        except writes.WriteError as exc:
            if exc.status == 404:
                return not_found()
            return malformed(str(exc))
        record = {"@odata.context": f"{context_root}/$metadata#{entity.entity_set}/$entity", **renderer.as_dict(row)}
        return Response(200, render.to_json(record), JSON, [("ETag", renderer.etag(row))])

    def _create(self, request: Request, service, entity, rules: TimeRules, context_root: str,
                fixed: dict) -> Response:
        """POST on a set, or on a parent's collection navigation (`fixed` then holds the parent's keys)."""
        body = _json_body(request)
        if isinstance(body, Response):
            return body
        ignored = set(HOUSEKEEPING) | set(writes.read_only(entity))
        record = {k: v for k, v in body.items() if not k.startswith("@") and k not in ignored}
        for name, value in fixed.items():
            if name in record and record[name] != value:
                return malformed(f"'{name}' must be the parent's ({value}) or left out")
            record[name] = value
        renderer = self._renderer(entity, None, rules.utc)
        try:
            with self.ifs.store.writer() as conn:
                row = writes.create(conn, entity, record, render.utc_now(), rules.epoch, self.ifs.store.counters,
                                    strict=True, companies=self.companies)
        except writes.WriteError as exc:
            if exc.status == 409:
                return odata_error(409, "ODP_CONFLICT", str(exc))
            return malformed(str(exc))
        key = dict(zip(entity.keys, renderer.key_values(row)))
        location = f"{context_root}/{entity.entity_set}({key_predicate(entity, key)})"
        document = {"@odata.context": f"{context_root}/$metadata#{entity.entity_set}/$entity",
                    **renderer.as_dict(row)}
        return Response(201, render.to_json(document), JSON, [("ETag", renderer.etag(row)), ("Location", location)])

    def _action(self, request: Request, entity, key, name: str, rules: TimeRules) -> Response:
        """`POST Set(keys)/IfsApp.<Projection>.<Type>_<Action>`: moves Objstate, answers 204 with the new ETag."""
        qualifier = f"{entity.namespace}."
        action = entity.actions.get(name[len(qualifier):]) if name.startswith(qualifier) else None
        if action is None:
            return not_found(f"No action '{name}' is bound to {entity.type_name}.")
        if request.method != "POST":
            return odata_error(405, "ODP_METHOD_NOT_ALLOWED", f"An action is called with POST, not {request.method}.")
        if_match = request.headers.get("If-Match")
        if not if_match:
            return _missing_precondition()
        body = _json_body(request)
        if isinstance(body, Response):
            return body
        if body:
            return malformed(f"{name} takes no parameters, not {', '.join(body)}")
        renderer = self._renderer(entity, None, rules.utc)
        try:
            with self.ifs.store.writer() as conn:
                current = writes.fetch(conn, entity, key)
                if current is None or not writes.visible(entity, current, self.companies):
                    return not_found()
                if _stale(if_match, renderer.etag(current)):
                    return _precondition_failed()
                row = writes.run_action(conn, entity, key, action, render.utc_now(), rules.epoch,
                                        self.ifs.store.change_counts)
        except writes.WriteError as exc:
            if exc.status == 404:
                return not_found()
            return odata_error(400, "ODP_BAD_REQUEST", str(exc), [{"code": "ODP_BAD_REQUEST", "message": str(exc)}])
        return Response(204, b"", JSON, [("ETag", renderer.etag(row))])


def _next_link(resource: str, options: QueryOptions, token: str) -> str:
    kept = [f"{name}={value}" for name, value in options.raw if name not in ("$skiptoken", "$skip", "$top")]
    kept.append(f"$skiptoken={token}")
    return f"{resource}?{'&'.join(kept)}"
