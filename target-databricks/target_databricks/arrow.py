"""Singer JSON schemas and records as Arrow tables: exact decimals, UTC timestamps, nested values as JSON text."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from decimal import Decimal

import msgspec
import pyarrow as pa

from target_databricks.sql import sql_type  # the column's type named as Databricks names it

_json = msgspec.json.Encoder(decimal_format="number", order="sorted")
MAX_DECIMAL_PRECISION = 38


class RecordValueError(ValueError):
    """A record value that cannot be stored exactly in its column."""


_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, ArithmeticError)


def _types(schema: Mapping) -> set[str]:
    declared = schema.get("type", [])
    if isinstance(declared, str):
        declared = [declared]
    types = set(declared) - {"null"}
    for option in schema.get("anyOf", []):
        types |= _types(option)
    return types


def column_type(schema: Mapping, *, decimal_scale: int) -> pa.DataType:
    """The Arrow (and so Delta) type of one JSON schema property."""
    types = _types(schema)
    if types == {"string"}:
        if schema.get("format") == "date-time":
            return pa.timestamp("us", tz="UTC")
        if schema.get("format") == "date":
            return pa.date32()
        return pa.string()
    if types == {"integer"}:
        return pa.int64()
    if types == {"boolean"}:
        return pa.bool_()
    if types <= {"number", "integer"} and types:
        if schema.get("x-sql-datatype") in ("float", "double", "real"):
            return pa.float64()
        sizes = schema.get("x-sql-datatype-properties") or {}
        precision = min(int(sizes.get("precision") or MAX_DECIMAL_PRECISION), MAX_DECIMAL_PRECISION)
        scale = int(sizes["scale"]) if isinstance(sizes.get("scale"), int) else decimal_scale
        return pa.decimal128(precision, min(scale, precision))
    return pa.string()  # objects, arrays and anything untyped: exact JSON text


def arrow_schema(properties: Mapping[str, Mapping], *, decimal_scale: int) -> pa.Schema:
    return pa.schema([pa.field(name, column_type(prop, decimal_scale=decimal_scale)) for name, prop in properties.items()])


def to_table(records: list[dict], schema: pa.Schema, *, stream: str, extra: Mapping[str, list] | None = None) -> pa.Table:
    """Columns built one at a time; RecordValueError names the first column a value does not fit (``unfit_values``
    then finds each record with such a value). ``extra``: the values of columns the records do not hold (one per
    record), given apart so that a batch's records are not copied to add them."""
    extra = extra or {}
    # Transposed row by row with map and zip, which loop in C: a column at a time cost a Python step per value.
    names = [field.name for field in schema if field.name not in extra]
    rows = [tuple(map(record.get, names)) for record in records]
    held = dict(zip(names, map(list, zip(*rows)))) if rows else {name: [] for name in names}
    del rows
    columns = []
    for field in schema:
        values = extra[field.name] if field.name in extra else held.pop(field.name)
        try:
            columns.append(_convert(values, field.type))
        except _CONVERSION_ERRORS as exc:
            raise RecordValueError(f"stream '{stream}': a value does not fit column {field.name} "
                                   f"({sql_type(field.type)}): {exc}") from None
    return pa.Table.from_arrays(columns, schema=schema)


def unfit_values(records: list[dict], schema: pa.Schema) -> dict[int, tuple[str, str]]:
    """Every record with a value that does not fit its column, by position in ``records``: (field, reason) of its
    first such value. Columns that convert as a whole are not looked at value by value."""
    unfit: dict[int, tuple[str, str]] = {}
    for field in schema:
        values = [record.get(field.name) for record in records]
        try:
            _convert(values, field.type)
            continue
        except _CONVERSION_ERRORS:
            pass
        for index, value in enumerate(values):
            if index not in unfit and (reason := _unfit(value, field.type)) is not None:
                unfit[index] = (field.name, reason)
    return unfit


def _unfit(value: object, kind: pa.DataType) -> str | None:
    """Why the value does not fit a column of this type, or None when it does."""
    try:
        _convert([value], kind)
    except _CONVERSION_ERRORS as cause:
        shown = str(value) if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool) else repr(value)
        why = _decimal_misfit(value, kind) if pa.types.is_decimal(kind) else None
        return f"value {shown} does not fit {sql_type(kind)} ({why or cause})"
    return None


def _decimal_misfit(value: object, kind: pa.Decimal128Type) -> str | None:
    """Which limit of DECIMAL(p,s) a number breaks, in words; None when it is not a number at all."""
    try:
        number = _as_decimal(value)
    except (TypeError, ArithmeticError, ValueError):
        return None
    if number is None or not number.is_finite():
        return None
    whole_digits = len(str(int(abs(number)))) if abs(number) >= 1 else 0
    decimals = max(0, -number.normalize().as_tuple().exponent)
    if whole_digits > kind.precision - kind.scale:
        return f"{whole_digits} digits before the point, it holds {kind.precision - kind.scale}"
    if decimals > kind.scale:
        return f"{decimals} decimals, it keeps {kind.scale} and never rounds"
    return None




def _convert(values: list, kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind) or pa.types.is_date32(kind):
        # The SDK may already have parsed ISO strings into date/datetime objects; both forms end as UTC.
        return _text(values, _as_iso).cast(kind)
    if pa.types.is_string(kind):
        return _text(values, _as_text)
    if pa.types.is_decimal(kind):
        if all(v is None or type(v) is Decimal for v in values):  # JSON numbers as the SDK parses them: in bulk
            return pa.array(values, kind)
        return pa.array([_as_decimal(v) for v in values], kind)
    return pa.array(values, kind)


def _text(values: list, as_text) -> pa.Array:
    """Values that are all text (or null) in bulk; otherwise each one through ``as_text``."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([as_text(v) for v in values], pa.string())


def _as_iso(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not a date or timestamp: {type(value).__name__}")


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _json.encode(value).decode()


def _as_decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (int, str)):
        return Decimal(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def row_fingerprint(record: Mapping) -> str:
    """What the source said about the record, without Singer's per-run metadata (a deletion is not per-run: it counts):
    equal means unchanged."""
    encoded = _json.encode(record)
    if b'"_sdc_' in encoded:  # most records hold no Singer metadata: the filtered copy only for those that may
        payload = {k: v for k, v in record.items() if not k.startswith("_sdc_") or k == "_sdc_deleted_at"}
        encoded = _json.encode(payload)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()
