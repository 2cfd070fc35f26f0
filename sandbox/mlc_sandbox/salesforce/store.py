"""The org's records in memory: creates, updates, upserts by external id and deletes with Salesforce's checks (field
types, required fields, unique external ids, relationships by external id, the Order/OrderItem price-book rules), the
audit fields every write moves, and an undo log for all-or-none collections."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from . import ids
from .schema import (OBJECTS, PREFIXES, STANDARD_ENTRY_ID, STANDARD_PRICEBOOK_ID, STANDARD_PRODUCT_ID, Field,
                     SObject)
from .settings import SalesforceSettings
from .values import RecordFailure, check_content, coerce, render

ACTIVATED = "Activated"
INTEGRITY = "FIELD_INTEGRITY_EXCEPTION"
ACTIVATED_ITEMS = "You can't edit, add, or delete order products on an activated order."


class NotFound(Exception):
    pass


class MultipleMatches(Exception):
    def __init__(self, ids_found: list[str]):
        super().__init__(", ".join(ids_found))
        self.ids = ids_found


def ext_key(value) -> str:
    """External id text values match case-insensitively (Salesforce's default for unique external ids)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).lower()


class Org:
    def __init__(self, settings: SalesforceSettings):
        self.settings = settings
        self.lock = threading.RLock()
        self.clock_offset = 0.0  # seconds the org's clock runs ahead (POST /_admin/clock)
        self._undo: list | None = None
        self._depth = 0
        self.reset()

    # --- time and bookkeeping -------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """Salesforce keeps datetimes to the second."""
        moment = datetime.fromtimestamp(time.time() + self.clock_offset, timezone.utc)
        return moment.replace(microsecond=0)

    def reset(self) -> None:
        with self.lock:
            self.rows: dict[str, dict[str, dict]] = {name: {} for name in OBJECTS}
            self.ext_index: dict[str, dict[str, dict[str, set[str]]]] = {
                name: {f.name: {} for f in o.external_ids} for name, o in OBJECTS.items()}
            self.counters = {name: 0 for name in OBJECTS}
            self.items_by_order: dict[str, set[str]] = {}  # Order id -> lookup keys of its live items
            self.created = self.now()  # the org's start: its delete log reaches back to here (getDeleted)
            self._seed()

    def _seed(self) -> None:
        user = self.settings.integration_user_id
        self._insert_row(OBJECTS["Pricebook2"], STANDARD_PRICEBOOK_ID,
                         {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True}, user)
        self._insert_row(OBJECTS["Product2"], STANDARD_PRODUCT_ID,
                         {"Name": "IFS purchase line", "ProductCode": "IFS-PURCHASE-LINE", "IsActive": True}, user)
        self._insert_row(OBJECTS["PricebookEntry"], STANDARD_ENTRY_ID,
                         {"Pricebook2Id": STANDARD_PRICEBOOK_ID, "Product2Id": STANDARD_PRODUCT_ID, "UnitPrice": 0.0,
                          "IsActive": True, "Name": "IFS purchase line", "CurrencyIsoCode": "SEK"}, user)

    def _new_id(self, sobject: SObject) -> str:
        self.counters[sobject.name] += 1
        # numbers start high enough never to meet the seeded ...001AAA ids
        return ids.make_id(sobject.key_prefix, 1000 + self.counters[sobject.name])

    # --- raw row access (keeps the external id indexes and the undo log) --------------------------------------------
    def _index(self, name: str, row: dict, add: bool) -> None:
        if row.get("IsDeleted"):
            return
        key = ids.lookup_key(row["Id"])
        if name == "OrderItem":
            items = self.items_by_order.setdefault(row["OrderId"], set())
            items.add(key) if add else items.discard(key)
        for field_name, index in self.ext_index[name].items():
            value = row.get(field_name)
            if value is None:
                continue
            holders = index.setdefault(ext_key(value), set())
            if add:
                holders.add(key)
            else:
                holders.discard(key)
                if not holders:
                    del index[ext_key(value)]

    def _put(self, name: str, row: dict) -> None:
        key = ids.lookup_key(row["Id"])
        previous = self.rows[name].get(key)
        if self._undo is not None:
            self._undo.append((name, key, previous))
        if previous is not None:
            self._index(name, previous, add=False)
        self.rows[name][key] = row
        self._index(name, row, add=True)

    def begin(self) -> int:
        """Start a transaction, or a savepoint inside the one under way (a collection inside an all-or-none
        composite request); returns the mark to roll back to. Each begin() is ended by one commit()."""
        if self._undo is None:
            self._undo, self._depth = [], 0
        self._depth += 1
        return len(self._undo)

    def commit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._undo = None

    def rollback(self, mark: int) -> None:
        """Undo every write since begin() returned `mark` (the transaction stays open until its commit())."""
        undo = self._undo or []
        while len(undo) > mark:
            name, key, previous = undo.pop()
            current = self.rows[name].pop(key, None)
            if current is not None:
                self._index(name, current, add=False)
            if previous is not None:
                self.rows[name][key] = previous
                self._index(name, previous, add=True)

    def _insert_row(self, sobject: SObject, record_id: str, values: dict, user: str) -> dict:
        now = self.now()
        row = {f.name: (f.default if f.type == "boolean" or f.name == "CurrencyIsoCode" else None)
               for f in sobject.fields}
        row.update(values)
        row.update({"Id": record_id, "IsDeleted": False, "CreatedDate": now, "CreatedById": user,
                    "LastModifiedDate": now, "LastModifiedById": user, "SystemModstamp": now})
        if sobject.name == "Order":
            row["TotalAmount"] = 0.0
        self._put(sobject.name, row)
        return row

    def get(self, name: str, record_id: str, include_deleted: bool = False) -> dict:
        if not ids.well_formed(record_id):
            raise NotFound(record_id)
        row = self.rows[name].get(ids.lookup_key(record_id))
        if row is None or (row["IsDeleted"] and not include_deleted):
            raise NotFound(record_id)
        return row

    def find_by_external(self, name: str, field_name: str, value) -> list[dict]:
        holders = self.ext_index[name].get(field_name, {}).get(ext_key(value), ())
        return sorted((self.rows[name][key] for key in holders), key=lambda row: row["Id"])

    def live(self, name: str) -> list[dict]:
        return [row for row in self.rows[name].values() if not row["IsDeleted"]]

    def all_rows(self, name: str) -> list[dict]:
        return list(self.rows[name].values())

    # --- writes ---------------------------------------------------------------------------------------------------
    def create(self, sobject: SObject, body: dict, user: str, *, allow_duplicate_external_ids: bool = False) -> dict:
        with self.lock:
            values = self._prepare(sobject, body, None, check_unique=not allow_duplicate_external_ids)
            return self._apply(sobject, values, None, user)

    def update(self, sobject: SObject, record_id: str, body: dict, user: str) -> dict:
        with self.lock:
            existing = self.get(sobject.name, record_id)
            values = self._prepare(sobject, body, existing)
            return self._apply(sobject, values, existing, user)

    def upsert(self, sobject: SObject, ext_field: Field, value, body: dict, user: str,
               update_only: bool = False) -> tuple[dict, bool]:
        """(row, created). Raises MultipleMatches, NotFound (update_only without a match) or RecordFailure."""
        with self.lock:
            matches = self.find_by_external(sobject.name, ext_field.name, value)
            if len(matches) > 1:
                raise MultipleMatches([row["Id"] for row in matches])
            if not matches and update_only:
                raise NotFound(str(value))
            existing = matches[0] if matches else None
            body = dict(body)
            body.pop("attributes", None)
            given = next((k for k in body if k.lower() == ext_field.name.lower()), None)
            if given is not None:
                if body[given] is None or ext_key(body.pop(given)) != ext_key(value):
                    raise RecordFailure("INVALID_FIELD", f"The external ID field {ext_field.name} in the request body "
                                                         f"doesn't match the value in the URL", [ext_field.name])
            if existing is None:
                body[ext_field.name] = value
            values = self._prepare(sobject, body, existing)
            return self._apply(sobject, values, existing, user), existing is None

    def upsert_collection(self, sobject: SObject, ext_field: Field, records: list[dict], all_or_none: bool,
                          user: str) -> list[dict]:
        """One result per record, in order: the sObject Collections upsert."""
        with self.lock:
            results: list[dict | None] = [None] * len(records)
            values: list = [None] * len(records)
            for position, record in enumerate(records):
                key = next((k for k in record if k.lower() == ext_field.name.lower()), None)
                value = record.get(key) if key is not None else None
                if value is None or value == "" or isinstance(value, (dict, list)):
                    results[position] = _failed(RecordFailure("MISSING_ARGUMENT", f"{ext_field.name} not specified"))
                else:
                    values[position] = value
            seen: dict[str, int] = {}
            for value in values:
                if value is not None:
                    seen[ext_key(value)] = seen.get(ext_key(value), 0) + 1
            for position, value in enumerate(values):
                if value is not None and seen[ext_key(value)] > 1:
                    results[position] = _failed(RecordFailure(
                        "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [ext_field.name]))
            mark = self.begin()
            try:
                for position, record in enumerate(records):
                    if results[position] is not None:
                        continue
                    try:
                        row, created = self.upsert(sobject, ext_field, values[position], record, user)
                    except MultipleMatches as several:
                        results[position] = _failed(RecordFailure(
                            "DUPLICATE_EXTERNAL_ID", f"{ext_field.name}: more than one record found for external id "
                                                     f"field: [{', '.join(several.ids)}]", [ext_field.name]))
                    except RecordFailure as failure:
                        results[position] = _failed(failure)
                    else:
                        results[position] = {"id": row["Id"], "success": True, "errors": [], "created": created}
                failed = any(not result["success"] for result in results)
                if all_or_none and failed:
                    self.rollback(mark)
                    results = [result if not result["success"] else _failed(ROLLED_BACK) for result in results]
            finally:
                self.commit()
            return results

    def delete(self, sobject: SObject, record_id: str, user: str) -> None:
        with self.lock:
            row = self.get(sobject.name, record_id)
            if sobject.name == "OrderItem":
                order = self.get("Order", row["OrderId"], include_deleted=True)
                if order["Status"] == ACTIVATED:
                    raise RecordFailure(INTEGRITY, ACTIVATED_ITEMS, [])
            self._delete_row(sobject.name, row, user)

    def _delete_row(self, name: str, row: dict, user: str) -> None:
        now = self.now()
        children = {"Account": [("Contact", "AccountId"), ("Order", "AccountId")],
                    "Order": [("OrderItem", "OrderId")]}.get(name, [])
        for child_name, reference in children:
            for child in self.live(child_name):
                if child[reference] == row["Id"]:
                    self._delete_row(child_name, child, user)
        self._put(name, {**row, "IsDeleted": True, "LastModifiedDate": now, "LastModifiedById": user,
                         "SystemModstamp": now})
        if name == "OrderItem":
            self._roll_up(row["OrderId"], -row["Quantity"] * row["UnitPrice"], user)

    def _apply(self, sobject: SObject, values: dict, existing: dict | None, user: str) -> dict:
        if existing is None:
            if sobject.name == "PricebookEntry":
                values = {**values, "Name": self.get("Product2", values["Product2Id"])["Name"]}
            row = self._insert_row(sobject, self._new_id(sobject), values, user)
        else:
            now = self.now()  # every write moves the audit fields, even when no value changed (as Salesforce)
            row = {**existing, **values, "LastModifiedDate": now, "LastModifiedById": user, "SystemModstamp": now}
            self._put(sobject.name, row)
        if sobject.name == "OrderItem":
            before = existing["Quantity"] * existing["UnitPrice"] if existing is not None else 0.0
            self._roll_up(row["OrderId"], row["Quantity"] * row["UnitPrice"] - before, user)
        return row

    def _roll_up(self, order_id: str, change: float, user: str) -> None:
        """TotalAmount rolls up the items (kept by difference: orders may have thousands of lines); the roll-up is
        a write of the Order too, so its SystemModstamp moves."""
        order = self.get("Order", order_id, include_deleted=True)
        now = self.now()
        self._put("Order", {**order, "TotalAmount": round(order["TotalAmount"] + change, 2), "LastModifiedDate": now,
                            "LastModifiedById": user, "SystemModstamp": now})

    # --- the checks of one record ---------------------------------------------------------------------------------
    def _prepare(self, sobject: SObject, body: dict, existing: dict | None, check_unique: bool = True) -> dict:
        """The values to store for `body`, or RecordFailure with Salesforce's first complaint."""
        given: list[tuple[Field, object]] = []
        relationships: list[tuple[Field, dict]] = []
        for key, raw in body.items():
            if key == "attributes":
                continue
            field = sobject.field(key)
            if field is None:
                relation = sobject.by_relationship.get(key.lower())
                if relation is not None and isinstance(raw, dict):
                    relationships.append((relation, raw))
                    continue
                raise RecordFailure("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}")
            given.append((field, raw))
        blocked = [f.name for f, _ in given if not f.createable and (existing is None or not f.updateable)]
        blocked += [f.name for f, _ in relationships if existing is None and not f.createable]
        if blocked:
            raise _not_writable(blocked)
        values: dict = {}
        for field, raw in given:
            value = coerce(field, raw)
            check_content(field, value)
            values[field.name] = value
        for field, raw in given:
            if field.type == "reference" and values[field.name] is not None:
                values[field.name] = self._reference_by_id(field, values[field.name])
        for field, raw in relationships:
            values[field.name] = self._reference_by_external_id(field, raw)
        if existing is not None:
            changed_create_only = [f.name for f in sobject.fields if f.name in values and f.createable
                                   and not f.updateable and values[f.name] != existing[f.name]]
            if changed_create_only:
                raise _not_writable(changed_create_only)
        if existing is None:
            missing = [f.name for f in sobject.fields if f.required and values.get(f.name) is None]
        else:
            missing = [f.name for f in sobject.fields if f.required and f.name in values and values[f.name] is None]
        if missing:
            raise RecordFailure("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                missing)
        if check_unique:
            own_key = ids.lookup_key(existing["Id"]) if existing is not None else None
            for field in sobject.external_ids:
                value = values.get(field.name)
                if value is None or not field.unique:
                    continue
                others = [row for row in self.find_by_external(sobject.name, field.name, value)
                          if ids.lookup_key(row["Id"]) != own_key]
                if others:
                    raise RecordFailure("DUPLICATE_VALUE", f"duplicate value found: {field.name} duplicates value "
                                                           f"on record with id: {others[0]['Id']}", [field.name])
        rules = {"OrderItem": self._order_item_rules, "Order": self._order_rules,
                 "PricebookEntry": self._pricebook_entry_rules}.get(sobject.name)
        if rules is not None:
            rules(values, existing)
        return values

    def _reference_by_id(self, field: Field, value: str) -> str:
        message = f"{field.label}: id value of incorrect type: {value}"
        if not ids.well_formed(value):
            raise RecordFailure("MALFORMED_ID", message, [field.name])
        target = PREFIXES.get(value[:3])
        if target not in field.reference_to:
            raise RecordFailure(INTEGRITY, message, [field.name])
        try:
            return self.get(target, value)["Id"]
        except NotFound:
            raise RecordFailure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id") from None

    def _reference_by_external_id(self, field: Field, lookup: dict) -> str:
        parent = OBJECTS[field.reference_to[0]]
        keys = [k for k in lookup if k != "attributes"]
        if len(keys) != 1:
            raise RecordFailure("INVALID_FIELD", f"Foreign key external ID for {field.relationship_name} must name "
                                                 f"exactly one field, not {len(keys)}")
        parent_field = parent.field(keys[0])
        value = lookup[keys[0]]
        if parent_field is None:
            raise RecordFailure("INVALID_FIELD", f"No such column '{keys[0]}' on sobject of type {parent.name}")
        if parent_field.name == "Id":
            return self._reference_by_id(field, coerce(parent_field, value) or "")
        if not parent_field.external_id:
            raise RecordFailure("INVALID_FIELD",
                                f"Cannot reference a foreign key field {parent_field.name} on entity {parent.name}")
        matches = self.find_by_external(parent.name, parent_field.name, value) if value is not None else []
        if not matches:
            raise RecordFailure("INVALID_FIELD", f"Foreign key external ID: {value} not found for field "
                                                 f"{parent_field.name} in entity {parent.name}")
        if len(matches) > 1:
            raise RecordFailure("INVALID_FIELD", f"Foreign key external ID: {value} matched more than one record for "
                                                 f"field {parent_field.name} in entity {parent.name}")
        return matches[0]["Id"]

    def _order_item_rules(self, values: dict, existing: dict | None) -> None:
        order_id = values.get("OrderId") or (existing or {}).get("OrderId")
        order = self.get("Order", order_id)
        if order["Status"] == ACTIVATED:
            raise RecordFailure(INTEGRITY, ACTIVATED_ITEMS, [])
        if existing is None:
            if order["Pricebook2Id"] is None:
                raise RecordFailure(INTEGRITY, "Price Book Not Set on Order", [])
            entry = self.get("PricebookEntry", values["PricebookEntryId"])
            if entry["Pricebook2Id"] != order["Pricebook2Id"]:
                raise RecordFailure(INTEGRITY, "field integrity exception: PricebookEntryId (pricebook entry is in a "
                                               "different pricebook than the one assigned to the Order, or Order has "
                                               "no pricebook assigned)", ["PricebookEntryId"])
            if not entry["IsActive"]:
                raise RecordFailure(INTEGRITY, "field integrity exception: PricebookEntryId (pricebook entry is "
                                               "inactive)", ["PricebookEntryId"])

    def _has_items(self, order_id: str) -> bool:
        return bool(self.items_by_order.get(order_id))

    def _order_rules(self, values: dict, existing: dict | None) -> None:
        if existing is not None and "Pricebook2Id" in values and values["Pricebook2Id"] != existing["Pricebook2Id"] \
                and self._has_items(existing["Id"]):
            raise RecordFailure(INTEGRITY, "Price Book cannot be changed on an order with order products",
                                ["Pricebook2Id"])
        was_activated = existing is not None and existing["Status"] == ACTIVATED
        if values.get("Status") == ACTIVATED and not was_activated \
                and (existing is None or not self._has_items(existing["Id"])):
            raise RecordFailure(INTEGRITY, "You can't activate an order without order products.", ["Status"])

    def _pricebook_entry_rules(self, values: dict, existing: dict | None) -> None:
        if existing is not None:
            return
        book, product = values["Pricebook2Id"], values["Product2Id"]
        entries = [e for e in self.live("PricebookEntry") if e["Product2Id"] == product]
        if any(e["Pricebook2Id"] == book for e in entries):
            raise RecordFailure("DUPLICATE_VALUE", "This price definition already exists in this price book", [])
        if book != STANDARD_PRICEBOOK_ID and not any(e["Pricebook2Id"] == STANDARD_PRICEBOOK_ID for e in entries):
            raise RecordFailure("STANDARD_PRICE_NOT_DEFINED", "No standard price defined for this product", [])

    # --- rendering ------------------------------------------------------------------------------------------------
    def render(self, sobject: SObject, row: dict, version: str, fields: list[Field] | None = None) -> dict:
        record = {"attributes": {"type": sobject.name,
                                 "url": f"/services/data/v{version}/sobjects/{sobject.name}/{row['Id']}"}}
        for field in fields or sobject.fields:
            record[field.name] = render(row[field.name])
        return record

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds



ROLLED_BACK = RecordFailure("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were "
                            "valid and the request was using AllOrNone header")


def _failed(failure: RecordFailure) -> dict:
    return {"success": False, "errors": [failure.as_result_error()]}


def _not_writable(names: list[str]) -> RecordFailure:
    return RecordFailure("INVALID_FIELD_FOR_INSERT_UPDATE",
                         f"Unable to create/update fields: {', '.join(names)}. Please check the security settings of "
                         f"this field and verify that it is read/write for your profile or permission set.", names)
