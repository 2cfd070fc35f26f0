"""Reading request values with every problem collected (field paths like `lines[2].glAccount`), exact decimals in and
out, and the API's timestamp and date forms."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

import msgspec

MAX_DECIMAL_PLACES = 10
MAX_DECIMAL = Decimal(10) ** 15  # amounts and quantities stay below a quadrillion
_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_encoder = msgspec.json.Encoder(decimal_format="number")
_decoder = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers with a fraction stay exact


def to_json(document) -> bytes:
    return _encoder.encode(document)


def from_json(data: bytes):
    return _decoder.decode(data)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def render_ms(ms: int) -> str:
    """`2026-11-25T20:15:03.123Z`"""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 timestamp with `Z` or an offset, rounded up to the next whole
    millisecond (so `>=` on millisecond stamps means the same as on the instant given); ValueError otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone (Z or an offset such as +02:00)")
    delta = moment.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000)


class Problems:
    """The problems found in one request body, each `{"code", "field", "message"}`."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, field: str, message: str, code: str = "VALIDATION_FAILED") -> None:
        self.items.append({"code": code, "field": field, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)


def _absent(value) -> bool:
    return value is None


def read_text(doc: dict, name: str, problems: Problems, prefix: str = "", *, required: bool = False,
              max_length: int = 100, pattern: re.Pattern | None = None, shape: str = "") -> str | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        if required:
            problems.add(field, f"{field} is required")
        return None
    if not isinstance(value, str):
        problems.add(field, f"{field} must be a string")
        return None
    if required and not value.strip():
        problems.add(field, f"{field} must not be empty")
        return None
    if len(value) > max_length:
        problems.add(field, f"{field} is {len(value)} characters long; at most {max_length} are allowed")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        problems.add(field, f"{field} must be {shape}, not '{value}'")
        return None
    return value


def read_choice(doc: dict, name: str, choices: tuple[str, ...], problems: Problems, prefix: str = "", *,
                default: str | None = None, required: bool = False) -> str | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        if required:
            problems.add(field, f"{field} is required")
        return default
    if value not in choices:
        problems.add(field, f"{field} must be one of {', '.join(choices)}, not {value!r}")
        return None
    return value


def read_date(doc: dict, name: str, problems: Problems, prefix: str = "", *, required: bool = False) -> str | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        if required:
            problems.add(field, f"{field} is required")
        return None
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    problems.add(field, f"{field} must be a date YYYY-MM-DD, not {value!r}")
    return None


def read_timestamp(doc: dict, name: str, problems: Problems, prefix: str = "") -> int | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        return None
    try:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return parse_timestamp(value)
    except ValueError as exc:
        problems.add(field, f"{field} must be an ISO-8601 timestamp with a time zone ({exc})")
        return None


def read_int(doc: dict, name: str, problems: Problems, prefix: str = "", *, required: bool = False,
             minimum: int = 1) -> int | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        if required:
            problems.add(field, f"{field} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(field, f"{field} must be a whole number, not {value!r}")
        return None
    if value < minimum:
        problems.add(field, f"{field} must be at least {minimum}")
        return None
    return value


def to_decimal(value) -> Decimal:
    """A JSON number or decimal string as an exact Decimal; ValueError with the reason otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        raise ValueError("must be a number or a decimal string such as \"12.50\"")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number.as_tuple().exponent > 0:  # 1E+3 from a JSON exponent: written as 1000
        number = number.quantize(Decimal(1))
    if -number.as_tuple().exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"has more than {MAX_DECIMAL_PLACES} decimal places")
    if abs(number) >= MAX_DECIMAL:
        raise ValueError("is too large")
    return number


def read_decimal(doc: dict, name: str, problems: Problems, prefix: str = "", *, required: bool = False,
                 positive: bool = False, default: Decimal | None = None) -> Decimal | None:
    field = prefix + name
    value = doc.get(name)
    if _absent(value):
        if required:
            problems.add(field, f"{field} is required")
        return default
    try:
        number = to_decimal(value)
    except (ValueError, InvalidOperation) as exc:
        problems.add(field, f"{field} {exc}")
        return None
    if positive and number <= 0:
        problems.add(field, f"{field} must be greater than 0")
        return None
    if not positive and number < 0:
        problems.add(field, f"{field} must not be negative")
        return None
    return number


def read_lines(doc: dict, problems: Problems, *, required: bool) -> list[tuple[str, dict]]:
    """The `lines` list as (path prefix, line object) pairs; problems for a non-list or non-object entries."""
    value = doc.get("lines")
    if _absent(value):
        if required:
            problems.add("lines", "lines is required (at least one line)")
        return []
    if not isinstance(value, list):
        problems.add("lines", "lines must be a list of line objects")
        return []
    if required and not value:
        problems.add("lines", "lines must hold at least one line")
    pairs = []
    for position, line in enumerate(value):
        prefix = f"lines[{position}]."
        if not isinstance(line, dict):
            problems.add(f"lines[{position}]", f"lines[{position}] must be an object")
            continue
        pairs.append((prefix, line))
    return pairs


