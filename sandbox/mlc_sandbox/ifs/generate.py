"""Deterministic IFS data: rows are a pure function of (seed, scale, chunk), produced chunk by chunk.

Chunks are independent, so they can be generated in worker processes and streamed into the store without ever
holding a whole entity set in memory. Timestamps are epoch seconds (UTC), dates ISO text, decimals exact JSON-ready
text; the store keeps them in those forms.
"""

from __future__ import annotations

import calendar
import random
from functools import lru_cache
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Iterator

from . import model

# Bump when generated data changes shape or content: it names the cache file.
DATA_VERSION = 3

# Fixed window (not "now") so the same seed gives the same data on any day.
WINDOW_END = calendar.timegm((2026, 11, 1, 0, 0, 0))
WINDOW_START = WINDOW_END - 730 * 86400

COMPANIES = ("10", "20", "30")
COMPANY_SITES = {"10": ("SE01", "SE02"), "20": ("US01",), "30": ("DE01", "DE02")}
COMPANY_CURRENCY = {"10": "SEK", "20": "USD", "30": "EUR"}
COMPANY_COUNTRY = {"10": "SE", "20": "US", "30": "DE"}
COMPANY_LANGUAGE = {"10": "sv", "20": "en", "30": "de"}
COMPANY_WEIGHTS = (0.5, 0.3, 0.2)
CURRENCIES = ("SEK", "USD", "EUR", "GBP", "NOK", "DKK")

PARENT_CHUNK = 5000

WORDS = (
    "Bearing Bolt Cable Valve Pump Filter Gasket Motor Sensor Relay Bracket Hose Seal Panel Switch Spring Fitting "
    "Clamp Flange Coupling Nozzle Washer Gear Shaft Belt Fuse Housing Lever Plate Pipe Rivet Screw Tube Wheel"
).split()
ADJECTIVES = "Steel Copper Hydraulic Pneumatic Stainless Heavy Light Compact Industrial Spare Marine Thermal".split()
N_WORDS, N_ADJECTIVES = len(WORDS), len(ADJECTIVES)
NAME_PARTS = (
    "Nordic Baltic Atlas Vega Orion Polar Delta Summit Granite Harbor Pioneer Apex Fjord Boreal Cobalt Ember "
    "Falcon Glacier Horizon Ironwood Juniper Keystone Lumen Meridian Northwind Oakridge Pinnacle Quarry"
).split()
NAME_SUFFIXES = ("AB", "Inc", "GmbH", "Ltd", "Oy", "AS", "Supply", "Industries", "Trading", "& Sons")
PEOPLE = ("ALAIN", "BRITT", "CHEN", "DANA", "ERIK", "FATIMA", "GUSTAV", "HANNA", "IGOR", "JONAS", "KARIN", "LEO")
UNITS = ("pcs", "kg", "m", "l", "box", "set")
# Notes exercise quoting: apostrophes must survive `''` escaping in $filter and JSON output.
NOTES = (None, None, None, "Urgent", "Deliver to gate 4", "O'Brien's order", "Call before delivery", "Fragile")
ERR_DESCRIPTIONS = (
    "Pump leaking", "Replace bearing", "Annual inspection", "Motor overheating", "Calibrate sensor",
    "Belt worn out", "Noise from gearbox", "Valve stuck",
)


@dataclass(frozen=True)
class Volumes:
    """How many records each set gets for a given scale (number of purchase orders)."""

    purchase_orders: int
    suppliers: int
    customers: int
    posting_proposals: int
    accounts_per_company: int
    vouchers: int
    code_part_values_per_part: int
    work_orders: int

    @classmethod
    def for_scale(cls, scale: int) -> "Volumes":
        return cls(
            purchase_orders=scale,
            suppliers=max(20, scale // 20),
            customers=max(20, scale // 20),
            posting_proposals=max(10, scale // 10),
            accounts_per_company=max(40, min(2000, scale // 500)),
            vouchers=max(10, scale // 10),
            code_part_values_per_part=max(10, min(1000, scale // 1000)),
            work_orders=max(10, scale // 10),
        )


# --- value helpers -----------------------------------------------------------------------------------------------


_POW10 = [10**i for i in range(64)]


def decimal_text(units: int, scale: int, min_scale: int = 2) -> str:
    """Exact text of units * 10**-scale, trailing zeros trimmed down to min_scale decimals."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(-units if sign else units, _POW10[scale])
    if not frac:
        return f"{sign}{whole}.{'0' * min_scale}" if min_scale else f"{sign}{whole}"
    digits = str(frac).rjust(scale, "0").rstrip("0")
    if len(digits) < min_scale:
        digits = digits.ljust(min_scale, "0")
    return f"{sign}{whole}.{digits}"


_EPOCH_DAY = date(1970, 1, 1)
_ISO_DAYS: dict[int, str] = {}


def iso_date(epoch: int) -> str:
    day = epoch // 86400
    text = _ISO_DAYS.get(day)
    if text is None:
        text = _ISO_DAYS[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat()
    return text


def supplier_id(index: int) -> str:
    return f"S{10000 + index}"


def customer_id(index: int) -> str:
    return f"C{10000 + index}"


SUPPLIER_TIERS = ("STRATEGIC", "PREFERRED", "STANDARD", "SPOT")
SUPPLIER_TIER_WEIGHTS = (10, 25, 50, 15)


@lru_cache(maxsize=4)
def supplier_tiers(seed: int, count: int) -> tuple[str, ...]:
    """Every supplier's tier (its SupplierCategory), drawn once per process: an order's Cf_Supplier_Tier repeats its
    supplier's, and orders are generated in chunks that never see the supplier rows."""
    rng = random.Random(f"{seed}:supplier-tiers")
    return tuple(rng.choices(SUPPLIER_TIERS, SUPPLIER_TIER_WEIGHTS, k=count))


def cost_account_range(accounts_per_company: int) -> tuple[int, int]:
    """Indexes of the cost accounts (LogicalAccountType C) every company has: purchases and work post there."""
    return -(-3 * accounts_per_company // 5), -(-4 * accounts_per_company // 5)


def order_no(index: int) -> str:
    return f"P{1000000 + index}"


def account_no(index: int) -> str:
    return str(1000 + index * 10)


class Clock:
    """Change timestamps over the window, with deliberate ties.

    A third of the rows land on a few "batch job" seconds per chunk (many rows share one second), and about 2% land
    on a handful of seed-wide "mass update" seconds (ties far larger than a page).
    """

    def __init__(self, seed: int, rng: random.Random, chunk_rows: int):
        global_rng = random.Random(f"{seed}:mass-updates")
        self.mass_seconds = [global_rng.randrange(WINDOW_START, WINDOW_END) for _ in range(4)]
        self.batch_seconds = [rng.randrange(WINDOW_START, WINDOW_END) for _ in range(max(1, chunk_rows // 60))]
        self.rng = rng

    def tick(self) -> int:
        r = self.rng.random()
        if r < 0.02:
            return self.rng.choice(self.mass_seconds)
        if r < 0.35:
            return self.rng.choice(self.batch_seconds)
        return self.rng.randrange(WINDOW_START, WINDOW_END)


def pick_company(rng: random.Random) -> str:
    r = rng.random()
    return "10" if r < COMPANY_WEIGHTS[0] else "20" if r < COMPANY_WEIGHTS[0] + COMPANY_WEIGHTS[1] else "30"


def party_name(rng: random.Random) -> str:
    return f"{rng.choice(NAME_PARTS)} {rng.choice(NAME_PARTS)} {rng.choice(NAME_SUFFIXES)}"


def currency_rate(rng: random.Random) -> str:
    """Mostly short rates; one in ten carries 24 decimals so exact Decimal handling is visible."""
    if rng.random() < 0.1:
        return decimal_text(rng.randrange(10**23, 10**25), 24, 0)
    return decimal_text(rng.randrange(5000, 150000), 4, 0)


def chunk_rng(seed: int, name: str, chunk: int) -> random.Random:
    return random.Random(f"{seed}:{name}:{chunk}")


# --- generators: each yields (entity_set, row dict) for one chunk ----------------------------------------------------

Rows = Iterator[tuple[str, dict]]


def purchase_orders(seed: int, volumes: Volumes, chunk: int) -> Rows:
    # The hottest loop of the generator (a million orders, three million lines): random picks go through
    # rng.random() and tuple indexing rather than rng.choice/randrange, which cost twice as much.
    rng = chunk_rng(seed, "po", chunk)
    rnd = rng.random
    first = chunk * PARENT_CHUNK
    last = min(volumes.purchase_orders, first + PARENT_CHUNK)
    clock = Clock(seed, rng, (last - first) * 4)
    tick = clock.tick
    po_states = model.PURCHASE_ORDER_STATE.members
    line_progress = po_states[1:6]
    state_cumulative = (5, 25, 50, 60, 75, 95, 100)
    n_suppliers = volumes.suppliers
    stat_groups = ("A", "B", "C", None)
    tax_codes = ("25", "12", "0", None)
    discounts = (0, 0, 0, 5, 10)
    tiers = supplier_tiers(seed, n_suppliers)
    # custom fields draw from their own stream, so the orders' other values stay as before they existed
    custom = chunk_rng(seed, "po-custom-fields", chunk).random
    cost_first, cost_end = cost_account_range(volumes.accounts_per_company)
    cost_accounts = cost_end - cost_first
    cost_centers = volumes.code_part_values_per_part
    for i in range(first, last):
        company = pick_company(rng)
        vendor_index = int(rnd() * n_suppliers)
        vendor_no = supplier_id(vendor_index)
        currency = COMPANY_CURRENCY[company] if rnd() < 0.7 else CURRENCIES[vendor_index % len(CURRENCIES)]
        entered = WINDOW_START + int(rnd() * (WINDOW_END - WINDOW_START - 86400))
        changed = max(entered, tick())
        pick = rnd() * 100
        objstate = po_states[next(k for k, edge in enumerate(state_cumulative) if pick < edge)]
        r = rnd()
        n_lines = 120 + int(rnd() * 280) if r < 0.001 else 10 + int(rnd() * 30) if r < 0.02 else 1 + int(rnd() * 4)
        no = order_no(i)
        sites = COMPANY_SITES[company]
        contract = sites[int(rnd() * len(sites))]
        follows_header = objstate in ("Planned", "Cancelled")
        total_net = 0  # units of 1e-18, the exact sum of the lines
        for line in range(1, n_lines + 1):
            if rnd() < 0.8:
                whole_qty = 1 + int(rnd() * 499)
                qty, qty_text = whole_qty * 1000, f"{whole_qty}.00"
            else:
                qty = 1 + int(rnd() * 499999)
                qty_text = decimal_text(qty, 3)
            if rnd() < 0.04:
                price, price_scale = rng.randrange(10**17, 10**19), 13  # 20+ significant digits on purpose
                price_text = decimal_text(price, 13)
            else:
                price, price_scale = 100 + int(rnd() * 1999900), 2
                price_text = f"{price // 100}.{price % 100:02d}"
            discount = discounts[int(rnd() * 5)]
            net = qty * price * (100 - discount) * _POW10[13 - price_scale]  # scale 3 + 13 + 2 = 18
            total_net += net
            line_changed = changed if rnd() < 0.6 else max(entered, tick())
            line_state = objstate if follows_header else line_progress[int(rnd() * 5)]
            received = line_state in ("Received", "Closed")
            wanted = iso_date(entered + (7 + int(rnd() * 83)) * 86400)
            yield "PurchaseOrderLineNopartSet", {
                "OrderNo": no,
                "LineNo": str(line),
                "ReleaseNo": "1",
                "Company": company,
                "Contract": contract,
                "VendorNo": vendor_no,
                "Objstate": line_state,
                "Description": f"{ADJECTIVES[int(rnd() * N_ADJECTIVES)]} {WORDS[int(rnd() * N_WORDS)]} "
                               f"{100 + int(rnd() * 899)}",
                "StatGrp": stat_groups[int(rnd() * 4)],
                "BuyQtyDue": qty_text,
                "BuyUnitMeas": UNITS[int(rnd() * 6)],
                "BuyUnitPrice": price_text,
                "FbuyUnitPrice": price_text,
                "Discount": str(discount),
                "NetAmount": decimal_text(net, 18),
                "QtyInvoiced": qty_text if received else None,
                "CurrencyCode": currency,
                "TaxCode": tax_codes[int(rnd() * 4)],
                "WantedDeliveryDate": wanted,
                "PlannedReceiptDate": wanted if rnd() < 0.7 else None,
                "ArrivalDate": wanted if received or line_state == "Arrived" else None,
                "ProjectId": f"PRJ{100 + int(rnd() * 40)}" if rnd() < 0.1 else None,
                "Taxable": rnd() < 0.9,
                "DateEntered": entered,
                "LastActivityDate": line_changed,
                "_objid": i * 1000 + line,
                "_objversion": line_changed,
            }
        tax = total_net * 25  # scale 20
        yield "PurchaseOrderSet", {
            "OrderNo": no,
            "Company": company,
            "Contract": contract,
            "VendorNo": vendor_no,
            "Objstate": objstate,
            "OrderDate": iso_date(entered),
            "WantedReceiptDate": iso_date(entered + rng.randrange(7, 90) * 86400) if rnd() < 0.9 else None,
            "BuyerCode": PEOPLE[int(rnd() * len(PEOPLE))],
            "AuthorizeCode": PEOPLE[int(rnd() * len(PEOPLE))] if objstate != "Planned" else None,
            "CurrencyCode": currency,
            "CurrencyRate": "1" if currency == COMPANY_CURRENCY[company] else currency_rate(rng),
            "TotalNetAmount": decimal_text(total_net, 18),
            "TotalTaxAmount": decimal_text(tax, 20),
            "TotalGrossAmount": decimal_text(total_net * 100 + tax, 20),
            "PayTermId": rng.choice(("30", "30", "60", "10D2")),
            "ShipViaCode": rng.choice(("TRK", "AIR", "SEA", None)),
            "DeliveryTerms": rng.choice(("FCA", "DAP", "EXW", "CIF")),
            "LanguageCode": COMPANY_LANGUAGE[company],
            "CustomerPoNo": f"CPO-{rng.randrange(10**5, 10**6)}" if rnd() < 0.2 else None,
            "NoteText": NOTES[int(rnd() * len(NOTES))],
            "RevisionNo": rng.choice((1, 1, 1, 2, 3)),
            "NoOfLines": n_lines,
            "B2bOrder": rnd() < 0.3,
            "Printed": objstate != "Planned",
            "Cf_Project_Ref": f"CF{rng.randrange(1000, 9999)}" if rnd() < 0.15 else None,
            "Cf_Supplier_Tier": tiers[vendor_index],
            "Cf_Gl_Account": account_no(cost_first + int(custom() * cost_accounts)),
            "Cf_Cost_Center": f"B{int(custom() * cost_centers):04d}",
            "Cf_Jira_Key": None,
            "Cf_Jira_Status": None,
            "DateEntered": entered,
            "ChangedDate": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


def suppliers(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "supplier", chunk)
    first, last = chunk * PARENT_CHUNK, min(volumes.suppliers, (chunk + 1) * PARENT_CHUNK)
    clock = Clock(seed, rng, last - first)
    tiers = supplier_tiers(seed, volumes.suppliers)
    for i in range(first, last):
        company = pick_company(rng)
        changed = clock.tick()
        yield "SupplierInfoGeneralSet", {
            "SupplierId": supplier_id(i),
            "Name": party_name(rng),
            "Company": company,
            "Objstate": rng.choices(model.SUPPLIER_STATE.members, (90, 5, 5))[0],
            "AssociationNo": f"{rng.randrange(100000, 999999)}-{rng.randrange(1000, 9999)}",
            "Country": rng.choice(("SE", "US", "DE", "NO", "FI", "GB", "PL")),
            "DefaultLanguage": COMPANY_LANGUAGE[company],
            "CorporateForm": rng.choice(("AB", "LLC", "GMBH", None)),
            "SupplierCategory": tiers[i],
            "DefaultCurrency": CURRENCIES[i % len(CURRENCIES)],
            "CreditLimit": decimal_text(rng.randrange(10, 5000) * 1000, 0, 2) if rng.random() < 0.6 else None,
            "CreationDate": iso_date(rng.randrange(WINDOW_START - 5 * 365 * 86400, changed)),
            "B2bSupplier": rng.random() < 0.2,
            "OneTime": rng.random() < 0.05,
            "ChangedDate": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


def customers(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "customer", chunk)
    first, last = chunk * PARENT_CHUNK, min(volumes.customers, (chunk + 1) * PARENT_CHUNK)
    clock = Clock(seed, rng, last - first)
    for i in range(first, last):
        company = pick_company(rng)
        changed = clock.tick()
        yield "CustomerInfoSet", {
            "CustomerId": customer_id(i),
            "Name": party_name(rng),
            "Company": company,
            "Objstate": rng.choices(model.CUSTOMER_STATE.members, (92, 4, 4))[0],
            "AssociationNo": f"{rng.randrange(100000, 999999)}-{rng.randrange(1000, 9999)}",
            "Country": rng.choice(("SE", "US", "DE", "NO", "FI", "GB", "FR")),
            "DefaultLanguage": COMPANY_LANGUAGE[company],
            "CustomerCategory": rng.choice(("CUSTOMER", "PROSPECT", "END_CUSTOMER")),
            "DefaultCurrency": COMPANY_CURRENCY[company],
            "CreditLimit": decimal_text(rng.randrange(10, 5000) * 1000, 0, 2) if rng.random() < 0.7 else None,
            "CreationDate": iso_date(rng.randrange(WINDOW_START - 5 * 365 * 86400, changed)),
            "OneTime": rng.random() < 0.03,
            "ChangedDate": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


INVOICE_NOTES = ("Partial delivery invoiced", "Freight added by supplier; check against the PO")


def invoice_note(index: int) -> str | None:
    """Every fifth supplier invoice carries a note (by position, not drawn: the proposals' random values stay as they
    were before notes existed, and any five consecutive invoices include one with a note)."""
    return INVOICE_NOTES[index // 5 % len(INVOICE_NOTES)] if index % 5 == 4 else None


def posting_proposals(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "posting-proposal", chunk)
    first, last = chunk * PARENT_CHUNK, min(volumes.posting_proposals, (chunk + 1) * PARENT_CHUNK)
    clock = Clock(seed, rng, (last - first) * 3)
    states = model.POSTING_PROPOSAL_STATE.members
    for i in range(first, last):
        company = pick_company(rng)
        invoice_no = f"INV-{company}-{100000 + i}"
        changed = clock.tick()
        invoice_day = changed - rng.randrange(0, 30) * 86400
        objstate = rng.choices(states, (10, 15, 20, 50, 5))[0]
        line_state = {"Posted": "Posted", "Authorized": "Authorized"}.get(objstate, "Preliminary")
        net_total = 0  # scale 2
        accounts = volumes.accounts_per_company
        n_lines = rng.randint(1, 6)
        for line in range(1, n_lines + 1):
            amount = rng.randrange(100, 10_000_000)
            net_total += amount
            yield "PostingProposalLineSet", {
                "Company": company,
                "InvoiceNo": invoice_no,
                "LineNo": line,
                "Objstate": line_state,
                "Account": account_no(rng.randrange(accounts)),
                "CodeB": f"CC{rng.randrange(100, 130)}",
                "CodeC": f"PR{rng.randrange(100, 120)}" if rng.random() < 0.4 else None,
                "CodeD": None if rng.random() < 0.7 else f"D{rng.randrange(10, 20)}",
                "CurrencyAmount": decimal_text(amount, 2),
                "Amount": decimal_text(amount, 2),
                "Quantity": decimal_text(rng.randrange(1, 100), 0, 0) if rng.random() < 0.3 else None,
                "Text": rng.choice(("Freight", "Material", "Service fee", "Consulting", None)),
                "Rowversion": changed,
                "_objid": i * 100 + line,
                "_objversion": changed,
            }
        vat = net_total * 25  # scale 4
        yield "PostingProposalHeadSet", {
            "Company": company,
            "InvoiceNo": invoice_no,
            "InvoiceId": 7_000_000_000 + i,
            "Objstate": objstate,
            "Identity": supplier_id(rng.randrange(volumes.suppliers)),
            "PartyType": "Supplier",
            "PurchaseOrderNo": order_no(rng.randrange(volumes.purchase_orders)) if volumes.purchase_orders else None,
            "InvoiceDate": iso_date(invoice_day),
            "DueDate": iso_date(invoice_day + 30 * 86400),
            "CurrencyCode": COMPANY_CURRENCY[company],
            "CurrRate": "1",
            "NetAmount": decimal_text(net_total, 2),
            "VatAmount": decimal_text(vat, 4),
            "GrossAmount": decimal_text(net_total * 100 + vat, 4),
            "AuthorizerId": rng.choice(PEOPLE) if objstate in ("Authorized", "Posted") else None,
            "NoteText": invoice_note(i),
            "Rowversion": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


def accounts(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "account", chunk)
    clock = Clock(seed, rng, volumes.accounts_per_company * len(COMPANIES))
    kinds = (("A", "Asset"), ("L", "Liability"), ("R", "Revenue"), ("C", "Cost"), ("S", "Stat"))
    objid = 0
    for company in COMPANIES:
        for i in range(volumes.accounts_per_company):
            objid += 1
            logical, accnt_type = kinds[(i * 5) // volumes.accounts_per_company]
            changed = clock.tick()
            yield "AccountSet", {
                "Company": company,
                "Account": account_no(i),
                "Description": f"{accnt_type} {rng.choice(WORDS)} {i}",
                "Objstate": "Active" if rng.random() < 0.95 else "Blocked",
                "AccntGroup": f"G{logical}{i % 7}",
                "AccntType": accnt_type.upper(),
                "LogicalAccountType": logical,
                "CurrencyCode": rng.choice((None, COMPANY_CURRENCY[company])),
                "LedgerAccount": rng.random() < 0.1,
                "ValidFrom": "2000-01-01",
                "ValidUntil": "2049-12-31",
                "ChangedDate": changed,
                "_objid": objid,
                "_objversion": changed,
            }


def vouchers(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "voucher", chunk)
    first, last = chunk * PARENT_CHUNK, min(volumes.vouchers, (chunk + 1) * PARENT_CHUNK)
    clock = Clock(seed, rng, (last - first) * 4)
    for i in range(first, last):
        company = COMPANIES[i % 3]
        voucher_type = ("A", "I", "M", "N")[(i // 3) % 4]
        changed = clock.tick()
        voucher_day = changed - rng.randrange(0, 5) * 86400
        voucher_date = iso_date(voucher_day)
        year = int(voucher_date[:4])
        objstate = rng.choices(model.VOUCHER_STATE.members, (5, 10, 80, 5))[0]
        key = {"Company": company, "VoucherType": voucher_type, "AccountingYear": year, "VoucherNo": i + 1}
        n_rows = rng.randint(2, 6)
        row_state = {"Confirmed": "Updated", "Cancelled": "Cancelled"}.get(objstate, "Open")
        total = 0
        balance = 0
        for row in range(1, n_rows + 1):
            if row < n_rows:
                amount = rng.randrange(-5_000_000, 5_000_000) or 1
            else:
                amount = -balance  # vouchers balance to zero
            balance += amount
            total += abs(amount)
            fine = rng.random() < 0.05
            currency = COMPANY_CURRENCY[company]
            codes = {f"Code{part}": None for part in model.CODE_PARTS}
            for part in model.CODE_PARTS[: rng.randint(1, 9)]:
                if rng.random() < 0.6:
                    codes[f"Code{part}"] = f"{part}{rng.randrange(volumes.code_part_values_per_part):04d}"
            yield "VoucherRowSet", {
                **key,
                "RowNo": row,
                "Objstate": row_state,
                "Account": account_no(rng.randrange(volumes.accounts_per_company)),
                **codes,
                "CurrencyCode": currency,
                "CurrencyRate": "1",
                "CurrencyDebetAmount": decimal_text(amount, 2) if amount > 0 else None,
                "CurrencyCreditAmount": decimal_text(-amount, 2) if amount < 0 else None,
                "DebetAmount": decimal_text(amount, 2) if amount > 0 else None,
                "CreditAmount": decimal_text(-amount, 2) if amount < 0 else None,
                # one row in twenty carries sub-cent allocation digits (precision far beyond a double)
                "Amount": decimal_text(amount * 10**20 + (rng.randrange(10**19) if fine else 0), 22),
                "Quantity": decimal_text(rng.randrange(1, 1000), 0, 0) if rng.random() < 0.2 else None,
                "Text": rng.choice((None, "Accrual", "Reversal", "Allocation", "Period end")),
                "EntryDate": voucher_date,
                "DateChanged": changed,
                "_objid": i * 100 + row,
                "_objversion": changed,
            }
        yield "VoucherSet", {
            **key,
            "Objstate": objstate,
            "AccountingPeriod": int(voucher_date[5:7]),
            "VoucherDate": voucher_date,
            "VoucherText": rng.choice((None, "Supplier invoice", "Manual entry", "Period allocation")),
            "UserId": rng.choice(PEOPLE),
            "ApprovedByUserid": rng.choice(PEOPLE) if objstate in ("Approved", "Confirmed") else None,
            "TotalAmount": decimal_text(total, 2),
            "InterimVoucher": rng.random() < 0.05,
            "DateReg": voucher_day,
            "DateChanged": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


def code_part_values(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "code-part-value", chunk)
    clock = Clock(seed, rng, volumes.code_part_values_per_part * 27)
    names = dict(zip(model.CODE_PARTS, ("CostCenter", "Project", "Object", "Department", "Region", "Product",
                                         "Segment", "Activity", "Reserve")))
    objid = 0
    for company in COMPANIES:
        for part in model.CODE_PARTS:
            for i in range(volumes.code_part_values_per_part):
                objid += 1
                changed = clock.tick()
                yield "CodePartValueSet", {
                    "Company": company,
                    "CodePart": part,
                    "CodePartValue": f"{part}{i:04d}",
                    "Description": f"{names[part]} {rng.choice(NAME_PARTS)} {i}",
                    "Objstate": "Active" if rng.random() < 0.93 else "Blocked",
                    "CodeName": names[part],
                    "ValidFrom": "2000-01-01",
                    "ValidUntil": "2049-12-31" if rng.random() < 0.9 else iso_date(changed + 365 * 86400),
                    "ChangedDate": changed,
                    "_objid": objid,
                    "_objversion": changed,
                }


def work_orders(seed: int, volumes: Volumes, chunk: int) -> Rows:
    rng = chunk_rng(seed, "work-order", chunk)
    first, last = chunk * PARENT_CHUNK, min(volumes.work_orders, (chunk + 1) * PARENT_CHUNK)
    clock = Clock(seed, rng, last - first)
    states = model.WORK_ORDER_STATE.members
    cost_first, cost_end = cost_account_range(volumes.accounts_per_company)
    custom = chunk_rng(seed, "work-order-custom-fields", chunk)
    for i in range(first, last):
        company = pick_company(rng)
        changed = clock.tick()
        registered = changed - rng.randrange(0, 60 * 86400)
        objstate = rng.choices(states, (15, 20, 20, 15, 10, 20))[0]
        progressed = states.index(objstate)
        plan_start = registered + rng.randrange(1, 14) * 86400
        contract = rng.choice(COMPANY_SITES[company])
        yield "ActiveSeparateSet", {
            "WoNo": 100000 + i,
            "Company": company,
            "Contract": contract,
            "Objstate": objstate,
            "ErrDescr": rng.choice(ERR_DESCRIPTIONS),
            "MchCode": f"MCH-{rng.randrange(100, 999)}",
            "MchCodeContract": contract,
            "OrgCode": rng.choice(("MAINT", "ELEC", "MECH", None)),
            "WorkTypeId": rng.choice(("PM", "CM", "INSP", None)),
            "PriorityId": rng.choice(("1", "2", "3", None)),
            "ReportedBy": rng.choice(PEOPLE),
            "CustomerNo": customer_id(rng.randrange(volumes.customers)) if rng.random() < 0.2 else None,
            "PlanHrs": decimal_text(rng.randrange(5, 400), 1, 1),
            "CostEstimate": decimal_text(rng.randrange(1000, 10_000_000), 2) if rng.random() < 0.5 else None,
            "RegDate": registered,
            "PlanSDate": plan_start,
            "PlanFDate": plan_start + rng.randrange(1, 48) * 3600,
            "RealSDate": plan_start if progressed >= 2 else None,
            "RealFDate": plan_start + rng.randrange(1, 48) * 3600 if progressed >= 3 else None,
            "Cf_Gl_Account": account_no(custom.randrange(cost_first, cost_end)),
            "Cf_Jira_Key": None,
            "Cf_Jira_Status": None,
            "LastActivityDate": changed,
            "_objid": i + 1,
            "_objversion": changed,
        }


@dataclass(frozen=True)
class Family:
    """One generator and how many chunks it needs at a volume."""

    name: str
    generate: Callable[[int, Volumes, int], Rows]
    count: Callable[[Volumes], int]


FAMILIES = (
    Family("purchase_orders", purchase_orders, lambda v: v.purchase_orders),
    Family("suppliers", suppliers, lambda v: v.suppliers),
    Family("customers", customers, lambda v: v.customers),
    Family("posting_proposals", posting_proposals, lambda v: v.posting_proposals),
    Family("accounts", accounts, lambda v: 1),
    Family("vouchers", vouchers, lambda v: v.vouchers),
    Family("code_part_values", code_part_values, lambda v: 1),
    Family("work_orders", work_orders, lambda v: v.work_orders),
)


def chunk_plan(volumes: Volumes) -> list[tuple[str, int]]:
    """Every (family, chunk) to generate, largest family first so parallel workers stay busy."""
    plan = []
    for family in FAMILIES:
        total = family.count(volumes)
        chunks = 1 if family.name in ("accounts", "code_part_values") else -(-total // PARENT_CHUNK)
        plan.extend((family.name, c) for c in range(chunks))
    return plan


FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
