"""IFS Cloud OData v4, as every plugin speaks it: where a tenant's services and token endpoint are, literals, key
predicates, filters, seek conditions and URLs encoded as strict servers require, and the message of an OData error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urljoin

DEFAULT_API_PATH = "/main/ifsapplications/projection/v1"

# RFC 3986 query encoding: a space is %20 (never +); these stay literal because OData syntax reads better with them
# and every server accepts them.
_QUERY_SAFE = "$(),'=:/@*;!"

NUMERIC_TYPES = frozenset(
    {"Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Decimal", "Edm.Double", "Edm.Single"}
)
UNQUOTED_TYPES = NUMERIC_TYPES | {"Edm.Date", "Edm.DateTimeOffset", "Edm.TimeOfDay", "Edm.Guid", "Edm.Boolean"}


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def literal(value: object, edm_type: str = "Edm.String") -> str:
    """Render a Python value as an OData literal of the given Edm type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if edm_type == "Edm.DateTimeOffset":
        return datetime_literal(value)
    if edm_type in UNQUOTED_TYPES:
        if isinstance(value, float):
            value = Decimal(repr(value))
        return str(value)
    return string_literal(str(value))


def datetime_literal(value: object) -> str:
    """A DateTimeOffset literal in UTC with a Z, from a datetime or an ISO string."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def normalize_utc(text: str) -> str:
    """Canonical UTC text for a timestamp, so that bookmarks compare correctly as strings."""
    if text.endswith("Z") and len(text) == 20:
        return text
    return datetime_literal(text)


def any_of(field: str, values: Sequence[object], edm_type: str = "Edm.String") -> str:
    return "(" + " or ".join(f"{field} eq {literal(v, edm_type)}" for v in values) + ")"


def timestamp_as_read(value: object) -> str:
    """A DateTimeOffset literal of a timestamp the server sent, in the server's own words (its offset kept).

    A tenant that ignores X-Ifs-Time-Zone-Aware-Request answers in its own zone and reads a literal's wall-clock time
    in that zone whatever offset it carries: its own text is the one literal both kinds of tenant read as the instant
    it meant."""
    if not isinstance(value, str):
        return literal(value, "Edm.DateTimeOffset")
    parse_datetime(value)  # a timestamp, not text to splice into a filter
    return value


def seek_after(order: Sequence[tuple[str, str]], last_row: Mapping[str, object]) -> str:
    """The condition for rows strictly after ``last_row`` (a row as the server sent it) in the lexicographic order of
    ``order``.

    ``order`` is a list of (field, Edm type). Seeking instead of ``$skip`` keeps paging exact when records change
    while a sync runs: a changed record moves to the end instead of shifting unread rows past the reader.
    """
    field, edm_type = order[0]
    raw = last_row[field]
    value = timestamp_as_read(raw) if edm_type == "Edm.DateTimeOffset" else literal(raw, edm_type)
    if len(order) == 1:
        return f"{field} gt {value}"
    return f"({field} gt {value} or ({field} eq {value} and {seek_after(order[1:], last_row)}))"


def conjunction(*conditions: str | None) -> str | None:
    parts = [c for c in conditions if c]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " and ".join(p if p.startswith("(") and p.endswith(")") else f"({p})" for p in parts)


def query_string(options: Mapping[str, object]) -> str:
    """``$name=value`` pairs percent-encoded per RFC 3986 (a space is %20, never +)."""
    return "&".join(
        f"{quote(name, safe='$')}={quote(str(value), safe=_QUERY_SAFE)}"
        for name, value in options.items()
        if value is not None
    )


def with_query(url: str, options: Mapping[str, object]) -> str:
    query = query_string(options)
    return f"{url}?{query}" if query else url


def resolve_next_link(request_url: str, next_link: str) -> str:
    """An ``@odata.nextLink`` may be absolute or relative to the entity set's service root."""
    base = request_url.split("?", 1)[0]
    return urljoin(base, next_link)


def key_predicate(keys: Mapping[str, object], types: Mapping[str, str]) -> str:
    """``(OrderNo='A1')`` or ``(Company='10',InvoiceNo='X')`` for addressing one entity."""
    if len(keys) == 1:
        ((name, value),) = keys.items()
        return f"({literal(value, types.get(name, 'Edm.String'))})"
    return "(" + ",".join(f"{name}={literal(value, types.get(name, 'Edm.String'))}" for name, value in keys.items()) + ")"


def host_url(base_url: str | None, tenant: str | None = None) -> str | None:
    """The tenant's host: ``base_url`` as given (customer-managed hosts exist), else ``https://<tenant>.ifs.cloud``."""
    base = base_url or (f"https://{tenant}.ifs.cloud" if tenant else "")
    return base.rstrip("/") or None


def token_url(host: str, realm: str) -> str:
    """IFS IAM's token endpoint; the realm is its own setting, never derived from the host name."""
    return f"{host.rstrip('/')}/auth/realms/{realm}/protocol/openid-connect/token"


def service_root(host: str, api_path: str = DEFAULT_API_PATH) -> str:
    return host.rstrip("/") + "/" + api_path.strip("/")


def odata_error(body: Any) -> dict:
    """The ``error`` object of an OData error body (already parsed JSON), or {}."""
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_message(response) -> str:
    """What the server said about a failed request: the OData error's code and message and each detail's, else the
    start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = odata_error(body)
    if not error:
        return (response.text or response.reason or "").strip()[:300]
    parts = [f"{error.get('code', '')} {error.get('message', '')}".strip()]
    parts += [f"{d.get('code', '')} {d.get('message', '')}".strip() for d in error.get("details") or [] if isinstance(d, dict)]
    return "; ".join(p for p in parts if p)
