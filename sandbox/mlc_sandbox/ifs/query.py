"""OData system query options: parsed strictly from the raw query string and checked against the entity."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote

import msgspec

from . import model


class BadRequest(ValueError):
    """Answered with 400 "Malformed Request."; the message becomes the error detail."""


SYSTEM_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$skiptoken", "$format"}


@dataclass(frozen=True)
class Expand:
    navigation: model.Navigation
    target: model.Entity
    select: tuple[str, ...] | None


@dataclass
class QueryOptions:
    raw: list[tuple[str, str]] = field(default_factory=list)  # (decoded name, value exactly as sent)
    filter: str | None = None
    select: tuple[str, ...] | None = None
    orderby: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    top: int | None = None
    skip: int = 0
    count: bool = False
    expand: tuple[Expand, ...] = ()
    skiptoken: str | None = None


def parse(raw_query: str, entity: model.Entity, service: model.Service) -> QueryOptions:
    if "+" in raw_query:  # ambiguous: a plus sign to OData's grammar, a space to form decoding (docs/ifs-sandbox.md)
        raise BadRequest("The query string contains a literal '+', which this service does not read as a space: "
                         "percent-encode spaces as %20 and plus signs as %2B")
    options = QueryOptions()
    seen: set[str] = set()
    for part in raw_query.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = unquote(raw_name)
        value = unquote(raw_value)
        if not name.startswith("$"):
            continue  # custom query options are allowed and ignored
        if name not in SYSTEM_OPTIONS:
            raise BadRequest(f"The query option '{name}' is not supported")
        if name in seen:
            raise BadRequest(f"The query option '{name}' is given more than once")
        seen.add(name)
        options.raw.append((name, raw_value))
        if name == "$filter":
            options.filter = value
        elif name == "$select":
            options.select = parse_select(value, entity)
        elif name == "$orderby":
            options.orderby = parse_orderby(value, entity)
        elif name == "$top":
            options.top = _non_negative(name, value)
        elif name == "$skip":
            options.skip = _non_negative(name, value)
        elif name == "$count":
            if value not in ("true", "false"):
                raise BadRequest(f"$count must be true or false, not '{value}'")
            options.count = value == "true"
        elif name == "$expand":
            options.expand = parse_expand(value, entity, service)
        elif name == "$skiptoken":
            options.skiptoken = value
        elif name == "$format" and value not in ("json", "application/json"):
            raise BadRequest(f"$format '{value}' is not supported")
    return options


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer, not '{value}'")
    return int(value)


def parse_select(value: str, entity: model.Entity) -> tuple[str, ...] | None:
    names = [n.strip() for n in value.split(",")]
    if "*" in names:
        return None
    for name in names:
        if not name:
            raise BadRequest("Empty property name in $select")
        if name not in entity.field_by_name:
            raise BadRequest(f"Unknown property '{name}' in $select on type '{entity.namespace}.{entity.type_name}'")
    chosen = set(names) | set(entity.keys)
    return tuple(f.name for f in entity.fields if f.name in chosen)


def parse_orderby(value: str, entity: model.Entity) -> tuple[tuple[str, bool], ...]:
    order = []
    for item in value.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise BadRequest(f"Invalid $orderby item '{item.strip()}'")
        if words[0] not in entity.field_by_name:
            raise BadRequest(
                f"Unknown property '{words[0]}' in $orderby on type '{entity.namespace}.{entity.type_name}'")
        order.append((words[0], len(words) == 2 and words[1] == "desc"))
    return tuple(order)


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise BadRequest("Unbalanced parentheses in $expand")
        if ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise BadRequest("Unbalanced parentheses in $expand")
    parts.append("".join(current))
    return parts


def parse_expand(value: str, entity: model.Entity, service: model.Service) -> tuple[Expand, ...]:
    expands = []
    for item in _split_top_level(value, ","):
        item = item.strip()
        name, _, rest = item.partition("(")
        name = name.strip()
        navigation = entity.navigation_by_name.get(name)
        if navigation is None:
            raise BadRequest(f"Unknown navigation property '{name}' in $expand on type '{entity.type_name}'")
        target = service.target(navigation)
        if target is None:  # a tenant without the target set: the navigation has no binding
            raise BadRequest(f"The navigation property '{name}' on type '{entity.type_name}' has no entity set "
                             f"bound in {service.projection} and cannot be expanded")
        select = None
        if rest:
            if not rest.endswith(")"):
                raise BadRequest(f"Invalid $expand item '{item}'")
            for option in _split_top_level(rest[:-1], ";"):
                option_name, _, option_value = option.strip().partition("=")
                if option_name != "$select":
                    raise BadRequest(f"The option '{option_name}' is not supported inside $expand")
                select = parse_select(option_value, target)
        expands.append(Expand(navigation, target, select))
    return tuple(expands)


# --- skiptoken: where the next page starts -------------------------------------------------------------------------


def encode_skiptoken(position: dict) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_skiptoken(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        position = msgspec.json.decode(base64.urlsafe_b64decode(padded))
    except (ValueError, msgspec.DecodeError) as exc:
        raise BadRequest(f"Invalid $skiptoken '{token}'") from exc
    if not isinstance(position, dict):
        raise BadRequest(f"Invalid $skiptoken '{token}'")
    return position
