"""Adaptive Cards from records: templates a user edits without code, finance formatting, update and digest cards.

Pure functions only: what is sent is decided here, how it is sent lives in delivery.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams refuses messages above about 28 KB; stay clear of it.
MAX_MESSAGE_BYTES = 26_000
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*(?:\|\s*(\w+)(?:\(([^)]*)\))?)?\s*\}\}")


class TemplateError(ValueError):
    """A card template that cannot be used."""


def load_template(stream: str, templates_dir: str | None) -> dict:
    """The user's template for the stream if present, else the packaged one, else the packaged default."""
    names = [f"{stream}.json", "default.json"]
    for name in names:
        if templates_dir and (Path(templates_dir) / name).is_file():
            return _parse(Path(templates_dir) / name)
    for name in names:
        packaged = resources.files("target_teams") / "templates" / name
        if packaged.is_file():
            return _parse(packaged)
    raise TemplateError(f"no card template for stream '{stream}' and no default.json")


def _parse(path) -> dict:
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TemplateError(f"card template {path} is not valid JSON: {exc}") from None
    if not isinstance(template, dict) or template.get("type") != "AdaptiveCard":
        raise TemplateError(f"card template {path} is not an AdaptiveCard object")
    return template


def render(template: Mapping, record: Mapping, extra: Mapping | None = None) -> dict:
    """Fill every ``{{ field }}`` / ``{{ field | filter(arg) }}`` inside the template's strings.

    Substitution happens in parsed JSON strings, so a value can never break the card's structure.
    """
    values = {**record, **(extra or {})}
    return _walk(copy.deepcopy(dict(template)), values)


def _walk(node: Any, values: Mapping) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, values) for v in node]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: _format(values, m.group(1), m.group(2), m.group(3)), node)
    return node


def _format(values: Mapping, field: str, filter_name: str | None, argument: str | None) -> str:
    value = values.get(field)
    if filter_name is None:
        return "" if value is None else str(value)
    if filter_name == "money":
        return money(value, values.get(argument.strip()) if argument else None)
    if filter_name == "date":
        return date_text(value)
    if filter_name == "default":
        if value not in (None, ""):
            return str(value)
        fallback = (argument or "").strip().strip("'\"")
        return str(values.get(fallback) or "") if fallback in values else fallback  # another field, or literal text
    if filter_name == "parenthesized":
        return f" ({value})" if value not in (None, "") else ""
    if filter_name == "upper":
        return "" if value is None else str(value).upper()
    raise TemplateError(f"unknown template filter '{filter_name}' (money, date, default, parenthesized, upper)")


def money(value: Any, currency: str | None) -> str:
    """1234567.5 SEK → '1,234,567.50 SEK': grouped thousands, two decimals at least, never through float."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    exponent = amount.normalize().as_tuple().exponent  # 1234567.5000 shows as 1,234,567.50, not .5000
    places = max(2, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    text = f"{amount:,.{places}f}"
    return f"{text} {currency}" if currency else text


def date_text(value: Any) -> str:
    if not value:
        return ""
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%d") if len(str(value)) <= 10 else parsed.strftime("%Y-%m-%d %H:%M UTC")


def facts(card: Mapping) -> dict[str, str]:
    """Every FactSet fact of a card, and every text element given an id (such as the amount), title → value: what a
    person reads, and what an update compares."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock" and node.get("id"):
                found[str(node["id"])] = str(node.get("text"))
            if node.get("type") == "FactSet":
                for fact in node.get("facts", []):
                    found[str(fact.get("title"))] = str(fact.get("value"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return found


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return [f"{title}: {before.get(title, '—')} → {value}" for title, value in after.items() if before.get(title) != value]


def with_update_banner(card: Mapping, changed: Sequence[str]) -> dict:
    """The same card, opened by a notice of what changed since the version last posted."""
    updated = copy.deepcopy(dict(card))
    banner = {
        "type": "Container", "style": "warning",
        "items": [{"type": "TextBlock", "text": "Updated", "weight": "Bolder", "wrap": True},
                  *({"type": "TextBlock", "text": line, "wrap": True, "spacing": "None"} for line in changed)],
    }
    updated["body"] = [banner, *updated.get("body", [])]
    return updated


def digest_card(title: str, lines: Sequence[Mapping[str, str]], *, limit: int = 40) -> dict:
    """One card for many records of one run: a row per record with a link, and a count of the rest."""
    shown = list(lines[:limit])
    body: list[dict] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": f"{len(lines)} records need attention", "isSubtle": True, "wrap": True},
    ]
    for line in shown:
        text = line["text"] + (f" — [Open in IFS]({line['url']})" if line.get("url") else "")
        body.append({"type": "TextBlock", "text": text, "wrap": True, "spacing": "Small"})
    if len(lines) > len(shown):
        body.append({"type": "TextBlock", "text": f"… and {len(lines) - len(shown)} more", "isSubtle": True})
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.5", "body": body}


def workflows_message(card: Mapping) -> dict:
    return {"type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": dict(card)}]}


def graph_message(card: Mapping, attachment_id: str) -> dict:
    return {"body": {"contentType": "html", "content": f'<attachment id="{attachment_id}"></attachment>'},
            "attachments": [{"id": attachment_id, "contentType": CARD_CONTENT_TYPE, "contentUrl": None,
                             "content": json.dumps(card, separators=(",", ":"), default=str)}]}


def size_of(message: Mapping) -> int:
    return len(json.dumps(message, separators=(",", ":"), default=str).encode("utf-8"))
