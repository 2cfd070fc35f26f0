"""Stored rows → IFS JSON records: housekeeping fields, ETags, time zones, exact decimals."""

from __future__ import annotations

import base64
import time
from functools import lru_cache
from datetime import datetime, timezone, tzinfo

import msgspec

from . import model
from .store import columns

_OBJID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TABLE_NUMBER = {e.entity_set: 73000 + i * 17 for i, e in enumerate(model.ENTITIES)}

# Decimals leave as JSON numbers with every stored digit: msgspec.Raw embeds the exact text, never a float.
encoder = msgspec.json.Encoder(decimal_format="number")


def _base64_digits(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 64)
        out.append(_OBJID_ALPHABET[digit])
    return "".join(reversed(out))


_OBJID_PREFIX = {name: _base64_digits(number, 6) for name, number in _TABLE_NUMBER.items()}


def objid_text(entity: model.Entity, objid: int) -> str:
    """An Oracle-rowid-like OBJID (18 base64 characters): data object number, then the row's own number."""
    return _OBJID_PREFIX[entity.entity_set] + base64.b64encode(objid.to_bytes(9, "big")).decode()


class _ClockTables:
    """Text of a day number and of a second of the day, built once: formatting a timestamp becomes two lookups."""

    def __init__(self):
        self._days: dict[int, tuple[str, str]] = {}
        self.seconds = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
        self.compact_seconds = [t.replace(":", "") for t in self.seconds]

    def day(self, day: int) -> tuple[str, str]:
        text = self._days.get(day)
        if text is None:
            iso = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
            text = self._days[day] = (iso, iso.replace("-", ""))
        return text


_clock: _ClockTables | None = None


def _tables() -> _ClockTables:
    global _clock
    if _clock is None:
        _clock = _ClockTables()
    return _clock


def objversion_text(epoch: int) -> str:
    clock = _tables()
    day, second = divmod(epoch, 86400)
    return clock.day(day)[1] + clock.compact_seconds[second]


def timestamp_objversion(entity: model.Entity, objid: int, objversion: int) -> str:
    """The usual objversion: the time of the last change, YYYYMMDDHHMMSS (stored as epoch seconds)."""
    return objversion_text(objversion)


class CounterObjversion:
    """The objversion of tenants whose ETags count changes (profile `etag_objversion: counter`): 1 for a record as
    generated or created, one more with every change. Derived at render time from the store's per-record change
    counts, so the cached data set is the same for every profile."""

    def __init__(self, change_counts: dict[tuple[str, int], int]):
        self.change_counts = change_counts

    def __call__(self, entity: model.Entity, objid: int, objversion: int) -> str:
        return str(1 + self.change_counts.get((entity.table, objid), 0))


def etag(entity: model.Entity, objid: int, objversion: int, versions=timestamp_objversion) -> str:
    inner = f'W/"{objid_text(entity, objid)}:{versions(entity, objid, objversion)}"'
    return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'


def keyref(entity: model.Entity, key_values) -> str:
    return "".join(f"{name}={value}^" for name, value in zip(entity.keyref_names, key_values))


class TimestampFormat:
    """Epoch seconds → ISO text: UTC with Z for time-zone-aware requests, else the tenant's local time and offset."""

    def __init__(self, utc: bool, zone: tzinfo | None):
        self.utc = utc
        self.zone = zone
        self._clock = _tables()
        self._offsets: dict[int, tuple[int, str]] = {}  # quarter hour → (offset seconds, "+01:00")

    def _offset(self, epoch: int) -> tuple[int, str]:
        bucket = epoch // 900  # zones change offset on quarter hours at the finest
        found = self._offsets.get(bucket)
        if found is None:
            delta = datetime.fromtimestamp(bucket * 900, self.zone).utcoffset()
            seconds = int(delta.total_seconds())
            sign = "-" if seconds < 0 else "+"
            found = self._offsets[bucket] = (seconds, f"{sign}{abs(seconds) // 3600:02d}:{abs(seconds) // 60 % 60:02d}")
        return found

    def __call__(self, epoch: int | None) -> str | None:
        if epoch is None:
            return None
        if self.utc:
            day, second = divmod(epoch, 86400)
            return self._clock.day(day)[0] + "T" + self._clock.seconds[second] + "Z"
        offset, suffix = self._offset(epoch)
        day, second = divmod(epoch + offset, 86400)
        return self._clock.day(day)[0] + "T" + self._clock.seconds[second] + suffix


class RowRenderer:
    """Renders stored rows (in `store.columns` order) of one entity with a given $select and $expand.

    Per-row code is compiled once per (entity, $select, $expand, time format) and builds msgspec Structs, which are
    cheaper to make and to encode than dicts: a page is a thousand calls of one constructor, which is what keeps the
    stand-in from being the bottleneck of a throughput benchmark. `as_dict` gives the same record as a dict.
    """

    def __init__(self, entity: model.Entity, select: tuple[str, ...] | None, timestamps: TimestampFormat,
                 expand: tuple[str, ...] = (), versions=timestamp_objversion):
        self.entity = entity
        self.versions = versions
        position = {name: i for i, name in enumerate(columns(entity))}
        chosen = select if select is not None else tuple(f.name for f in entity.fields)
        self._key_positions = [position[k] for k in entity.keys]
        self._objid_position = position["_objid"]
        self._objversion_position = position["_objversion"]
        keyref_expr = " + ".join(
            f"'{name}=' + str(row[{position[key]}]) + '^'" for name, key in zip(entity.keyref_names, entity.keys))
        items = [
            ("@odata.etag", f"etag(entity, row[{self._objid_position}], row[{self._objversion_position}], versions)"),
            ("luname", repr(entity.luname)),
            ("keyref", keyref_expr),
            ("Objgrants", "None"),
        ]
        for name in chosen:
            f = entity.field_by_name[name]
            value = f"row[{position[name]}]"
            if f.edm == model.DECIMAL:
                value = f"(None if {value} is None else Raw({value}.encode()))"
            elif f.edm == model.BOOLEAN:
                value = f"(None if {value} is None else {value} == 1)"
            elif f.edm == model.DATETIME:
                value = f"timestamps({value})"
            items.append((name, value))
        self._attribute = {name: f"nav_{name}" for name in expand}
        record_type = msgspec.defstruct(
            f"{entity.type_name}Record",
            [(f"f{i}", object) for i in range(len(items))] + [(a, object, None) for a in self._attribute.values()],
            rename={**{f"f{i}": name for i, (name, _) in enumerate(items)},
                    **{a: name for name, a in self._attribute.items()}},
        )
        values = ", ".join(value for _, value in items)
        pairs = ", ".join(f"{name!r}: {value}" for name, value in items)
        source = (f"def record(row):\n    return Record({values})\n"
                  f"def as_dict(row):\n    return {{{pairs}}}\n")
        namespace = {"etag": etag, "entity": entity, "versions": versions, "Raw": msgspec.Raw, "timestamps": timestamps,
                     "Record": record_type}
        exec(compile(source, f"<render {entity.entity_set}>", "exec"), namespace)
        self.record = namespace["record"]
        self.as_dict = namespace["as_dict"]

    def attach(self, record, navigation: str, value) -> None:
        """Puts an expanded navigation (a list of records, a record or None) on a record made by `record`."""
        setattr(record, self._attribute[navigation], value)

    def etag(self, row: tuple) -> str:
        return etag(self.entity, row[self._objid_position], row[self._objversion_position], self.versions)

    def key_values(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self._key_positions)

    def __call__(self, row: tuple):
        return self.record(row)


@lru_cache(maxsize=256)
def renderer_for(entity: model.Entity, select: tuple[str, ...] | None, utc: bool, zone: tzinfo,
                 expand: tuple[str, ...] = (), versions=timestamp_objversion) -> RowRenderer:
    """A shared renderer per shape of answer: compiling one costs far more than rendering a row. `versions` makes
    the objversion of the ETag (timestamp_objversion, or a run's CounterObjversion)."""
    return RowRenderer(entity, select, TimestampFormat(utc, zone), expand, versions)


def to_json(document) -> bytes:
    return encoder.encode(document)


def utc_now() -> int:
    return int(time.time())


def parse_utc(text: str) -> int:
    """An ISO timestamp from the admin interface, as epoch seconds (no offset = UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())
