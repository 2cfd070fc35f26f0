"""Databricks' view of result columns and values: DuckDB types as Databricks type names, values as the strings
the JSON_ARRAY format carries (decimals exact, timestamps in UTC)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal

import duckdb


@dataclass(frozen=True)
class ColumnType:
    type_name: str  # ColumnInfoTypeName: LONG, DECIMAL, STRING, TIMESTAMP, ...
    type_text: str  # the SQL spelling: BIGINT, DECIMAL(38,6), STRING, ARRAY<INT>, ...
    precision: int | None = None
    scale: int | None = None

    @property
    def describe_text(self) -> str:
        """How DESCRIBE TABLE spells it: lower case (`decimal(38,6)`, `array<int>`)."""
        return self.type_text.lower()


_SIMPLE = {
    "boolean": ("BOOLEAN", "BOOLEAN"),
    "tinyint": ("BYTE", "TINYINT"),
    "smallint": ("SHORT", "SMALLINT"),
    "integer": ("INT", "INT"),
    "bigint": ("LONG", "BIGINT"),
    # DuckDB widens integer sums to HUGEINT where Databricks keeps BIGINT
    "hugeint": ("LONG", "BIGINT"),
    "utinyint": ("SHORT", "SMALLINT"),
    "usmallint": ("INT", "INT"),
    "uinteger": ("LONG", "BIGINT"),
    "ubigint": ("DECIMAL", "DECIMAL(20,0)"),
    "uhugeint": ("DECIMAL", "DECIMAL(38,0)"),
    "float": ("FLOAT", "FLOAT"),
    "double": ("DOUBLE", "DOUBLE"),
    "varchar": ("STRING", "STRING"),
    "uuid": ("STRING", "STRING"),
    "enum": ("STRING", "STRING"),
    "time": ("STRING", "STRING"),
    "blob": ("BINARY", "BINARY"),
    "date": ("DATE", "DATE"),
    "timestamp with time zone": ("TIMESTAMP", "TIMESTAMP"),
    "timestamp": ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
    "timestamp_ms": ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
    "timestamp_ns": ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
    "timestamp_s": ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
    "interval": ("INTERVAL", "INTERVAL DAY TO SECOND"),
    "null": ("NULL", "VOID"),
}


def column_type(duck_type: duckdb.typing.DuckDBPyType) -> ColumnType:
    kind = duck_type.id
    if kind == "decimal":
        precision, scale = (value for _, value in duck_type.children)
        return ColumnType("DECIMAL", f"DECIMAL({precision},{scale})", precision, scale)
    if kind in ("list", "array"):
        return ColumnType("ARRAY", f"ARRAY<{column_type(duck_type.children[0][1]).type_text}>")
    if kind == "map":
        key, value = (column_type(t).type_text for _, t in duck_type.children)
        return ColumnType("MAP", f"MAP<{key}, {value}>")
    if kind == "struct":
        fields = ", ".join(f"{name}: {column_type(t).type_text}" for name, t in duck_type.children)
        return ColumnType("STRUCT", f"STRUCT<{fields}>")
    type_name, type_text = _SIMPLE.get(kind, ("STRING", "STRING"))
    return ColumnType(type_name, type_text)


def manifest_column(name: str, position: int, ctype: ColumnType) -> dict:
    column = {"name": name, "type_text": ctype.type_text, "type_name": ctype.type_name, "position": position}
    if ctype.precision is not None:
        column["type_precision"], column["type_scale"] = ctype.precision, ctype.scale
    return column


def java_double(value: float) -> str:
    """Double.toString, which is how Databricks prints DOUBLE and FLOAT values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{len(digits) - 1 + exponent}"


def _timestamp_utc(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    return text + ("Z" if value.tzinfo is not None else "")


def render(value) -> str | None:
    """One JSON_ARRAY cell: the string form of a value, or None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return _timestamp_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.timedelta):
        return _interval(value)
    if isinstance(value, (list, tuple, dict)):
        return _json(value)
    return str(value)


def _interval(value: dt.timedelta) -> str:
    total = value.days * 86400 + value.seconds + value.microseconds / 1e6
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"INTERVAL '{sign}{int(days)} {int(hours):02d}:{int(minutes):02d}:{seconds:09.6f}' DAY TO SECOND"


def _json(value) -> str:
    """Nested values as compact JSON, decimals with their exact digits."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return render(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else json.dumps(java_double(value))
    return json.dumps(render(value), ensure_ascii=False)
