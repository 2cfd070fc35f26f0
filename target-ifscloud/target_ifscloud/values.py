"""Record values as IFS takes them, and whether IFS already holds a value, by the property's Edm type: decimals
compare exactly ("12.50" is 12.5), dates and timestamps as points in time, strings as text (IFS keeps an empty
string as null)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from ml_connector_core.ifs_metadata import PropertyInfo

_INTEGER = frozenset({"Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64"})
_DECIMAL = frozenset({"Edm.Decimal", "Edm.Double", "Edm.Single"})


class ValueProblem(ValueError):
    """A record value that cannot be written to its IFS property."""


def to_ifs(prop: PropertyInfo, value: object) -> object:
    """The JSON value to send for ``value``; ValueProblem names the property and the value."""
    if value is None:
        return None
    edm = "Edm.String" if prop.is_enum else prop.edm_type
    try:
        if edm in _DECIMAL:
            if isinstance(value, bool):
                raise ValueError
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
            if not number.is_finite():
                raise ValueError
            return number
        if edm in _INTEGER:
            if isinstance(value, bool):
                raise ValueError
            number = Decimal(str(value).strip())
            if number != number.to_integral_value():
                raise ValueError
            return int(number)
        if edm == "Edm.Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if edm == "Edm.Date":
            if isinstance(value, dt.datetime):
                return value.date().isoformat()
            if isinstance(value, dt.date):
                return value.isoformat()
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        if edm == "Edm.DateTimeOffset":
            return _utc_text(_timestamp(value))
        if edm == "Edm.TimeOfDay":
            return value.isoformat() if isinstance(value, dt.time) else dt.time.fromisoformat(str(value)).isoformat()
        if isinstance(value, (dict, list)):
            return value
        text = str(value)
        if prop.max_length and len(text) > prop.max_length:
            raise ValueProblem(f"'{prop.name}' takes at most {prop.max_length} characters, the record has {len(text)}")
        return text
    except (ValueError, TypeError, InvalidOperation) as exc:
        if isinstance(exc, ValueProblem):
            raise
        raise ValueProblem(f"'{prop.name}' ({edm}) cannot take {value!r}") from None


def same(prop: PropertyInfo, in_ifs: object, wanted: object) -> bool:
    """Whether IFS's value already is the wanted one (``wanted`` as made by ``to_ifs``)."""
    edm = "Edm.String" if prop.is_enum else prop.edm_type
    if edm in ("Edm.String", "Edm.Guid") or prop.is_enum:
        return (in_ifs or None) == (wanted or None)
    if in_ifs is None or wanted is None:
        return in_ifs is None and wanted is None
    try:
        if edm in _DECIMAL or edm in _INTEGER:
            return Decimal(str(in_ifs)) == Decimal(str(wanted))
        if edm == "Edm.DateTimeOffset":
            return _timestamp(in_ifs) == _timestamp(wanted)
        if edm == "Edm.Date":
            return dt.date.fromisoformat(str(in_ifs)[:10]) == dt.date.fromisoformat(str(wanted)[:10])
    except (ValueError, InvalidOperation):
        return False
    return in_ifs == wanted


def _timestamp(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    else:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def _utc_text(moment: dt.datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
