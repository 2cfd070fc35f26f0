"""Writing mapped records to JAGGAER: each supplier or purchase order looked up by its IFS key (``externalId``),
created when missing, replaced only when a field we send differs from what JAGGAER holds, and audited with the exact
request sent and the answer received."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from ml_connector_core.audit import AuditEntry, load_json
from ml_connector_core.jaggaer import (
    JaggaerAuthError,
    JaggaerClient,
    JaggaerError,
    error_list_text,
    error_objects,
    response_body,
)

logger = logging.getLogger(__name__)

INSERT, UPDATE, UNCHANGED = "insert", "update", "unchanged"
_SDC_PREFIX = "_sdc_"
# JAGGAER answers what it refuses for a reason of the record with these; anything else (5xx, lost connections after
# every retry) says JAGGAER cannot be written to now, and the run stops.
_RECORD_REFUSALS = (400, 404, 409, 422)
_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]")


class RecordError(ValueError):
    """The configuration, or the shape the stream maps give the records, is wrong; the run stops, naming it."""


@dataclass(frozen=True)
class ObjectKind:
    name: str
    collection: str  # path under /api/v1
    fields: tuple[str, ...]  # what a record may carry (JAGGAER's writable fields)
    required: tuple[str, ...]
    date_fields: tuple[str, ...] = ()


SUPPLIER = ObjectKind("supplier", "suppliers",
                      ("externalId", "name", "country", "currency", "status", "taxId", "paymentTerms", "category"),
                      ("externalId",))
PURCHASE_ORDER = ObjectKind("purchase_order", "purchase-orders",
                            ("externalId", "supplierExternalId", "supplierId", "companyCode", "orderDate", "currency",
                             "buyer", "status", "lines"),
                            ("externalId",), ("orderDate",))
KINDS = {kind.name: kind for kind in (SUPPLIER, PURCHASE_ORDER)}
LINE_FIELDS = ("lineNumber", "description", "quantity", "unitOfMeasure", "unitPrice", "glAccount", "costCenter",
               "deliveryDate")


@dataclass(frozen=True)
class Route:
    """Where one incoming stream goes."""

    stream: str
    kind: ObjectKind


def parse_routes(config: Mapping[str, Any]) -> dict[str, Route]:
    raw = config.get("streams") or {}
    if not isinstance(raw, Mapping) or not raw:
        raise RecordError("streams is empty: map every incoming stream to the JAGGAER object it writes, e.g. "
                          "{\"jaggaer_suppliers\": {\"object\": \"supplier\"}, \"jaggaer_purchase_orders\": "
                          "{\"object\": \"purchase_order\"}}")
    routes, problems = {}, []
    for stream, spec in raw.items():
        kind_name = spec.get("object") if isinstance(spec, Mapping) else spec
        kind = KINDS.get(str(kind_name))
        if kind is None:
            problems.append(f"streams.{stream}.object is '{kind_name}', not one of {', '.join(KINDS)}")
            continue
        routes[str(stream)] = Route(str(stream), kind)
    if problems:
        raise RecordError("; ".join(problems))
    return routes


# --- Records as JAGGAER bodies ---


def _as_date(value: Any) -> Any:
    """IFS dates often arrive as midnight timestamps; JAGGAER's date fields take YYYY-MM-DD."""
    if isinstance(value, str):
        match = _DATE_TIME.match(value)
        if match:
            return match.group(1)
    return value


def parse_lines(value: Any) -> list[dict]:
    """``lines`` as a list of objects, or as its JSON text (stream maps type computed lists as strings)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = load_json(value)
        except ValueError as exc:
            raise ValueError(f"lines is text that is not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(line, Mapping) for line in value):
        raise ValueError("lines must be a list of line objects (or its JSON text)")
    lines = []
    for position, line in enumerate(value):
        unknown = sorted(set(line) - set(LINE_FIELDS))
        if unknown:
            raise ValueError(f"lines[{position}] has fields JAGGAER does not take: {', '.join(unknown)} "
                             f"(a line takes {', '.join(LINE_FIELDS)})")
        line = dict(line)
        if "deliveryDate" in line:
            line["deliveryDate"] = _as_date(line["deliveryDate"])
        lines.append(line)
    return lines


def jaggaer_body(route: Route, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as a JAGGAER body: ``_sdc_`` metadata dropped, dates as dates, ``lines`` decoded. A field JAGGAER
    does not have stops the run: JAGGAER would ignore it, silently losing what the stream map meant to send."""
    kind = route.kind
    body = {name: value for name, value in record.items() if not name.startswith(_SDC_PREFIX)}
    unknown = sorted(set(body) - set(kind.fields))
    if unknown:
        raise RecordError(f"stream '{route.stream}': {', '.join(unknown)} are not fields of a JAGGAER {kind.name} "
                          f"(it takes {', '.join(kind.fields)}); check the stream map in mappers/jaggaer.meltano.yml")
    for name in kind.date_fields:
        if name in body:
            body[name] = _as_date(body[name])
    if body.get("externalId") is None or str(body["externalId"]).strip() == "":
        raise RecordError(f"stream '{route.stream}': a record has no externalId (the IFS key every JAGGAER "
                          f"{kind.name} is found by); check the stream map in mappers/jaggaer.meltano.yml")
    body["externalId"] = str(body["externalId"])
    if kind is PURCHASE_ORDER and "lines" in body:
        body["lines"] = parse_lines(body["lines"])
    return body


# --- Comparing with what JAGGAER holds ---


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def same_value(ours: Any, theirs: Any) -> bool:
    """Exact comparison; amounts as Decimals (``10`` and ``"10.00"`` are the same quantity, ``0.1`` never a float)."""
    if ours in (None, "") and theirs in (None, ""):
        return True
    if _is_number(ours) or _is_number(theirs):
        try:
            return Decimal(str(ours)) == Decimal(str(theirs))
        except (InvalidOperation, ValueError):
            return False
    return ours == theirs


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The fields we send whose value differs from JAGGAER's (``name``, ``lines[2].unitPrice``, ``lines``)."""
    changed = []
    for name, value in ours.items():
        if name == "supplierId" and "supplierExternalId" in ours:
            continue
        current = theirs.get(name)
        if name == "lines":
            changed += _line_differences(value or [], current or [])
        elif not same_value(value, current):
            changed.append(f"{prefix}{name}")
    return changed


def _line_differences(ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]) -> list[str]:
    by_number = {str(line.get("lineNumber")): line for line in theirs if isinstance(line, Mapping)}
    if len(ours) != len(theirs) or {str(line.get("lineNumber")) for line in ours} != set(by_number):
        return ["lines"]
    changed = []
    for line in ours:
        changed += differences(line, by_number[str(line.get("lineNumber"))], f"lines[{line.get('lineNumber')}].")
    return changed


def replacement_body(kind: ObjectKind, ours: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """A PUT replaces every writable field: the ones we do not map (set in JAGGAER by procurement) are sent back as
    JAGGAER holds them, so that an update from IFS never clears them."""
    body = {name: current[name] for name in kind.fields if name in current and name != "lines"}
    if "supplierExternalId" in ours or "supplierId" in ours:
        body.pop("supplierId", None)
        body.pop("supplierExternalId", None)
    if kind is PURCHASE_ORDER and "lines" not in ours:
        body["lines"] = [{k: line.get(k) for k in LINE_FIELDS if k in line} for line in current.get("lines") or []]
    body.update(ours)
    return body


# --- Writing ---


@dataclass
class Planned:
    record: Mapping[str, Any]
    body: dict[str, Any] | None
    external_id: str
    problem: str | None = None  # the record cannot be sent as it is (e.g. lines that are not JSON)

    @property
    def key(self) -> dict[str, Any]:
        return {"externalId": self.external_id}


@dataclass
class Exchange:
    """One request and JAGGAER's answer, as audited."""

    method: str
    path: str
    body: Any = None
    status: int | None = None
    answer: Any = None

    def as_payload(self) -> dict[str, Any]:
        return {"request": {"method": self.method, "path": self.path, "body": self.body},
                "response": {"status": self.status, "body": self.answer}}


@dataclass
class Known:
    """What JAGGAER holds for one externalId, and the exchange that told us."""

    current: dict[str, Any] | None
    exchange: Exchange | None


@dataclass
class _Outcome:
    operation: str
    object_id: str | None
    exchanges: list[Exchange] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    error: str | None = None


class RecordWriter:
    """Writes records one by one (JAGGAER has no bulk write); remembers per run what JAGGAER holds for each externalId
    it has seen, so that a record met twice costs no second lookup."""

    def __init__(self, client: JaggaerClient, routes: Mapping[str, Route]) -> None:
        self.client = client
        self.routes = dict(routes)
        self.known: dict[tuple[str, str], Known] = {}
        self.stopped: JaggaerError | None = None

    def route(self, stream: str) -> Route:
        route = self.routes.get(stream)
        if route is None:
            raise RecordError(f"stream '{stream}' is not in the streams setting: add it ({{\"object\": \"supplier\"}} "
                              "or {\"object\": \"purchase_order\"}) or leave it out of the stream maps")
        return route

    def supplier_streams(self) -> list[str]:
        return [s for s, r in self.routes.items() if r.kind is SUPPLIER]

    def plan(self, stream: str, records: Iterable[Mapping[str, Any]]) -> list[Planned]:
        route = self.route(stream)
        planned = []
        for record in records:
            try:
                body = jaggaer_body(route, record)
            except ValueError as exc:
                if isinstance(exc, RecordError):
                    raise
                planned.append(Planned(record, None, str(record.get("externalId")), problem=str(exc)))
                continue
            planned.append(Planned(record, body, body["externalId"]))
        return planned

    def write(self, stream: str, planned: Sequence[Planned]) -> list[AuditEntry]:
        """One audit entry per record. JAGGAER refusing a record fails that record with JAGGAER's messages; JAGGAER
        unreachable or failing after every retry fails the rest of the batch (and sets ``stopped``); refused
        credentials raise."""
        route = self.route(stream)
        entries = []
        for one in planned:
            if self.stopped is not None:
                entries.append(self._entry(route, one, _Outcome(INSERT, None, error=f"not tried: {self.stopped}")))
                continue
            if one.problem is not None:
                entries.append(self._entry(route, one, _Outcome(INSERT, None, error=f"{route.kind.name} "
                                                                f"externalId={one.external_id}: {one.problem}")))
                continue
            try:
                outcome = self._write_one(route.kind, one)
            except JaggaerAuthError:
                raise
            except JaggaerError as exc:
                self.stopped = exc
                outcome = _Outcome(INSERT, None, error=str(exc))
            entries.append(self._entry(route, one, outcome))
        return entries

    # One record

    def lookup(self, kind: ObjectKind, external_id: str, *, fresh: bool = False) -> Known:
        cache_key = (kind.collection, external_id)
        if not fresh and cache_key in self.known:
            return self.known[cache_key]
        exchange = self._send("GET", kind.collection, params={"externalId": external_id})
        if exchange.status != 200:
            raise JaggaerError(f"looking up {kind.name} externalId={external_id}: HTTP {exchange.status}: "
                               f"{error_list_text(error_objects(exchange.answer)) or exchange.answer}",
                               status=exchange.status)
        items = [i for i in (exchange.answer or {}).get("items") or [] if str(i.get("externalId")) == external_id]
        known = self.known[cache_key] = Known(items[0] if items else None, exchange)
        return known

    def _write_one(self, kind: ObjectKind, one: Planned) -> _Outcome:
        known = self.lookup(kind, one.external_id)
        exchanges: list[Exchange] = []
        if known.current is None:
            created = self._send("POST", kind.collection, json=one.body)
            exchanges.append(created)
            if created.status == 201 or created.status == 200:
                self._remember(kind, one.external_id, created)
                return _Outcome(INSERT, _id_of(created.answer), exchanges)
            if created.status != 409:
                return _Outcome(INSERT, None, exchanges, error=self._refusal(kind, one, created))
            # Created by someone else (or by our own create whose answer was lost) since the lookup: update it.
            known = self.lookup(kind, one.external_id, fresh=True)
            exchanges.append(known.exchange)
            if known.current is None:
                return _Outcome(INSERT, None, exchanges, error=self._refusal(kind, one, created))
        current = known.current
        changed = differences(one.body, current)
        if not changed:
            return _Outcome(UNCHANGED, current.get("id"), exchanges or [known.exchange])
        replaced = self._send("PUT", f"{kind.collection}/{current['id']}", json=replacement_body(kind, one.body, current))
        exchanges.append(replaced)
        if replaced.status == 200:
            self._remember(kind, one.external_id, replaced)
            return _Outcome(UPDATE, current.get("id"), exchanges, changed)
        if replaced.status == 404:
            self.known.pop((kind.collection, one.external_id), None)  # deleted meanwhile: the redo creates it
        return _Outcome(UPDATE, current.get("id"), exchanges, changed, error=self._refusal(kind, one, replaced))

    def _remember(self, kind: ObjectKind, external_id: str, exchange: Exchange) -> None:
        if isinstance(exchange.answer, dict):
            self.known[(kind.collection, external_id)] = Known(exchange.answer, exchange)
            if exchange.answer.get("externalId") not in (None, external_id):
                self.known.pop((kind.collection, external_id), None)

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Exchange:
        api_path = self.client.api_path(path) + (f"?{urlencode(params)}" if params else "")
        response = self.client.request(method, path, params=params, json=json, accept=_RECORD_REFUSALS)
        return Exchange(method, api_path, json, response.status_code, response_body(response))

    @staticmethod
    def _refusal(kind: ObjectKind, one: Planned, exchange: Exchange) -> str:
        reason = error_list_text(error_objects(exchange.answer)) or str(exchange.answer or "no reason given")
        return (f"JAGGAER refused {kind.name} externalId={one.external_id} ({exchange.method} {exchange.path}, "
                f"HTTP {exchange.status}): {reason}")

    def _entry(self, route: Route, one: Planned, outcome: _Outcome) -> AuditEntry:
        collection = route.kind.collection
        destination = (f"{collection}/{outcome.object_id}" if outcome.object_id
                       else f"{collection}/?externalId={one.external_id}")
        payload: dict[str, Any] | None = None
        if outcome.exchanges:
            payload = outcome.exchanges[-1].as_payload()
            if len(outcome.exchanges) > 1:
                payload["before"] = [e.as_payload() for e in outcome.exchanges[:-1]]
            if outcome.differences:
                payload["differences"] = outcome.differences
        return AuditEntry(stream=route.stream, key=one.key, operation=outcome.operation,
                          outcome="failed" if outcome.error else "succeeded", payload=payload, source=one.record,
                          destination=destination, error=outcome.error)


def _id_of(answer: Any) -> str | None:
    return answer.get("id") if isinstance(answer, Mapping) else None


def waits_for_supplier(error: str | None) -> bool:
    """JAGGAER refused the purchase order because its supplier does not exist (yet)."""
    return "UNKNOWN_SUPPLIER" in (error or "")
