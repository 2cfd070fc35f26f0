"""Stored rows → IFS JSON records: housekeeping fields, ETags, time zones, exact decimals."""

from __future__ import annotations

import base64
import time
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


def objid_text(entity: model.Entity, objid: int) -> str:
    """An Oracle-rowid-like OBJID: data object, file, block, row."""
    block, row = divmod(objid, 200)
    return _base64_digits(_TABLE_NUMBER[entity.entity_set], 6) + "AAE" + _base64_digits(block, 6) + _base64_digits(row, 3)


def objversion_text(epoch: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch))


def etag(entity: model.Entity, objid: int, objversion: int) -> str:
    inner = f'W/"{objid_text(entity, objid)}:{objversion_text(objversion)}"'
    return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'


def keyref(entity: model.Entity, key_values) -> str:
    return "".join(f"{name}={value}^" for name, value in zip(entity.keyref_names, key_values))


class TimestampFormat:
    """Epoch seconds → ISO text: UTC with Z for time-zone-aware requests, else the tenant's local time and offset."""

    def __init__(self, utc: bool, zone: tzinfo):
        self.utc = utc
        self.zone = zone
        self._cache: dict[int, str] = {}

    def __call__(self, epoch: int | None) -> str | None:
        if epoch is None:
            return None
        text = self._cache.get(epoch)
        if text is None:
            if self.utc:
                text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
            else:
                text = datetime.fromtimestamp(epoch, self.zone).isoformat()
            if len(self._cache) > 100000:
                self._cache.clear()
            self._cache[epoch] = text
        return text


def _decimal(text: str | None):
    return None if text is None else msgspec.Raw(text.encode())


def _boolean(value: int | None):
    return None if value is None else bool(value)


class RowRenderer:
    """Renders stored rows (in `store.columns` order) of one entity with a given $select."""

    def __init__(self, entity: model.Entity, select: tuple[str, ...] | None, timestamps: TimestampFormat):
        self.entity = entity
        position = {name: i for i, name in enumerate(columns(entity))}
        chosen = select if select is not None else tuple(f.name for f in entity.fields)
        self._plan = []
        for name in chosen:
            f = entity.field_by_name[name]
            convert = {model.DECIMAL: _decimal, model.BOOLEAN: _boolean, model.DATETIME: timestamps}.get(f.edm)
            self._plan.append((name, position[name], convert))
        self._key_positions = [position[k] for k in entity.keys]
        self._objid_position = position["_objid"]
        self._objversion_position = position["_objversion"]

    def etag(self, row: tuple) -> str:
        return etag(self.entity, row[self._objid_position], row[self._objversion_position])

    def key_values(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self._key_positions)

    def __call__(self, row: tuple) -> dict:
        record = {
            "@odata.etag": self.etag(row),
            "luname": self.entity.luname,
            "keyref": keyref(self.entity, self.key_values(row)),
            "Objgrants": None,
        }
        for name, index, convert in self._plan:
            value = row[index]
            record[name] = convert(value) if convert is not None else value
        return record


def to_json(document: dict) -> bytes:
    return encoder.encode(document)


def utc_now() -> int:
    return int(time.time())


def parse_utc(text: str) -> int:
    """An ISO timestamp from the admin interface, as epoch seconds (no offset = UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())
