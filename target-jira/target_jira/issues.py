"""What an IFS record should look like as a Jira issue, and what differs from the issue as it is. Pure functions only:
no HTTP here, so every rule can be read and tested on its own."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

SUMMARY_LIMIT = 255
LABEL_LIMIT = 255
# Jira labels cannot hold spaces; colons, quotes and commas make JQL and the label picker awkward.
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

#: The rows of the description table, in order: (record property, label shown).
DESCRIPTION_ROWS: tuple[tuple[str, str], ...] = (
    ("ifs_key", "IFS key"),
    ("company", "Company"),
    ("site", "Site"),
    ("tier_or_category", "Tier / category"),
    ("gl_account", "GL account"),
    ("cost_center", "Cost center"),
    ("amount", "Amount"),
    ("status", "IFS status"),
)
FOOTER = "Kept in step with IFS by ml-connector: changes in IFS replace this description."


class RecordError(ValueError):
    """A record the target cannot turn into an issue (a mapping problem: fix mappers/ or the settings)."""


def issue_label(ifs_key: str, prefix: str = "ifs-") -> str:
    """The label that marks the issue of an IFS key: ``PurchaseOrder:P1000123`` → ``ifs-PurchaseOrder-P1000123``."""
    label = prefix + _LABEL_UNSAFE.sub("-", ifs_key).strip("-")
    if len(label) > LABEL_LIMIT:
        digest = hashlib.sha256(ifs_key.encode("utf-8")).hexdigest()[:16]
        label = label[: LABEL_LIMIT - len(digest) - 1] + "-" + digest
    return label


def one_line_summary(summary: str) -> str:
    """Jira refuses summaries with line breaks or over 255 characters."""
    text = " ".join(str(summary).split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def format_amount(amount: Any, currency: str | None = None) -> str:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return f"{amount} {currency or ''}".strip()
    text = f"{value:,.2f}" if value == value.quantize(Decimal("0.01")) else f"{value:,f}"
    return f"{text} {currency}" if currency else text


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value if v is not None)
    text = " ".join(str(value).split())
    return text or None


def _text(text: str, *marks: dict) -> dict:
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = list(marks)
    return node


def _cell(kind: str, text: str) -> dict:
    return {"type": kind, "content": [{"type": "paragraph", "content": [_text(text)]}]}


def description_fields(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """``description_fields`` as an object, or as that object's JSON text (what a stream map's ``json.dumps({...})``
    gives: stream maps type every other computed object as a string)."""
    value = record.get("description_fields")
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise RecordError(f"record {record.get('ifs_key')!r}: description_fields must be an object of label → value "
                          f"(or its JSON text), not {str(record.get('description_fields'))[:80]!r}")
    return value


def description_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, label in DESCRIPTION_ROWS:
        value = record.get(name)
        shown = format_amount(value, record.get("currency")) if name == "amount" and value is not None else _shown(value)
        if shown:
            rows.append((label, shown))
    for label, value in description_fields(record).items():
        shown = _shown(value)
        if shown and _shown(label):
            rows.append((_shown(label), shown))  # type: ignore[arg-type]
    return rows


def _bullet(label: str, value: str) -> dict:
    return {"type": "listItem", "content": [
        {"type": "paragraph", "content": [_text(f"{label}: ", {"type": "strong"}), _text(value)]}
    ]}


def description_document(record: Mapping[str, Any], layout: str = "table") -> dict:
    """The issue description as an Atlassian Document: a heading, a link back to IFS, and the order's key data as a
    two-column table (``layout="table"``) or a bullet list (``"bullets"``)."""
    content: list[dict] = [
        {"type": "heading", "attrs": {"level": 2}, "content": [_text(one_line_summary(record["summary"]))]},
    ]
    if record.get("ifs_url"):
        link = {"type": "link", "attrs": {"href": str(record["ifs_url"])}}
        content.append({"type": "paragraph", "content": [_text("Open in IFS", link, {"type": "strong"})]})
    rows = description_rows(record)
    if rows and layout == "bullets":
        content.append({"type": "bulletList", "content": [_bullet(label, value) for label, value in rows]})
    elif rows:
        content.append({
            "type": "table",
            "attrs": {"isNumberColumnEnabled": False, "layout": "default"},
            "content": [
                {"type": "tableRow", "content": [_cell("tableHeader", label), _cell("tableCell", value)]}
                for label, value in rows
            ],
        })
    content.append({"type": "paragraph", "content": [_text(FOOTER, {"type": "em"})]})
    return {"type": "doc", "version": 1, "content": content}


def document_essence(document: Any) -> list[tuple]:
    """What a reader sees in a document: node types, texts, link targets and marks, without attributes Jira may add
    or reorder (local ids, layout), so that a description Jira stored is equal to the one we would send."""
    found: list[tuple] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, Mapping):
            return
        kind = node.get("type")
        if kind == "text":
            marks = tuple(sorted(
                (str(m.get("type")), str((m.get("attrs") or {}).get("href", ""))) for m in node.get("marks") or []
            ))
            found.append(("text", node.get("text"), marks))
        else:
            level = (node.get("attrs") or {}).get("level") if kind == "heading" else None
            found.append((kind, level))
            walk(node.get("content") or [])

    walk(document)
    return found


# --- Comparing what Jira has with what we would send ---


def _number(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:
        return None


def same_value(current: Any, desired: Any) -> bool:
    """Custom field values as Jira returns them against ours: numbers by value, empty strings as empty."""
    if isinstance(desired, (int, float, Decimal)) and not isinstance(desired, bool):
        return _number(current) == _number(desired)
    current = None if current == "" else current
    desired = None if desired == "" else desired
    if isinstance(current, str) and isinstance(desired, str):
        return current.strip() == desired.strip()
    return current == desired


def jira_value(value: Any) -> Any:
    """A record value as Jira takes it in JSON: Decimals as numbers (Jira's number fields are doubles)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    return value


def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The fields to PUT so that the issue (``current``: its ``fields`` as Jira returns them) shows ``desired``.

    ``desired`` holds what we own, as we would send it on create: summary, description, priority {"name"}, assignee
    {"accountId"} when mapped, custom fields by id, and ``labels``. Labels people added stay: only ours is added.
    """
    changes: dict[str, Any] = {}
    for field, value in desired.items():
        have = current.get(field)
        if field == "labels":
            labels = list(have or [])
            if label not in labels:
                changes["labels"] = labels + [label]
        elif field == "description":
            if document_essence(have) != document_essence(value):
                changes[field] = value
        elif field == "priority":
            if str((have or {}).get("name", "")).casefold() != str(value["name"]).casefold():
                changes[field] = value
        elif field == "assignee":
            if (have or {}).get("accountId") != (value or {}).get("accountId"):
                changes[field] = value
        elif field == "summary":
            if (have or "") != value:
                changes[field] = value
        elif not same_value(have, value):
            changes[field] = value
    return changes


def pick_issue_per_key(
    issues: Iterable[Mapping[str, Any]], labels: Mapping[str, str], ifs_key_field: str | None
) -> tuple[dict[str, Mapping[str, Any]], dict[str, list[str]]]:
    """Match found issues to IFS keys (``labels``: IFS key → its label).

    The IFS Key custom field decides when it is set (two keys can share a label after cleaning); otherwise the label
    does. A key found on several issues (a clone copies labels and fields) keeps the oldest issue, and the others are
    returned so that they can be reported.
    """
    keys_of_label: dict[str, list[str]] = {}
    for ifs_key, label in labels.items():
        keys_of_label.setdefault(label, []).append(ifs_key)
    chosen: dict[str, Mapping[str, Any]] = {}
    extra: dict[str, list[str]] = {}
    for issue in sorted(issues, key=lambda i: int(i.get("id") or 0)):
        fields = issue.get("fields") or {}
        stored_key = fields.get(ifs_key_field) if ifs_key_field else None
        if stored_key:
            owners = [stored_key] if stored_key in labels else []
        else:
            owners = [k for label in fields.get("labels") or [] for k in keys_of_label.get(label, [])]
            owners = owners if len(owners) == 1 else []
        for ifs_key in owners:
            if ifs_key in chosen:
                extra.setdefault(ifs_key, []).append(str(issue.get("key")))
            else:
                chosen[ifs_key] = issue
    return chosen, extra


def jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def labels_jql(labels: Iterable[str]) -> str:
    return f"labels in ({', '.join(jql_string(label) for label in labels)})"
