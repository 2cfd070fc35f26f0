"""Writing a batch of mapped records to Salesforce: one sObject Collections upsert by external id per 200 records
(``allOrNone: false``), and for every record an audit entry saying what Salesforce did with it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_connector_core.audit import AuditEntry
from ml_connector_core.salesforce import (
    COLLECTION_LIMIT,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceError,
    SalesforceLimitError,
    error_list_text,
)

logger = logging.getLogger(__name__)

INSERT, UPDATE, SKIPPED = "insert", "update", "skipped_duplicate"
_SDC_PREFIX = "_sdc_"


class RecordError(ValueError):
    """A record (or the configuration of its stream) cannot be sent to Salesforce at all; the run stops, naming it."""


@dataclass(frozen=True)
class Route:
    """Where one incoming stream goes."""

    stream: str
    sobject: str
    external_id_field: str
    depends_on: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)


def parse_routes(config: Mapping[str, Any]) -> dict[str, Route]:
    """The ``sobjects`` setting as routes; every problem named (unknown depends_on streams, cycles, missing keys)."""
    raw = config.get("sobjects") or {}
    if not isinstance(raw, Mapping) or not raw:
        raise RecordError("sobjects is empty: map every incoming stream to its object, e.g. {\"sf_supplier_accounts\": "
                          "{\"sobject\": \"Account\", \"external_id_field\": \"IFS_Supplier_Id__c\"}}")
    routes: dict[str, Route] = {}
    problems: list[str] = []
    for stream, spec in raw.items():
        if not isinstance(spec, Mapping):
            problems.append(f"sobjects.{stream} must be an object with sobject and external_id_field")
            continue
        sobject, external_id = spec.get("sobject"), spec.get("external_id_field")
        if not sobject or not external_id:
            problems.append(f"sobjects.{stream} needs both sobject and external_id_field (every write is an upsert by "
                            "an external id, so that reruns never create duplicates)")
            continue
        depends_on = spec.get("depends_on") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        defaults = spec.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            problems.append(f"sobjects.{stream}.defaults must be an object of field → value")
            continue
        routes[stream] = Route(str(stream), str(sobject), str(external_id), tuple(str(d) for d in depends_on), dict(defaults))
    for route in routes.values():
        unknown = [d for d in route.depends_on if d not in routes]
        if unknown:
            problems.append(f"sobjects.{route.stream}.depends_on names streams not in sobjects: {', '.join(unknown)}")
    if not problems:
        cycle = _find_cycle({s: r.depends_on for s, r in routes.items()})
        if cycle:
            problems.append(f"sobjects: depends_on goes round in a circle: {' → '.join(cycle)}")
    if problems:
        raise RecordError("; ".join(problems))
    return routes


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for parent in graph.get(node, ()):
            found = visit(parent)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in graph:
        found = visit(start)
        if found:
            return found
    return None


def relationship_sobject(relationship: str) -> str:
    """The object a relationship points at when it is named after it: ``Account`` → Account, ``Supplier__r`` →
    Supplier__c (custom lookups are named so by default)."""
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship


def salesforce_body(route: Route, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as Salesforce fields: ``_sdc_`` metadata dropped, ``defaults`` filling absent or null fields, and
    flat references (``"Account.IFS_Supplier_Id__c": "S1"``, what stream maps can produce) turned into the nested
    relationship object Salesforce resolves by external id (``"Account": {"IFS_Supplier_Id__c": "S1"}``)."""
    body: dict[str, Any] = {}
    for name, value in record.items():
        if name.startswith(_SDC_PREFIX):
            continue
        if "." in name:
            relationship, _, parent_field = name.partition(".")
            if not relationship or not parent_field or "." in parent_field:
                raise RecordError(f"stream '{route.stream}': property '{name}' is neither a field nor a reference "
                                  "written as <Relationship>.<ExternalIdField>; check the stream map in mappers/")
            if value is None or value == "":
                continue  # no parent named: the reference is left as it is
            body.setdefault(relationship, {})
            if not isinstance(body[relationship], dict):
                raise RecordError(f"stream '{route.stream}': '{relationship}' is given both as a value and as a reference")
            body[relationship][parent_field] = value
            continue
        if isinstance(value, Mapping):
            if not value or any(v is None or v == "" for v in value.values()):
                continue
            existing = body.setdefault(name, {})
            if not isinstance(existing, dict):
                raise RecordError(f"stream '{route.stream}': '{name}' is given both as a value and as a reference")
            existing.update(value)
            continue
        body[name] = value
    for name, value in route.defaults.items():
        if body.get(name) is None:
            body[name] = value
    return body


def references(body: Mapping[str, Any]) -> set[str]:
    """The relationships a body names (nested objects), e.g. {"Account"}."""
    return {name for name, value in body.items() if isinstance(value, Mapping)}


def external_id_of(route: Route, body: Mapping[str, Any]) -> Any:
    value = body.get(route.external_id_field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(f"stream '{route.stream}': a record has no {route.external_id_field} (the external id every "
                          f"{route.sobject} is upserted by); check the stream map in mappers/ or the sobjects setting")
    return value


@dataclass
class Planned:
    record: Mapping[str, Any]
    body: dict[str, Any]
    external_id: Any
    sent: dict[str, Any] | None = None
    salesforce_id: str | None = None

    def key(self, route: Route) -> dict[str, Any]:
        return {route.external_id_field: self.external_id}

    def destination(self, route: Route) -> str:
        where = f"{route.sobject}/{route.external_id_field}/{self.external_id}"
        return f"{where} ({self.salesforce_id})" if self.salesforce_id else where


class RecordWriter:
    """Upserts batches of one stream; remembers the limit error that stopped it, so the caller can stop the run
    after auditing what was and was not done."""

    def __init__(self, client: SalesforceClient, routes: Mapping[str, Route], *, batch_size: int = COLLECTION_LIMIT) -> None:
        self.client = client
        self.routes = dict(routes)
        self.batch_size = max(1, min(int(batch_size), COLLECTION_LIMIT))
        self.stopped: SalesforceLimitError | None = None

    def route(self, stream: str) -> Route:
        route = self.routes.get(stream)
        if route is None:
            raise RecordError(f"stream '{stream}' is not in the sobjects setting: add it "
                              "({\"sobject\": ..., \"external_id_field\": ...}) or leave it out of the stream maps")
        return route

    def plan(self, stream: str, records: Iterable[Mapping[str, Any]]) -> list[Planned]:
        route = self.route(stream)
        planned = []
        for record in records:
            body = salesforce_body(route, record)
            planned.append(Planned(record, body, external_id_of(route, body)))
        return planned

    def parent_streams(self, stream: str, planned: Iterable[Planned]) -> list[str]:
        """Streams whose records must be in Salesforce before this batch: the stream's depends_on, else every stream
        writing an object the batch references."""
        route = self.route(stream)
        if route.depends_on:
            return list(route.depends_on)
        wanted = {relationship_sobject(r) for p in planned for r in references(p.body)}
        return [s for s, r in self.routes.items() if r.sobject in wanted and s != stream]

    def write(self, stream: str, planned: Sequence[Planned]) -> list[AuditEntry]:
        """One audit entry per record. Salesforce refusing a record fails that record; refusing a whole call fails
        its records; the limit fails the rest of the batch (and sets ``stopped``); refused credentials raise."""
        route = self.route(stream)
        latest: dict[Any, Planned] = {}
        superseded: list[Planned] = []
        for one in planned:
            # Salesforce refuses one external id twice in a call (compared case-insensitively, as its text external
            # ids are); the newest version is what it should get.
            identity = str(one.external_id).casefold()
            if identity in latest:
                superseded.append(latest[identity])
            latest[identity] = one
        to_send = list(latest.values())
        entries: list[AuditEntry] = []
        for start in range(0, len(to_send), self.batch_size):
            entries.extend(self._upsert_chunk(route, to_send[start : start + self.batch_size]))
        for old in superseded:
            newest = latest[str(old.external_id).casefold()]
            old.salesforce_id = newest.salesforce_id
            entries.append(AuditEntry(stream=route.stream, key=old.key(route), operation=SKIPPED, outcome="succeeded",
                                      payload=None, source=old.record, destination=old.destination(route)))
        return entries

    def _upsert_chunk(self, route: Route, chunk: list[Planned]) -> list[AuditEntry]:
        for one in chunk:
            one.sent = {"attributes": {"type": route.sobject}, **one.body}
        if self.stopped is not None:
            return [self._failed(route, one, str(self.stopped)) for one in chunk]
        try:
            results = self.client.upsert_collection(route.sobject, route.external_id_field, [p.body for p in chunk])
        except SalesforceAuthError:
            raise
        except SalesforceLimitError as exc:
            self.stopped = exc
            return [self._failed(route, one, str(exc)) for one in chunk]
        except SalesforceError as exc:
            return [self._failed(route, one, f"Salesforce refused the whole call: {exc}") for one in chunk]
        entries = []
        for one, result in zip(chunk, results):
            if result.get("success"):
                one.salesforce_id = result.get("id")
                entries.append(AuditEntry(
                    stream=route.stream, key=one.key(route), operation=INSERT if result.get("created") else UPDATE,
                    outcome="succeeded", payload=one.sent, source=one.record, destination=one.destination(route)))
            else:
                reason = error_list_text(result.get("errors") or []) or "Salesforce gave no reason"
                entries.append(self._failed(route, one, f"Salesforce refused {route.sobject} {route.external_id_field}="
                                                        f"{one.external_id}: {reason}"))
        return entries

    def _failed(self, route: Route, one: Planned, error: str) -> AuditEntry:
        return AuditEntry(stream=route.stream, key=one.key(route), operation=INSERT, outcome="failed", payload=one.sent,
                          source=one.record, destination=one.destination(route), error=error)
