"""Writing one record into an IFS entity set: read it with its ETag, change only the owned fields that differ (or
create it), move its state through a bound action, and settle ETag conflicts without ever overwriting someone
else's change. Every record ends as one audit entry: succeeded (insert, update, unchanged) or failed with IFS's
reason; a succeeded record whose flag field holds something carries it in the entry's error column ("flagged: ...")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ml_connector_core import ifs_odata
from ml_connector_core.audit import AuditEntry
from ml_connector_core.ifs_metadata import EntitySetInfo, PropertyInfo
from target_ifscloud.client import IfsClient, IfsUnavailable
from target_ifscloud.values import ValueProblem, same, to_ifs

MODES = ("update", "upsert", "create")
STATE_PROPERTY = "Objstate"
# Present on IFS records but never written: a stream carrying them (e.g. read by tap-ifscloud) does not own them.
HOUSEKEEPING = frozenset({"etag", "@odata.etag", "luname", "keyref", "Objgrants"})
# A succeeded entry's error column holds the record's flag after this prefix; a failed entry's holds the failure.
FLAG_PREFIX = "flagged: "


class StreamConfigError(ValueError):
    """The streams setting does not fit the incoming stream or the entity set it names."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix  #: what to change when it is not (only) the setting the message names


@dataclass(frozen=True)
class StreamPlan:
    """What the target does with one incoming stream, checked against the entity set's $metadata."""

    stream: str
    projection: str
    entity: EntitySetInfo
    mode: str
    keys: tuple[str, ...]
    fields: tuple[str, ...]
    state_field: str | None = None
    actions: Mapping[str, str] = field(default_factory=dict)  # desired Objstate → bound action name
    flag_field: str | None = None

    @property
    def entity_set(self) -> str:
        return self.entity.name

    def prop(self, name: str) -> PropertyInfo:
        return self.entity.properties[name]


def plan_stream(stream: str, settings: Mapping[str, Any] | None, key_properties: Sequence[str],
                schema_properties: Sequence[str], entity_of) -> StreamPlan:
    """Check one stream's setting against its SCHEMA and the entity set; ``entity_of(projection, entity_set)``
    returns the EntitySetInfo. Every problem names the stream and the setting or field."""
    where = f"streams.{stream}"
    if settings is None:
        raise StreamConfigError(f"stream '{stream}' is not in the streams setting: add {where} with projection and "
                                "entity_set (or map the stream to a configured name)")
    for required in ("projection", "entity_set"):
        if not settings.get(required):
            raise StreamConfigError(f"{where}.{required} is required")
    mode = settings.get("mode") or "update"
    if mode not in MODES:
        raise StreamConfigError(f"{where}.mode is '{mode}'; it must be one of {', '.join(MODES)}")
    try:
        entity = entity_of(settings["projection"], settings["entity_set"])
    except ValueError as exc:
        raise StreamConfigError(f"{where}: {exc}") from None
    label = f"{settings['projection']}.svc/{entity.name}"
    if not key_properties or sorted(key_properties) != sorted(entity.keys):
        raise StreamConfigError(f"stream '{stream}' has key_properties {list(key_properties)}, but the keys of "
                                f"{label} are {entity.keys}: send the entity's keys as the stream's key properties")
    state_field = settings.get("state_field") or None
    if state_field and schema_properties and state_field not in schema_properties:
        raise StreamConfigError(f"{where}.state_field '{state_field}' is not a property of stream '{stream}'")
    flag_field = settings.get("flag_field") or None
    if flag_field and schema_properties and flag_field not in schema_properties:
        raise StreamConfigError(f"{where}.flag_field '{flag_field}' is not a property of stream '{stream}'")
    if flag_field and flag_field in entity.keys:
        raise StreamConfigError(f"{where}.flag_field '{flag_field}' is a key of {label}: a flag must be a property "
                                "of its own")
    if settings.get("fields") is not None:
        fields = list(settings["fields"])
        where_fields = f"{where}.fields"
    else:
        fields = [name for name in schema_properties if name not in entity.keys and not name.startswith("_sdc_")
                  and name not in (state_field, flag_field) and name not in HOUSEKEEPING]
        where_fields = (f"stream '{stream}' (every property but keys, state_field, flag_field and _sdc_*, as "
                        f"{where}.fields is not set)")
    unknown = [name for name in fields if name not in entity.properties]
    if unknown:
        raise StreamConfigError(
            f"{where_fields}: {label} has no field(s) {', '.join(unknown)}",
            fix=f"add {', '.join(unknown)} to {entity.name} in IFS (a custom field must be published to "
                f"{settings['projection']}), or take it out of {where}.fields")
    read_only = [name for name in fields if entity.properties[name].read_only]
    if read_only:
        raise StreamConfigError(f"{where_fields}: $metadata of {label} marks {', '.join(read_only)} as not writable",
                                fix=f"take {', '.join(read_only)} out of {where}.fields")
    if STATE_PROPERTY in fields:
        raise StreamConfigError(f"{where_fields}: {STATE_PROPERTY} changes only through bound actions; set "
                                f"{where}.state_field and {where}.actions instead")
    keys_named = [name for name in fields if name in entity.keys]
    if keys_named:
        raise StreamConfigError(f"{where_fields}: key field(s) {', '.join(keys_named)} cannot be changed")
    actions = {}
    for desired, action in (settings.get("actions") or {}).items():
        prefix = entity.type_short_name + "_"
        qualified = action if action.startswith(prefix) else prefix + action
        if qualified not in entity.actions:
            known = ", ".join(sorted(a[len(prefix):] if a.startswith(prefix) else a for a in entity.actions)) or "none"
            raise StreamConfigError(f"{where}.actions.{desired}: {label} has no bound action {qualified} "
                                    f"(its actions: {known})",
                                    fix=f"set {where}.actions.{desired} to one of its actions, or grant the IFS "
                                        f"service user the action {qualified}")
        actions[desired] = qualified
    if actions and not state_field:
        raise StreamConfigError(f"{where}.actions needs {where}.state_field: the record property with the wanted state")
    return StreamPlan(stream, settings["projection"], entity, mode, tuple(entity.keys), tuple(fields), state_field,
                      actions, flag_field)


def flag_text(value: Any) -> str | None:
    """What a flag field's value says, or None when it flags nothing: null, false, zero, a blank string and an empty
    list or object are no flag. A list is shown item by item, an object as JSON."""
    if value is None or value is False or (isinstance(value, (int, float, Decimal)) and value == 0):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        items = [flag_text(item) if not isinstance(item, Mapping) else _json_text(item) for item in value]
        return "; ".join(item for item in items if item) or None
    if isinstance(value, Mapping):
        return _json_text(value) if value else None
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def flag_of(entry) -> str | None:
    """The flag a succeeded audit entry carries, if any."""
    if entry.outcome == "succeeded" and entry.error and entry.error.startswith(FLAG_PREFIX):
        return entry.error[len(FLAG_PREFIX):]
    return None


class _Failed(Exception):
    """This record cannot be written; the message goes into its audit entry."""


class RecordWrite:
    """One record's way into IFS, with the requests it sent (secrets never: no headers are kept)."""

    def __init__(self, client: IfsClient, plan: StreamPlan, record: Mapping[str, Any], max_conflict_retries: int):
        self.client = client
        self.plan = plan
        self.record = record
        self.max_conflict_retries = max_conflict_retries
        self.sent: list[dict] = []
        self.writes = 0
        self.etag: str | None = None
        self.key_text = ""

    def run(self) -> AuditEntry:
        plan, record = self.plan, self.record
        key = {name: record.get(name) for name in plan.keys}
        operation, outcome, error, destination = ("update" if plan.mode == "update" else "insert"), "succeeded", None, None
        try:
            missing = [name for name in plan.keys if record.get(name) is None]
            if missing:
                raise _Failed(f"the record has no value for key field(s) {', '.join(missing)}")
            ifs_key = {name: to_ifs(plan.prop(name), record[name]) for name in plan.keys}
            predicate = ifs_odata.key_predicate(ifs_key, {name: plan.entity.edm_type(name) for name in plan.keys})
            destination = f"{plan.projection}.svc/{plan.entity_set}{predicate}"
            self.key_text = ", ".join(f"{name}={value}" for name, value in ifs_key.items())
            wanted = {name: to_ifs(plan.prop(name), record[name]) for name in plan.fields if name in record}
            wanted_state = record.get(plan.state_field) if plan.state_field else None
            entity_url = self.client.url(plan.projection, f"/{plan.entity_set}{predicate}")
            operation = self._write(entity_url, ifs_key, wanted, str(wanted_state) if wanted_state else None)
        except (_Failed, ValueProblem, IfsUnavailable) as exc:
            outcome, error = "failed", str(exc)
        else:
            flag = flag_text(record.get(plan.flag_field)) if plan.flag_field else None
            if flag:
                error = FLAG_PREFIX + flag
        return AuditEntry(stream=plan.stream, key=key, operation=operation, outcome=outcome, payload=self.sent,
                          source=dict(record), version=self.etag, destination=destination,
                          attempts=self.writes, error=error)

    def _write(self, entity_url: str, key: dict, wanted: dict, wanted_state: str | None) -> str:
        plan = self.plan
        current = self._read(entity_url)
        created = changed = False
        if current is None:
            if plan.mode == "update":
                raise _Failed(f"no {plan.entity_set} record with {self.key_text} (mode update changes existing "
                              "records only; upsert or create would create it)")
            current, created = self._create(entity_url, key, wanted)
            if not created and plan.mode == "create":
                return "unchanged"
        elif plan.mode == "create":
            return "unchanged"  # create never changes an existing record
        if not created:
            current, changed = self._update(entity_url, current, wanted)
        if wanted_state and current.get(STATE_PROPERTY) != wanted_state:
            changed = self._move_state(entity_url, current, wanted_state) or changed
        return "insert" if created else "update" if changed else "unchanged"

    # The requests

    def _send(self, method: str, url: str, body: dict | None = None, if_match: str | None = None):
        request = {"method": method, "path": self.client.path_of(url), "body": body}
        if if_match is not None:
            request["if_match"] = if_match
        self.sent.append(request)
        if method != "GET":
            self.writes += 1
        return self.client.send(method, url, body=body, if_match=if_match)

    def _read(self, entity_url: str) -> dict | None:
        answer = self._send("GET", entity_url)
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise _Failed(f"reading {self.plan.entity_set} {self.key_text}: HTTP {answer.status} {answer.message}")
        self.etag = answer.etag
        return answer.body

    def _create(self, entity_url: str, key: dict, wanted: dict) -> tuple[dict, bool]:
        plan = self.plan
        body = {**key, **{name: value for name, value in wanted.items() if value is not None}}
        answer = self._send("POST", self.client.url(plan.projection, f"/{plan.entity_set}"), body)
        if answer.status == 409:
            # Created by someone else since it was read (or by an earlier try whose answer was lost).
            current = self._read(entity_url)
            if current is None:
                raise _Failed(f"IFS reports {plan.entity_set} {self.key_text} as existing but cannot read it: {answer.message}")
            return current, False
        if not answer.ok:
            raise _Failed(f"IFS refused to create {plan.entity_set} {self.key_text}: HTTP {answer.status} {answer.message}")
        if isinstance(answer.body, dict) and answer.etag:
            self.etag = answer.etag
            return answer.body, True
        return self._read(entity_url) or {}, True

    def _update(self, entity_url: str, read: dict, wanted: dict) -> tuple[dict, bool]:
        plan = self.plan
        differing = {name: value for name, value in wanted.items() if not same(plan.prop(name), read.get(name), value)}
        if not differing:
            return read, False
        for _ in range(self.max_conflict_retries + 1):
            answer = self._send("PATCH", entity_url, differing, if_match=self.etag)
            if answer.ok:
                current = answer.body if isinstance(answer.body, dict) else None
                if current is not None and answer.etag:
                    self.etag = answer.etag
                else:
                    current = self._read(entity_url) or {}
                return current, True
            if answer.status != 412:
                raise _Failed(f"IFS refused the change of {', '.join(differing)} on {plan.entity_set} "
                              f"{self.key_text}: HTTP {answer.status} {answer.message}")
            last_refusal = answer.message
            fresh = self._read(entity_url)
            if fresh is None:
                raise _Failed(f"{plan.entity_set} {self.key_text} was deleted in IFS while being written")
            conflicts = [
                f"{name}: IFS now holds {_shown(fresh.get(name))} (it held {_shown(read.get(name))} when read), "
                f"the record wants {_shown(value)}"
                for name, value in wanted.items()
                if not same(plan.prop(name), fresh.get(name), read.get(name))
                and not same(plan.prop(name), fresh.get(name), value)
            ]
            if conflicts:
                raise _Failed("changed in IFS by someone else since it was read, not overwritten: " + "; ".join(conflicts))
            # Someone changed other fields only: the owned ones are applied again on the new version.
            differing = {name: value for name, value in wanted.items() if not same(plan.prop(name), fresh.get(name), value)}
            if not differing:
                return fresh, False
        raise _Failed(f"{plan.entity_set} {self.key_text} kept changing in IFS: still a precondition failure after "
                      f"{self.max_conflict_retries + 1} tries ({last_refusal})")

    def _move_state(self, entity_url: str, current: dict, wanted_state: str) -> bool:
        plan = self.plan
        state = current.get(STATE_PROPERTY)
        action = plan.actions.get(wanted_state)
        if action is None:
            raise _Failed(f"{plan.entity_set} {self.key_text} is {state}, the record wants {wanted_state}: no action "
                          f"is configured for {wanted_state} (streams.{plan.stream}.actions)")
        action_url = f"{entity_url}/IfsApp.{plan.projection}.{action}"
        for _ in range(self.max_conflict_retries + 1):
            answer = self._send("POST", action_url, {}, if_match=self.etag)
            if answer.ok:
                if answer.etag:
                    self.etag = answer.etag
                else:
                    self._read(entity_url)
                return True
            if answer.status != 412:
                raise _Failed(f"IFS refused {action} on {plan.entity_set} {self.key_text} ({state} → {wanted_state}): "
                              f"HTTP {answer.status} {answer.message}")
            last_refusal = answer.message
            fresh = self._read(entity_url)
            if fresh is None:
                raise _Failed(f"{plan.entity_set} {self.key_text} was deleted in IFS while being written")
            if fresh.get(STATE_PROPERTY) == wanted_state:
                return False
            state = fresh.get(STATE_PROPERTY)
        raise _Failed(f"{action} on {plan.entity_set} {self.key_text} kept meeting a newer version: still a "
                      f"precondition failure after {self.max_conflict_retries + 1} tries ({last_refusal})")


def _shown(value: object) -> str:
    if value is None:
        return "null"
    return f"'{value}'" if isinstance(value, str) else str(value)
