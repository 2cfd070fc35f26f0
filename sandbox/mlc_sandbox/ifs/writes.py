"""Creating, changing and deleting records (admin interface, OData POST, PATCH and bound actions), with IFS-like
bookkeeping: every change moves the change column and objversion, so the ETag changes too."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Callable

from . import model
from .store import columns, insert_statement, quote


class WriteError(ValueError):
    """A write that cannot be applied; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


COMMON_DEFAULTS = {
    "Company": "10", "Contract": "SE01", "CurrencyCode": "SEK", "DefaultCurrency": "SEK", "Country": "SE",
    "DefaultLanguage": "sv", "LanguageCode": "sv", "BuyUnitMeas": "pcs", "PartyType": "Supplier",
    "CurrencyRate": "1", "CurrRate": "1", "ReleaseNo": "1", "UserId": "MLC_SANDBOX", "ReportedBy": "MLC_SANDBOX",
    "SupplierCategory": "STANDARD", "CustomerCategory": "CUSTOMER", "ValidFrom": "2000-01-01",
    "ValidUntil": "2049-12-31", "AccntGroup": "GA0", "AccntType": "ASSET", "LogicalAccountType": "A",
    "RevisionNo": 1, "NoOfLines": 0,
}

AUTO_KEYS: dict[str, tuple[str, int]] = {
    # entity set → (prefix, first number) for a key the caller may leave out
    "PurchaseOrderSet": ("P", 1000000),
    "SupplierInfoGeneralSet": ("S", 10000),
    "CustomerInfoSet": ("C", 10000),
}


# What IFS fills in itself when a client creates a record without them (totals it computes, entry dates, flags):
# an OData create may leave these out; any other non-nullable field without a COMMON_DEFAULTS value is required.
# Non-nullable Booleans (false) and DateTimeOffsets (now) are always filled in.
SERVER_FILLED: dict[str, tuple[str, ...]] = {
    "PurchaseOrderSet": ("OrderDate", "TotalNetAmount", "TotalTaxAmount", "TotalGrossAmount"),
    "PurchaseOrderLineNopartSet": ("FbuyUnitPrice", "Discount", "NetAmount"),
    "SupplierInfoGeneralSet": ("CreationDate",),
    "CustomerInfoSet": ("CreationDate",),
    "PostingProposalHeadSet": ("InvoiceId",),
    "VoucherSet": ("TotalAmount",),
}

# Numbers IFS draws from a sequence (entity set → field): the next one above the largest in use.
SEQUENCES: dict[str, str] = {"PostingProposalHeadSet": "InvoiceId"}



def read_only(entity: model.Entity) -> tuple[str, ...]:
    """Fields only IFS sets on the OData side: Objstate moves through actions, the change column with every write."""
    return ("Objstate", entity.change_column)


def coerce(f: model.Field, value, parse_timestamp: Callable[[str], int]):
    """A JSON value as the store keeps it, or WriteError naming the field."""
    if value is None:
        if not f.nullable:
            raise WriteError(f"'{f.name}' cannot be null")
        return None
    edm = f.edm
    try:
        if edm in (model.STRING, model.ENUM):
            if not isinstance(value, str):
                raise TypeError
            if edm == model.ENUM and value not in f.enum.members:
                raise WriteError(f"'{value}' is not a member of {f.enum.name} (field '{f.name}')")
            if f.max_length and len(value) > f.max_length:
                raise WriteError(f"'{f.name}' is longer than {f.max_length} characters")
            return value
        if edm == model.DECIMAL:
            if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
                raise TypeError
            number = Decimal(str(value))
            if not number.is_finite():
                raise TypeError
            return format(number, "f")
        if edm in (model.INT32, model.INT64):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if edm == model.BOOLEAN:
            if not isinstance(value, bool):
                raise TypeError
            return int(value)
        if edm == model.DATE:
            return date.fromisoformat(value).isoformat()
        if edm == model.DATETIME:
            return parse_timestamp(value)
    except (TypeError, ValueError, InvalidOperation) as exc:
        if isinstance(exc, WriteError):
            raise
        raise WriteError(f"Invalid value for '{f.name}' ({f.enum.name if f.enum else f.edm}): {value!r}") from exc
    raise WriteError(f"Unsupported type for '{f.name}'")


def _default(f: model.Field, now: int):
    if f.name in COMMON_DEFAULTS:
        return COMMON_DEFAULTS[f.name]
    if f.nullable:
        return None
    return {
        model.STRING: "", model.DECIMAL: "0", model.INT32: 0, model.INT64: 0, model.BOOLEAN: 0,
        model.DATE: date.fromtimestamp(now).isoformat(), model.DATETIME: now,
        model.ENUM: f.enum.members[0] if f.enum else "",
    }[f.edm]


def _key_where(entity: model.Entity) -> str:
    return " AND ".join(f"{quote(k)} = ?" for k in entity.keys)


def coerce_key(entity: model.Entity, key: dict, parse_timestamp) -> dict:
    if not isinstance(key, dict):
        raise WriteError("'key' must be an object")
    missing = [k for k in entity.keys if k not in key]
    unknown = [k for k in key if k not in entity.keys]
    if missing or unknown:
        raise WriteError(f"The key of {entity.entity_set} is {', '.join(entity.keys)}"
                         f"{'; missing ' + ', '.join(missing) if missing else ''}"
                         f"{'; not key fields: ' + ', '.join(unknown) if unknown else ''}")
    return {k: coerce(entity.field_by_name[k], key[k], parse_timestamp) for k in entity.keys}


def fetch(conn: sqlite3.Connection, entity: model.Entity, key: dict) -> tuple | None:
    sql = f"SELECT * FROM {quote(entity.table)} WHERE {_key_where(entity)}"
    return conn.execute(sql, [key[k] for k in entity.keys]).fetchone()


def _counter(conn: sqlite3.Connection, counters: dict, name: str, initial_sql: str) -> int:
    """The next number of a sequence; the table is scanned once per run, later numbers come from memory."""
    if name not in counters:
        counters[name] = conn.execute(initial_sql).fetchone()[0] or 0
    counters[name] += 1
    return counters[name]


def _next_key(conn: sqlite3.Connection, entity: model.Entity, counters: dict) -> object:
    key = entity.keys[0]
    table = quote(entity.table)
    while True:
        if entity.key_fields[0].edm in (model.INT32, model.INT64):
            candidate = _counter(conn, counters, f"{entity.table}.key", f"SELECT max({quote(key)}) FROM {table}")
        else:
            prefix, first = AUTO_KEYS[entity.entity_set]
            number = _counter(
                conn, counters, f"{entity.table}.key",
                f"SELECT max({first - 1}, max(CAST(substr({quote(key)}, {len(prefix) + 1}) AS INTEGER))) "
                f"FROM {table} WHERE substr({quote(key)}, 1, {len(prefix)}) = '{prefix}'")
            candidate = f"{prefix}{number}"
        if fetch(conn, entity, {key: candidate}) is None:  # a caller may have taken it explicitly
            return candidate


def auto_key(entity: model.Entity) -> bool:
    """Whether the stand-in invents the key of a new record that comes without one."""
    return len(entity.keys) == 1 and (
        entity.entity_set in AUTO_KEYS or entity.key_fields[0].edm in (model.INT32, model.INT64))


def required_on_create(entity: model.Entity) -> tuple[str, ...]:
    """The fields an OData create must carry: non-nullable, not read-only, with no default and not filled by IFS."""
    optional = set(read_only(entity)) | set(COMMON_DEFAULTS) | set(SERVER_FILLED.get(entity.entity_set, ()))
    if auto_key(entity):
        optional.add(entity.keys[0])
    return tuple(f.name for f in entity.fields
                 if not f.nullable and f.name not in optional and f.edm not in (model.BOOLEAN, model.DATETIME))


def parent_of(entity: model.Entity) -> model.Navigation | None:
    """The single-valued navigation to the record a child belongs to (an order line's order), if any."""
    return next((n for n in entity.navigations if not n.collection), None)


def check_company(entity: model.Entity, company, companies: frozenset[str] | None) -> None:
    """A service user limited to some companies (a tenant profile's allowed_companies) cannot write into another."""
    if companies is not None and "Company" in entity.field_by_name and company not in companies:
        raise WriteError(f"The user is not connected to company {company}.")


def create(conn: sqlite3.Connection, entity: model.Entity, record: dict, now: int, parse_timestamp,
           counters: dict, strict: bool = False, companies: frozenset[str] | None = None) -> tuple:
    """Inserts a record; `counters` (one dict per store) remembers sequences between calls.

    `strict` is the OData create: required fields must be there and a child's parent must exist. The admin
    interface fills in everything it can and trusts the caller about parents. `companies` limits the records the
    caller may write and the parents it can see (None: all).
    """
    if not isinstance(record, dict):
        raise WriteError("'record' must be an object")
    unknown = [name for name in record if name not in entity.field_by_name]
    if unknown:
        raise WriteError(f"Unknown field(s) on {entity.entity_set}: {', '.join(unknown)}")
    if strict:
        missing = [name for name in required_on_create(entity) if name not in record]
        if missing:
            raise WriteError(f"Required field(s) missing on {entity.entity_set}: {', '.join(missing)}")
    values = {}
    for f in entity.fields:
        values[f.name] = coerce(f, record[f.name], parse_timestamp) if f.name in record else _default(f, now)
    sequence = SEQUENCES.get(entity.entity_set)
    if sequence and sequence not in record:
        values[sequence] = _counter(conn, counters, f"{entity.table}.{sequence}",
                                    f"SELECT max({quote(sequence)}) FROM {quote(entity.table)}")
    for k in entity.keys:
        if k not in record and k not in COMMON_DEFAULTS:  # a company or release number may default
            if not auto_key(entity):
                raise WriteError(f"'{k}' is required: the key of {entity.entity_set} is {', '.join(entity.keys)}")
            values[k] = _next_key(conn, entity, counters)
    parent = parent_of(entity)
    if strict and parent is not None:
        target = model.ENTITY_BY_SET[parent.target_set]
        parent_key = {remote: values[local] for local, remote in parent.key_pairs}
        parent_row = fetch(conn, target, parent_key)
        if parent_row is None or not visible(target, parent_row, companies):
            named = ", ".join(f"{k}={v}" for k, v in parent_key.items())
            raise WriteError(f"{target.entity_set} has no record with {named}: create the {target.label} first")
    if "Company" in values:
        check_company(entity, values["Company"], companies)
    changed = values[entity.change_column] if entity.change_column in record else now
    values[entity.change_column] = changed
    objid = _counter(conn, counters, f"{entity.table}.objid", f"SELECT max(_objid) FROM {quote(entity.table)}")
    row = tuple(values[f.name] for f in entity.fields) + (objid, changed)
    try:
        conn.execute(insert_statement(entity), row)
    except sqlite3.IntegrityError as exc:
        key = ", ".join(f"{k}={values[k]}" for k in entity.keys)
        raise WriteError(f"{entity.entity_set} already has a record with {key}", status=409) from exc
    return row


def visible(entity: model.Entity, row: tuple, companies: frozenset[str] | None) -> bool:
    """Whether a stored row is one a service user limited to `companies` sees (None: all)."""
    if companies is None or "Company" not in entity.field_by_name:
        return True
    return row[columns(entity).index("Company")] in companies


def change(conn: sqlite3.Connection, entity: model.Entity, key: dict, changes: dict, changed_at: int,
           parse_timestamp, change_counts: dict, companies: frozenset[str] | None = None) -> tuple:
    """Applies `changes`; `change_counts` (the store's) counts the changes of each record in this run; `companies`
    as in `create` (the record itself was found visible by the caller)."""
    if not isinstance(changes, dict):
        raise WriteError("'changes' must be an object")
    current = fetch(conn, entity, key)
    if current is None:
        raise WriteError(f"No {entity.entity_set} record with that key", status=404)
    names = columns(entity)
    values = dict(zip(names, current))
    for name, value in changes.items():
        f = entity.field_by_name.get(name)
        if f is None:
            raise WriteError(f"Unknown field '{name}' on {entity.entity_set}")
        new = coerce(f, value, parse_timestamp)
        if name in entity.keys and new != values[name]:
            raise WriteError(f"'{name}' is part of the key and cannot be changed")
        if name == "Company":
            check_company(entity, new, companies)
        values[name] = new
    if entity.change_column not in changes:
        values[entity.change_column] = changed_at
    # objversion is the change time, but never repeats: two changes in one second must still change the ETag
    values["_objversion"] = max(values[entity.change_column], current[names.index("_objversion")] + 1)
    assignments = ", ".join(f"{quote(n)} = ?" for n in names if n not in entity.keys)
    conn.execute(
        f"UPDATE {quote(entity.table)} SET {assignments} WHERE {_key_where(entity)}",
        [values[n] for n in names if n not in entity.keys] + [key[k] for k in entity.keys],
    )
    record = (entity.table, values["_objid"])
    change_counts[record] = change_counts.get(record, 0) + 1
    return tuple(values[n] for n in names)


def delete(conn: sqlite3.Connection, entity: model.Entity, key: dict) -> int:
    """Deletes the record and (as IFS does for order lines and voucher rows) its collection children."""
    if fetch(conn, entity, key) is None:
        raise WriteError(f"No {entity.entity_set} record with that key", status=404)
    removed = 0
    for navigation in entity.navigations:
        if navigation.collection:
            target = model.ENTITY_BY_SET[navigation.target_set]
            where = " AND ".join(f"{quote(remote)} = ?" for _, remote in navigation.key_pairs)
            removed += conn.execute(f"DELETE FROM {quote(target.table)} WHERE {where}",
                                    [key[local] for local, _ in navigation.key_pairs]).rowcount
    conn.execute(f"DELETE FROM {quote(entity.table)} WHERE {_key_where(entity)}", [key[k] for k in entity.keys])
    return removed + 1


def describe_key(entity: model.Entity, key: dict) -> str:
    """A key as messages show it: the value of a single key, else `(Name=value, ...)`."""
    if len(entity.keys) == 1:
        return str(key[entity.keys[0]])
    return "(" + ", ".join(f"{k}={key[k]}" for k in entity.keys) + ")"


def run_action(conn: sqlite3.Connection, entity: model.Entity, key: dict, action: model.Action, changed_at: int,
               parse_timestamp, change_counts: dict) -> tuple:
    """Moves the record to the action's state if its current state allows the action; bookkeeping as `change`."""
    current = fetch(conn, entity, key)
    if current is None:
        raise WriteError(f"No {entity.entity_set} record with that key", status=404)
    state = current[columns(entity).index("Objstate")]
    if state not in action.from_states:
        raise WriteError(f"The {entity.label} {describe_key(entity, key)} cannot be {action.past_participle} "
                         f"in state {state}.")
    return change(conn, entity, key, {"Objstate": action.to_state}, changed_at, parse_timestamp, change_counts)
