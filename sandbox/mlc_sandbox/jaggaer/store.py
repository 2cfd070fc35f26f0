"""The instance's records in memory: suppliers, purchase orders, invoices and receipts, each kept as the API renders
it, with its (lastModified, sequence) stamp for paging. One lock guards everything; writes check first and change
nothing when refused."""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from decimal import Decimal

from .values import (Problems, now_ms, read_choice, read_date, read_decimal, read_int, read_lines, read_text,
                     read_timestamp, render_ms)

SUPPLIER_STATUSES = ("ACTIVE", "BLOCKED", "INACTIVE")
ORDER_STATUSES = ("OPEN", "CLOSED", "CANCELLED")
INVOICE_STATUSES = ("SUBMITTED", "APPROVED", "REJECTED")
UNITS_OF_MEASURE = ("EA", "KG", "M", "L", "H", "BOX", "SET")
SUPPLIER_FIELDS = ("externalId", "name", "country", "currency", "status", "taxId", "paymentTerms", "category")
ORDER_FIELDS = ("externalId", "supplierExternalId", "supplierId", "companyCode", "orderDate", "currency", "buyer",
                "status", "lines")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class NotFound(Exception):
    pass


class Refused(Exception):
    """A write refused: `status` (409, 422) and the error entries."""

    def __init__(self, status: int, errors: list[dict]):
        super().__init__(errors[0]["message"] if errors else "refused")
        self.status = status
        self.errors = errors


class Table:
    """One kind of record: documents by id, their paging stamps, the (lastModified, sequence) order kept sorted
    lazily (rebuilt on the first read after a write)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.reset()

    def reset(self) -> None:
        self.docs: dict[str, dict] = {}
        self.stamps: dict[str, tuple[int, int]] = {}  # id -> (lastModified ms, sequence)
        self.next_sequence = 1
        self._order: list[str] | None = None
        self._keys: list[tuple[int, int]] = []

    def new_id(self) -> tuple[str, int]:
        sequence = self.next_sequence
        self.next_sequence += 1
        return f"{self.prefix}-{sequence:06d}", sequence

    def stamp(self, record_id: str | None) -> int:
        """The lastModified of a write now: now, or one millisecond after the record's previous stamp."""
        now = now_ms()
        if record_id is not None and record_id in self.stamps:
            now = max(now, self.stamps[record_id][0] + 1)
        return now

    def put(self, doc: dict, ms: int, sequence: int) -> None:
        self.docs[doc["id"]] = doc
        self.stamps[doc["id"]] = (ms, sequence)
        self._order = None

    def get(self, record_id: str) -> dict:
        doc = self.docs.get(record_id)
        if doc is None:
            raise NotFound(record_id)
        return doc

    def ordered(self) -> tuple[list[str], list[tuple[int, int]]]:
        if self._order is None:
            self._order = sorted(self.docs, key=self.stamps.__getitem__)
            self._keys = [self.stamps[record_id] for record_id in self._order]
        return self._order, self._keys

    def page(self, since_ms: int | None, page: int, page_size: int) -> dict:
        """Items with lastModified >= since_ms, ordered by (lastModified, id), one page of them."""
        order, keys = self.ordered()
        start = 0 if since_ms is None else bisect_left(keys, (since_ms,))
        total = len(order) - start
        chosen = order[start + (page - 1) * page_size: start + page * page_size]
        return {"items": [self.docs[record_id] for record_id in chosen], "page": page, "pageSize": page_size,
                "totalItems": total, "hasMore": page * page_size < total}

    def in_id_order(self) -> list[dict]:
        return [self.docs[record_id] for record_id in sorted(self.docs, key=lambda i: self.stamps[i][1])]


def _refuse_if(problems: Problems) -> None:
    if problems:
        raise Refused(422, problems.items)


class Instance:
    def __init__(self):
        self.lock = threading.RLock()
        self.suppliers = Table("SUP")
        self.orders = Table("PO")
        self.invoices = Table("INV")
        self.receipts = Table("REC")
        self.supplier_by_external: dict[str, str] = {}
        self.order_by_external: dict[str, str] = {}
        self.invoice_by_number: dict[tuple[str, str], str] = {}

    def reset(self) -> None:
        with self.lock:
            for table in (self.suppliers, self.orders, self.invoices, self.receipts):
                table.reset()
            self.supplier_by_external.clear()
            self.order_by_external.clear()
            self.invoice_by_number.clear()

    def table(self, kind: str) -> Table:
        return {"suppliers": self.suppliers, "purchase-orders": self.orders, "invoices": self.invoices,
                "receipts": self.receipts}[kind]

    # --- suppliers ------------------------------------------------------------------------------------------------
    @staticmethod
    def _supplier_fields(body: dict) -> dict:
        problems = Problems()
        fields = {
            "externalId": read_text(body, "externalId", problems, required=True, max_length=100),
            "name": read_text(body, "name", problems, required=True, max_length=200),
            "country": read_text(body, "country", problems, required=True, max_length=2, pattern=_COUNTRY,
                                 shape="an ISO 3166 alpha-2 code such as SE"),
            "currency": read_text(body, "currency", problems, max_length=3, pattern=_CURRENCY,
                                  shape="an ISO 4217 code such as SEK"),
            "status": read_choice(body, "status", SUPPLIER_STATUSES, problems, default="ACTIVE"),
            "taxId": read_text(body, "taxId", problems, max_length=100),
            "paymentTerms": read_text(body, "paymentTerms", problems, max_length=100),
            "category": read_text(body, "category", problems, max_length=100),
        }
        _refuse_if(problems)
        return fields

    def _claim_external_id(self, index: dict[str, str], external_id: str, record_id: str | None, what: str) -> None:
        holder = index.get(external_id)
        if holder is not None and holder != record_id:
            raise Refused(409, [{"code": "DUPLICATE_EXTERNAL_ID", "field": "externalId",
                                 "message": f"A {what} with externalId '{external_id}' already exists ({holder})"}])

    def _store_supplier(self, record_id: str | None, fields: dict) -> dict:
        self._claim_external_id(self.supplier_by_external, fields["externalId"], record_id, "supplier")
        ms = self.suppliers.stamp(record_id)
        if record_id is None:
            record_id, sequence = self.suppliers.new_id()
            created = render_ms(ms)
        else:
            previous = self.suppliers.docs[record_id]
            sequence, created = self.suppliers.stamps[record_id][1], previous["createdAt"]
            if previous["externalId"] != fields["externalId"]:
                del self.supplier_by_external[previous["externalId"]]
        doc = {"id": record_id, **fields, "createdAt": created, "lastModified": render_ms(ms)}
        self.suppliers.put(doc, ms, sequence)
        self.supplier_by_external[fields["externalId"]] = record_id
        return doc

    def create_supplier(self, body: dict) -> dict:
        fields = self._supplier_fields(body)
        with self.lock:
            return self._store_supplier(None, fields)

    def replace_supplier(self, record_id: str, body: dict) -> dict:
        with self.lock:
            self.suppliers.get(record_id)
            return self._store_supplier(record_id, self._supplier_fields(body))

    def edit_supplier(self, record_id: str, changes: dict) -> dict:
        unknown = sorted(set(changes) - set(SUPPLIER_FIELDS))
        if unknown:
            raise Refused(422, [{"code": "VALIDATION_FAILED", "field": name, "message": f"{name} is not a writable "
                                 f"supplier field ({', '.join(SUPPLIER_FIELDS)})"} for name in unknown])
        with self.lock:
            current = self.suppliers.get(record_id)
            merged = {name: current[name] for name in SUPPLIER_FIELDS} | changes
            return self._store_supplier(record_id, self._supplier_fields(merged))

    # --- purchase orders ------------------------------------------------------------------------------------------
    def _find_supplier(self, body: dict, problems: Problems, *, required: bool = True) -> dict | None:
        by_id, by_external = body.get("supplierId"), body.get("supplierExternalId")
        supplier = None
        if by_id is not None:
            if not isinstance(by_id, str) or by_id not in self.suppliers.docs:
                problems.add("supplierId", f"No supplier with id '{by_id}'", "UNKNOWN_SUPPLIER")
                return None
            supplier = self.suppliers.docs[by_id]
        if by_external is not None:
            found = self.supplier_by_external.get(by_external) if isinstance(by_external, str) else None
            if found is None:
                problems.add("supplierExternalId", f"No supplier with externalId '{by_external}'", "UNKNOWN_SUPPLIER")
                return None
            if supplier is not None and supplier["id"] != found:
                problems.add("supplierId", f"supplierId '{by_id}' and supplierExternalId '{by_external}' name "
                                           "different suppliers")
                return None
            supplier = self.suppliers.docs[found]
        if supplier is None and required:
            problems.add("supplierExternalId", "supplierExternalId (or supplierId) is required")
        return supplier

    def _order_fields(self, body: dict, record_id: str | None) -> dict:
        problems = Problems()
        fields = {
            "externalId": read_text(body, "externalId", problems, required=True, max_length=100),
            "companyCode": read_text(body, "companyCode", problems, required=True, max_length=20),
            "orderDate": read_date(body, "orderDate", problems, required=True),
            "currency": read_text(body, "currency", problems, required=True, max_length=3, pattern=_CURRENCY,
                                  shape="an ISO 4217 code such as SEK"),
            "buyer": read_text(body, "buyer", problems, max_length=100),
            "status": read_choice(body, "status", ORDER_STATUSES, problems, default="OPEN"),
        }
        supplier = self._find_supplier(body, problems)
        lines, prefixes = [], []
        for prefix, line in read_lines(body, problems, required=False):
            quantity = read_decimal(line, "quantity", problems, prefix, required=True, positive=True)
            unit_price = read_decimal(line, "unitPrice", problems, prefix, required=True)
            lines.append({
                "lineNumber": read_int(line, "lineNumber", problems, prefix, required=True),
                "description": read_text(line, "description", problems, prefix, required=True, max_length=500),
                "quantity": quantity,
                "unitOfMeasure": read_choice(line, "unitOfMeasure", UNITS_OF_MEASURE, problems, prefix, required=True),
                "unitPrice": unit_price,
                "amount": quantity * unit_price if quantity is not None and unit_price is not None else None,
                "glAccount": read_text(line, "glAccount", problems, prefix, required=True, max_length=20),
                "costCenter": read_text(line, "costCenter", problems, prefix, max_length=20),
                "deliveryDate": read_date(line, "deliveryDate", problems, prefix),
            })
            prefixes.append(prefix)
        _unique(lines, prefixes, problems)
        if supplier is not None and supplier["status"] == "BLOCKED":
            closing = record_id is not None and fields["status"] in ("CLOSED", "CANCELLED")
            if not closing:
                field = "supplierExternalId" if body.get("supplierExternalId") is not None else "supplierId"
                problems.add(field, f"Supplier '{supplier['externalId']}' ({supplier['id']}) is blocked",
                             "SUPPLIER_BLOCKED")
        _refuse_if(problems)
        lines.sort(key=lambda line: line["lineNumber"])
        return {"externalId": fields["externalId"], "supplierId": supplier["id"],
                "supplierExternalId": supplier["externalId"], **{k: v for k, v in fields.items() if k != "externalId"},
                "lines": lines, "totalAmount": sum((line["amount"] for line in lines), Decimal(0))}

    def _store_order(self, record_id: str | None, body: dict) -> dict:
        fields = self._order_fields(body, record_id)
        self._claim_external_id(self.order_by_external, fields["externalId"], record_id, "purchase order")
        ms = self.orders.stamp(record_id)
        if record_id is None:
            record_id, sequence = self.orders.new_id()
            created = render_ms(ms)
        else:
            previous = self.orders.docs[record_id]
            sequence, created = self.orders.stamps[record_id][1], previous["createdAt"]
            if previous["externalId"] != fields["externalId"]:
                del self.order_by_external[previous["externalId"]]
        doc = {"id": record_id, **fields, "createdAt": created, "lastModified": render_ms(ms)}
        self.orders.put(doc, ms, sequence)
        self.order_by_external[fields["externalId"]] = record_id
        return doc

    def create_order(self, body: dict) -> dict:
        with self.lock:
            return self._store_order(None, body)

    def replace_order(self, record_id: str, body: dict) -> dict:
        with self.lock:
            self.orders.get(record_id)
            return self._store_order(record_id, body)

    def _find_order(self, body: dict, problems: Problems) -> dict | None:
        by_id, by_external = body.get("purchaseOrderId"), body.get("purchaseOrderExternalId")
        if by_id is not None:
            order = self.orders.docs.get(by_id) if isinstance(by_id, str) else None
            if order is None:
                problems.add("purchaseOrderId", f"No purchase order with id '{by_id}'", "UNKNOWN_PURCHASE_ORDER")
            return order
        if by_external is not None:
            found = self.order_by_external.get(by_external) if isinstance(by_external, str) else None
            if found is None:
                problems.add("purchaseOrderExternalId", f"No purchase order with externalId '{by_external}'",
                             "UNKNOWN_PURCHASE_ORDER")
                return None
            return self.orders.docs[found]
        return None

    # --- invoices (submitted by suppliers in the network) ---------------------------------------------------------
    def submit_invoice(self, body: dict) -> dict:
        with self.lock:
            problems = Problems()
            supplier = self._find_supplier(body, problems)
            order = self._find_order(body, problems)
            if order is not None and supplier is not None and order["supplierId"] != supplier["id"]:
                problems.add("purchaseOrderExternalId", f"Purchase order '{order['externalId']}' belongs to supplier "
                             f"'{order['supplierExternalId']}', not '{supplier['externalId']}'",
                             "PURCHASE_ORDER_SUPPLIER_MISMATCH")
            invoice_number = read_text(body, "invoiceNumber", problems, required=True, max_length=100)
            company = read_text(body, "companyCode", problems, max_length=20) or (order or {}).get("companyCode")
            if company is None and "companyCode" not in {p["field"] for p in problems.items}:
                problems.add("companyCode", "companyCode is required (no purchase order to take it from)")
            currency = read_text(body, "currency", problems, max_length=3, pattern=_CURRENCY,
                                 shape="an ISO 4217 code such as SEK") or (order or {}).get("currency")
            if currency is None and "currency" not in {p["field"] for p in problems.items}:
                problems.add("currency", "currency is required (no purchase order to take it from)")
            invoice_date = read_date(body, "invoiceDate", problems, required=True)
            due_date = read_date(body, "dueDate", problems) or invoice_date
            tax = read_decimal(body, "taxAmount", problems, default=Decimal(0))
            status = read_choice(body, "status", INVOICE_STATUSES, problems, default="SUBMITTED")
            lines, prefixes = [], []
            for prefix, line in read_lines(body, problems, required=True):
                quantity = read_decimal(line, "quantity", problems, prefix, required=True, positive=True)
                unit_price = read_decimal(line, "unitPrice", problems, prefix, required=True)
                lines.append({
                    "lineNumber": read_int(line, "lineNumber", problems, prefix, required=True),
                    "description": read_text(line, "description", problems, prefix, required=True, max_length=500),
                    "quantity": quantity, "unitPrice": unit_price,
                    "amount": quantity * unit_price if quantity is not None and unit_price is not None else None,
                    "glAccount": read_text(line, "glAccount", problems, prefix, required=True, max_length=20),
                    "costCenter": read_text(line, "costCenter", problems, prefix, max_length=20),
                    "poLineNumber": read_int(line, "poLineNumber", problems, prefix),
                })
                prefixes.append(prefix)
            _unique(lines, prefixes, problems)
            _refuse_if(problems)
            key = (supplier["id"], invoice_number)
            if key in self.invoice_by_number:
                raise Refused(409, [{"code": "DUPLICATE_INVOICE_NUMBER", "field": "invoiceNumber",
                                     "message": f"Supplier '{supplier['externalId']}' already submitted invoice "
                                                f"'{invoice_number}' ({self.invoice_by_number[key]})"}])
            lines.sort(key=lambda line: line["lineNumber"])
            net = sum((line["amount"] for line in lines), Decimal(0))
            ms = self.invoices.stamp(None)
            record_id, sequence = self.invoices.new_id()
            doc = {"id": record_id, "invoiceNumber": invoice_number, "supplierId": supplier["id"],
                   "supplierExternalId": supplier["externalId"],
                   "purchaseOrderId": order["id"] if order else None,
                   "purchaseOrderExternalId": order["externalId"] if order else None,
                   "companyCode": company, "invoiceDate": invoice_date, "dueDate": due_date, "currency": currency,
                   "netAmount": net, "taxAmount": tax, "grossAmount": net + tax, "status": status, "lines": lines,
                   "createdAt": render_ms(ms), "lastModified": render_ms(ms)}
            self.invoices.put(doc, ms, sequence)
            self.invoice_by_number[key] = record_id
            return doc

    def set_invoice_status(self, record_id: str, body: dict) -> dict:
        problems = Problems()
        status = read_choice(body, "status", INVOICE_STATUSES, problems, required=True)
        _refuse_if(problems)
        with self.lock:
            current = self.invoices.get(record_id)
            ms = self.invoices.stamp(record_id)
            doc = {**current, "status": status, "lastModified": render_ms(ms)}
            self.invoices.put(doc, ms, self.invoices.stamps[record_id][1])
            return doc

    # --- receipts (goods received against an order) ---------------------------------------------------------------
    def receive(self, body: dict) -> dict:
        with self.lock:
            problems = Problems()
            order = self._find_order(body, problems)
            if order is None and not problems:
                problems.add("purchaseOrderExternalId", "purchaseOrderExternalId (or purchaseOrderId) is required")
            received_ms = read_timestamp(body, "receivedAt", problems)
            order_lines = {line["lineNumber"] for line in order["lines"]} if order else set()
            lines = []
            for prefix, line in read_lines(body, problems, required=True):
                number = read_int(line, "poLineNumber", problems, prefix, required=True)
                quantity = read_decimal(line, "quantity", problems, prefix, required=True, positive=True)
                if number is not None and order is not None and number not in order_lines:
                    problems.add(prefix + "poLineNumber", f"Purchase order '{order['externalId']}' has no line "
                                                          f"{number}", "UNKNOWN_PO_LINE")
                lines.append({"poLineNumber": number, "quantity": quantity})
            _refuse_if(problems)
            ms = self.receipts.stamp(None)
            record_id, sequence = self.receipts.new_id()
            doc = {"id": record_id, "purchaseOrderId": order["id"], "purchaseOrderExternalId": order["externalId"],
                   "receivedAt": render_ms(received_ms if received_ms is not None else ms), "lines": lines,
                   "lastModified": render_ms(ms)}
            self.receipts.put(doc, ms, sequence)
            return doc


def _unique(lines: list[dict], prefixes: list[str], problems: Problems) -> None:
    seen: set[int] = set()
    for prefix, line in zip(prefixes, lines):
        number = line["lineNumber"]
        if number is None:
            continue
        if number in seen:
            problems.add(prefix + "lineNumber", f"lineNumber {number} appears more than once")
        seen.add(number)
