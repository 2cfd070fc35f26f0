"""The catalogue of the IFS stand-in: projections, entity sets, their fields and Edm types.

Everything else (storage, CSDL, query translation, data generation, rendering) is derived from this one module, so a
field exists everywhere or nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

NAMESPACE_PREFIX = "IfsApp"

STRING = "Edm.String"
DECIMAL = "Edm.Decimal"
DATE = "Edm.Date"
DATETIME = "Edm.DateTimeOffset"
INT32 = "Edm.Int32"
INT64 = "Edm.Int64"
BOOLEAN = "Edm.Boolean"
ENUM = "enum"

NEXT_LINK = "nextLink"
TOP_SKIP = "top/skip"


@dataclass(frozen=True)
class EnumType:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Field:
    name: str
    edm: str
    nullable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | str | None = None
    enum: EnumType | None = None

    @property
    def sql_type(self) -> str:
        if self.edm in (INT32, INT64, BOOLEAN, DATETIME):
            return "INTEGER"
        return "TEXT"


def string(name: str, max_length: int, nullable: bool = True) -> Field:
    return Field(name, STRING, nullable, max_length=max_length)


def money(name: str, nullable: bool = True, scale: int | str = "variable") -> Field:
    return Field(name, DECIMAL, nullable, precision=38, scale=scale)


def date(name: str, nullable: bool = True) -> Field:
    return Field(name, DATE, nullable)


def timestamp(name: str, nullable: bool = True) -> Field:
    return Field(name, DATETIME, nullable, precision=0)


def int32(name: str, nullable: bool = True) -> Field:
    return Field(name, INT32, nullable)


def int64(name: str, nullable: bool = True) -> Field:
    return Field(name, INT64, nullable)


def boolean(name: str, nullable: bool = True) -> Field:
    return Field(name, BOOLEAN, nullable)


def state(enum: EnumType) -> Field:
    return Field("Objstate", ENUM, False, enum=enum)


@dataclass(frozen=True)
class Navigation:
    name: str
    target_set: str
    key_pairs: tuple[tuple[str, str], ...]  # (property on this entity, property on the target)
    collection: bool
    partner: str


@dataclass(frozen=True)
class Action:
    """A bound action that moves a record from one of `from_states` to `to_state` (IFS changes Objstate only so)."""

    name: str
    from_states: tuple[str, ...]
    to_state: str
    past_participle: str  # for messages: "cannot be <released> in state Closed"


@dataclass(frozen=True)
class Entity:
    projection: str
    entity_set: str
    type_name: str
    luname: str
    keys: tuple[str, ...]
    change_column: str
    paging: str
    fields: tuple[Field, ...]
    navigations: tuple[Navigation, ...] = ()

    @cached_property
    def field_by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def key_fields(self) -> tuple[Field, ...]:
        return tuple(self.field_by_name[k] for k in self.keys)

    @cached_property
    def navigation_by_name(self) -> dict[str, Navigation]:
        return {n.name: n for n in self.navigations}

    @cached_property
    def state_enum(self) -> EnumType:
        return self.field_by_name["Objstate"].enum

    @cached_property
    def keyref_names(self) -> tuple[str, ...]:
        """IFS database column names of the keys, as `keyref` spells them (OrderNo -> ORDER_NO)."""
        return tuple(re.sub(r"(?<!^)(?=[A-Z])", "_", k).upper() for k in self.keys)

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_PREFIX}.{self.projection}"

    @cached_property
    def actions(self) -> dict[str, Action]:
        """The bound actions by their CSDL name (`<TypeName>_<Action>`)."""
        _, actions = BOUND_ACTIONS.get(self.entity_set, ("", ()))
        return {f"{self.type_name}_{a.name}": a for a in actions}

    @property
    def label(self) -> str:
        """What a person calls one record, for messages ("purchase order")."""
        return BOUND_ACTIONS.get(self.entity_set, (self.type_name,))[0]

    @property
    def table(self) -> str:
        return self.entity_set


@dataclass(frozen=True)
class Service:
    projection: str
    entities: tuple[Entity, ...]  # the entity sets served
    # entity types whose set this tenant does not serve (a profile's missing_entity_sets): still in $metadata as
    # types, since navigations of the served sets name them, but without an entity set
    types_without_set: tuple[Entity, ...] = ()

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_PREFIX}.{self.projection}"

    @cached_property
    def entity_by_set(self) -> dict[str, Entity]:
        return {e.entity_set: e for e in self.entities}

    def target(self, navigation: Navigation) -> Entity | None:
        """The entity set a navigation leads to, as this service serves it; None when it serves no such set."""
        return self.entity_by_set.get(navigation.target_set)

    @cached_property
    def entity_types(self) -> tuple[Entity, ...]:
        return self.entities + self.types_without_set

    @cached_property
    def enum_types(self) -> dict[str, EnumType]:
        found: dict[str, EnumType] = {}
        for entity in self.entity_types:
            for f in entity.fields:
                if f.enum is not None:
                    found[f.enum.name] = f.enum
        return found


# --- state machines --------------------------------------------------------------------------------------------

PURCHASE_ORDER_STATE = EnumType(
    "PurchaseOrderState", ("Planned", "Released", "Confirmed", "Arrived", "Received", "Closed", "Cancelled")
)
PURCHASE_ORDER_LINE_STATE = EnumType(
    "PurchaseOrderLineState", ("Planned", "Released", "Confirmed", "Arrived", "Received", "Closed", "Cancelled")
)
SUPPLIER_STATE = EnumType("SupplierInfoGeneralState", ("Active", "Blocked", "Inactive"))
CUSTOMER_STATE = EnumType("CustomerInfoState", ("Active", "Blocked", "Inactive"))
POSTING_PROPOSAL_STATE = EnumType(
    "PostingProposalHeadState", ("Preliminary", "AwaitingAuthorization", "Authorized", "Posted", "Cancelled")
)
POSTING_PROPOSAL_LINE_STATE = EnumType("PostingProposalLineState", ("Preliminary", "Authorized", "Posted"))
ACCOUNT_STATE = EnumType("AccountState", ("Active", "Blocked"))
VOUCHER_STATE = EnumType("VoucherState", ("AwaitingApproval", "Approved", "Confirmed", "Cancelled"))
VOUCHER_ROW_STATE = EnumType("VoucherRowState", ("Open", "Updated", "Cancelled"))
CODE_PART_VALUE_STATE = EnumType("AccountingCodePartValueState", ("Active", "Blocked"))
WORK_ORDER_STATE = EnumType(
    "ActiveSeparateState", ("Prepared", "Released", "Started", "WorkDone", "Reported", "Finished")
)

CODE_PARTS = tuple("BCDEFGHIJ")

# --- entities --------------------------------------------------------------------------------------------------

PURCHASE_ORDER = Entity(
    projection="PurchaseOrderHandling",
    entity_set="PurchaseOrderSet",
    type_name="PurchaseOrder",
    luname="PurchaseOrder",
    keys=("OrderNo",),
    change_column="ChangedDate",
    paging=NEXT_LINK,
    fields=(
        string("OrderNo", 12, nullable=False),
        string("Company", 20, nullable=False),
        string("Contract", 5, nullable=False),
        string("VendorNo", 20, nullable=False),
        state(PURCHASE_ORDER_STATE),
        date("OrderDate", nullable=False),
        date("WantedReceiptDate"),
        string("BuyerCode", 20),
        string("AuthorizeCode", 20),
        string("CurrencyCode", 3, nullable=False),
        money("CurrencyRate", nullable=False),
        money("TotalNetAmount", nullable=False),
        money("TotalTaxAmount", nullable=False),
        money("TotalGrossAmount", nullable=False),
        string("PayTermId", 20),
        string("ShipViaCode", 3),
        string("DeliveryTerms", 5),
        string("LanguageCode", 2),
        string("CustomerPoNo", 50),
        string("NoteText", 2000),
        int32("RevisionNo", nullable=False),
        int32("NoOfLines", nullable=False),
        boolean("B2bOrder", nullable=False),
        boolean("Printed", nullable=False),
        string("Cf_Project_Ref", 20),
        # IFS custom attributes (Cf_*): the supplier's tier (derived), the posting account and cost centre (code
        # part B) of the order, and the Jira issue tracking it
        string("Cf_Supplier_Tier", 20),
        string("Cf_Gl_Account", 20),
        string("Cf_Cost_Center", 20),
        string("Cf_Jira_Key", 20),
        string("Cf_Jira_Status", 50),
        timestamp("DateEntered", nullable=False),
        timestamp("ChangedDate", nullable=False),
    ),
    navigations=(
        Navigation(
            "PurchaseOrderLines", "PurchaseOrderLineNopartSet", (("OrderNo", "OrderNo"),), True, "OrderRef"
        ),
    ),
)

PURCHASE_ORDER_LINE = Entity(
    projection="PurchaseOrderHandling",
    entity_set="PurchaseOrderLineNopartSet",
    type_name="PurchaseOrderLineNopart",
    luname="PurchaseOrderLineNopart",
    keys=("OrderNo", "LineNo", "ReleaseNo"),
    change_column="LastActivityDate",
    paging=NEXT_LINK,
    fields=(
        string("OrderNo", 12, nullable=False),
        string("LineNo", 4, nullable=False),
        string("ReleaseNo", 4, nullable=False),
        string("Company", 20, nullable=False),
        string("Contract", 5, nullable=False),
        string("VendorNo", 20, nullable=False),
        state(PURCHASE_ORDER_LINE_STATE),
        string("Description", 200, nullable=False),
        string("StatGrp", 10),
        money("BuyQtyDue", nullable=False),
        string("BuyUnitMeas", 10, nullable=False),
        money("BuyUnitPrice", nullable=False),
        money("FbuyUnitPrice", nullable=False),
        money("Discount", nullable=False),
        money("NetAmount", nullable=False),
        money("QtyInvoiced"),
        string("CurrencyCode", 3, nullable=False),
        string("TaxCode", 20),
        date("WantedDeliveryDate", nullable=False),
        date("PlannedReceiptDate"),
        date("ArrivalDate"),
        string("ProjectId", 10),
        boolean("Taxable", nullable=False),
        timestamp("DateEntered", nullable=False),
        timestamp("LastActivityDate", nullable=False),
    ),
    navigations=(Navigation("OrderRef", "PurchaseOrderSet", (("OrderNo", "OrderNo"),), False, "PurchaseOrderLines"),),
)

SUPPLIER = Entity(
    projection="SupplierHandling",
    entity_set="SupplierInfoGeneralSet",
    type_name="SupplierInfoGeneral",
    luname="SupplierInfoGeneral",
    keys=("SupplierId",),
    change_column="ChangedDate",
    paging=TOP_SKIP,
    fields=(
        string("SupplierId", 20, nullable=False),
        string("Name", 100, nullable=False),
        string("Company", 20, nullable=False),
        state(SUPPLIER_STATE),
        string("AssociationNo", 50),
        string("Country", 2, nullable=False),
        string("DefaultLanguage", 2, nullable=False),
        string("CorporateForm", 8),
        string("SupplierCategory", 20, nullable=False),
        string("DefaultCurrency", 3, nullable=False),
        money("CreditLimit"),
        date("CreationDate", nullable=False),
        boolean("B2bSupplier", nullable=False),
        boolean("OneTime", nullable=False),
        timestamp("ChangedDate", nullable=False),
    ),
)

CUSTOMER = Entity(
    projection="CustomerHandling",
    entity_set="CustomerInfoSet",
    type_name="CustomerInfo",
    luname="CustomerInfo",
    keys=("CustomerId",),
    change_column="ChangedDate",
    paging=TOP_SKIP,
    fields=(
        string("CustomerId", 20, nullable=False),
        string("Name", 100, nullable=False),
        string("Company", 20, nullable=False),
        state(CUSTOMER_STATE),
        string("AssociationNo", 50),
        string("Country", 2, nullable=False),
        string("DefaultLanguage", 2, nullable=False),
        string("CustomerCategory", 20, nullable=False),
        string("DefaultCurrency", 3, nullable=False),
        money("CreditLimit"),
        date("CreationDate", nullable=False),
        boolean("OneTime", nullable=False),
        timestamp("ChangedDate", nullable=False),
    ),
)

POSTING_PROPOSAL_HEAD = Entity(
    projection="ManSuppInvoiceHandling",
    entity_set="PostingProposalHeadSet",
    type_name="PostingProposalHead",
    luname="PostingProposalHead",
    keys=("Company", "InvoiceNo"),
    change_column="Rowversion",
    paging=NEXT_LINK,
    fields=(
        string("Company", 20, nullable=False),
        string("InvoiceNo", 50, nullable=False),
        int64("InvoiceId", nullable=False),
        state(POSTING_PROPOSAL_STATE),
        string("Identity", 20, nullable=False),
        string("PartyType", 20, nullable=False),
        string("PurchaseOrderNo", 12),
        date("InvoiceDate", nullable=False),
        date("DueDate", nullable=False),
        string("CurrencyCode", 3, nullable=False),
        money("CurrRate", nullable=False),
        money("NetAmount", nullable=False),
        money("VatAmount", nullable=False),
        money("GrossAmount", nullable=False),
        string("AuthorizerId", 30),
        # the supplier's or AP's note; invoices arriving from JAGGAER carry their invoice/PO discrepancies here
        string("NoteText", 2000),
        timestamp("Rowversion", nullable=False),
    ),
    navigations=(
        Navigation(
            "PostingProposalLines",
            "PostingProposalLineSet",
            (("Company", "Company"), ("InvoiceNo", "InvoiceNo")),
            True,
            "HeadRef",
        ),
    ),
)

POSTING_PROPOSAL_LINE = Entity(
    projection="ManSuppInvoiceHandling",
    entity_set="PostingProposalLineSet",
    type_name="PostingProposalLine",
    luname="PostingProposalLine",
    keys=("Company", "InvoiceNo", "LineNo"),
    change_column="Rowversion",
    paging=NEXT_LINK,
    fields=(
        string("Company", 20, nullable=False),
        string("InvoiceNo", 50, nullable=False),
        int32("LineNo", nullable=False),
        state(POSTING_PROPOSAL_LINE_STATE),
        string("Account", 20, nullable=False),
        string("CodeB", 20),
        string("CodeC", 20),
        string("CodeD", 20),
        money("CurrencyAmount", nullable=False),
        money("Amount", nullable=False),
        money("Quantity"),
        string("Text", 200),
        timestamp("Rowversion", nullable=False),
    ),
    navigations=(
        Navigation(
            "HeadRef",
            "PostingProposalHeadSet",
            (("Company", "Company"), ("InvoiceNo", "InvoiceNo")),
            False,
            "PostingProposalLines",
        ),
    ),
)

ACCOUNT = Entity(
    projection="AccountsHandling",
    entity_set="AccountSet",
    type_name="Account",
    luname="Account",
    keys=("Company", "Account"),
    change_column="ChangedDate",
    paging=TOP_SKIP,
    fields=(
        string("Company", 20, nullable=False),
        string("Account", 20, nullable=False),
        string("Description", 100, nullable=False),
        state(ACCOUNT_STATE),
        string("AccntGroup", 20, nullable=False),
        string("AccntType", 20, nullable=False),
        string("LogicalAccountType", 1, nullable=False),
        string("CurrencyCode", 3),
        boolean("LedgerAccount", nullable=False),
        date("ValidFrom", nullable=False),
        date("ValidUntil", nullable=False),
        timestamp("ChangedDate", nullable=False),
    ),
)

VOUCHER = Entity(
    projection="VoucherHandling",
    entity_set="VoucherSet",
    type_name="Voucher",
    luname="Voucher",
    keys=("Company", "VoucherType", "AccountingYear", "VoucherNo"),
    change_column="DateChanged",
    paging=NEXT_LINK,
    fields=(
        string("Company", 20, nullable=False),
        string("VoucherType", 3, nullable=False),
        int32("AccountingYear", nullable=False),
        int32("VoucherNo", nullable=False),
        state(VOUCHER_STATE),
        int32("AccountingPeriod", nullable=False),
        date("VoucherDate", nullable=False),
        string("VoucherText", 200),
        string("UserId", 30, nullable=False),
        string("ApprovedByUserid", 30),
        money("TotalAmount", nullable=False),
        boolean("InterimVoucher", nullable=False),
        timestamp("DateReg", nullable=False),
        timestamp("DateChanged", nullable=False),
    ),
    navigations=(
        Navigation(
            "VoucherRows",
            "VoucherRowSet",
            (
                ("Company", "Company"),
                ("VoucherType", "VoucherType"),
                ("AccountingYear", "AccountingYear"),
                ("VoucherNo", "VoucherNo"),
            ),
            True,
            "VoucherRef",
        ),
    ),
)

VOUCHER_ROW = Entity(
    projection="VoucherHandling",
    entity_set="VoucherRowSet",
    type_name="VoucherRow",
    luname="VoucherRow",
    keys=("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"),
    change_column="DateChanged",
    paging=NEXT_LINK,
    fields=(
        string("Company", 20, nullable=False),
        string("VoucherType", 3, nullable=False),
        int32("AccountingYear", nullable=False),
        int32("VoucherNo", nullable=False),
        int32("RowNo", nullable=False),
        state(VOUCHER_ROW_STATE),
        string("Account", 20, nullable=False),
        *(string(f"Code{part}", 20) for part in CODE_PARTS),
        string("CurrencyCode", 3, nullable=False),
        money("CurrencyRate", nullable=False),
        money("CurrencyDebetAmount"),
        money("CurrencyCreditAmount"),
        money("DebetAmount"),
        money("CreditAmount"),
        money("Amount", nullable=False),
        money("Quantity"),
        string("Text", 200),
        date("EntryDate", nullable=False),
        timestamp("DateChanged", nullable=False),
    ),
    navigations=(
        Navigation(
            "VoucherRef",
            "VoucherSet",
            (
                ("Company", "Company"),
                ("VoucherType", "VoucherType"),
                ("AccountingYear", "AccountingYear"),
                ("VoucherNo", "VoucherNo"),
            ),
            False,
            "VoucherRows",
        ),
    ),
)

CODE_PART_VALUE = Entity(
    projection="CodePartValuesHandling",
    entity_set="CodePartValueSet",
    type_name="AccountingCodePartValue",
    luname="AccountingCodePartValue",
    keys=("Company", "CodePart", "CodePartValue"),
    change_column="ChangedDate",
    paging=TOP_SKIP,
    fields=(
        string("Company", 20, nullable=False),
        string("CodePart", 1, nullable=False),
        string("CodePartValue", 20, nullable=False),
        string("Description", 100, nullable=False),
        state(CODE_PART_VALUE_STATE),
        string("CodeName", 20, nullable=False),
        date("ValidFrom", nullable=False),
        date("ValidUntil", nullable=False),
        timestamp("ChangedDate", nullable=False),
    ),
)

WORK_ORDER = Entity(
    projection="ActiveWorkOrdersHandling",
    entity_set="ActiveSeparateSet",
    type_name="ActiveSeparate",
    luname="ActiveSeparate",
    keys=("WoNo",),
    change_column="LastActivityDate",
    paging=TOP_SKIP,
    fields=(
        int32("WoNo", nullable=False),
        string("Company", 20, nullable=False),
        string("Contract", 5, nullable=False),
        state(WORK_ORDER_STATE),
        string("ErrDescr", 60, nullable=False),
        string("MchCode", 100),
        string("MchCodeContract", 5),
        string("OrgCode", 8),
        string("WorkTypeId", 20),
        string("PriorityId", 1),
        string("ReportedBy", 20, nullable=False),
        string("CustomerNo", 20),
        money("PlanHrs"),
        money("CostEstimate"),
        timestamp("RegDate", nullable=False),
        timestamp("PlanSDate"),
        timestamp("PlanFDate"),
        timestamp("RealSDate"),
        timestamp("RealFDate"),
        string("Cf_Gl_Account", 20),
        string("Cf_Jira_Key", 20),
        string("Cf_Jira_Status", 50),
        timestamp("LastActivityDate", nullable=False),
    ),
)

ENTITIES: tuple[Entity, ...] = (
    PURCHASE_ORDER,
    PURCHASE_ORDER_LINE,
    SUPPLIER,
    CUSTOMER,
    POSTING_PROPOSAL_HEAD,
    POSTING_PROPOSAL_LINE,
    ACCOUNT,
    VOUCHER,
    VOUCHER_ROW,
    CODE_PART_VALUE,
    WORK_ORDER,
)


def _group_services(entities: tuple[Entity, ...]) -> dict[str, Service]:
    by_projection: dict[str, list[Entity]] = {}
    for entity in entities:
        by_projection.setdefault(entity.projection, []).append(entity)
    return {name: Service(name, tuple(members)) for name, members in by_projection.items()}


SERVICES: dict[str, Service] = _group_services(ENTITIES)
ENTITY_BY_SET: dict[str, Entity] = {e.entity_set: e for e in ENTITIES}


# --- bound actions: the only way a client changes Objstate --------------------------------------------------------

BOUND_ACTIONS: dict[str, tuple[str, tuple[Action, ...]]] = {
    # entity set → (what one record is called, its actions)
    "PurchaseOrderSet": ("purchase order", (
        Action("Release", ("Planned",), "Released", "released"),
        Action("Confirm", ("Released",), "Confirmed", "confirmed"),
        Action("Close", ("Arrived", "Received"), "Closed", "closed"),
        Action("Cancel", ("Planned", "Released", "Confirmed"), "Cancelled", "cancelled"),
        Action("Reopen", ("Closed",), "Received", "reopened"),
    )),
    "ActiveSeparateSet": ("work order", (
        Action("Release", ("Prepared",), "Released", "released"),
        Action("Start", ("Released",), "Started", "started"),
        Action("WorkDone", ("Started",), "WorkDone", "reported as work done"),
        Action("Report", ("WorkDone",), "Reported", "reported"),
        Action("Finish", ("Reported",), "Finished", "finished"),
        Action("Restart", ("WorkDone", "Reported"), "Started", "restarted"),
    )),
    "PostingProposalHeadSet": ("posting proposal", (
        Action("Authorize", ("Preliminary", "AwaitingAuthorization"), "Authorized", "authorized"),
        Action("SendForAuthorization", ("Preliminary",), "AwaitingAuthorization", "sent for authorization"),
        Action("Cancel", ("Preliminary", "AwaitingAuthorization"), "Cancelled", "cancelled"),
    )),
    "CustomerInfoSet": ("customer", (
        Action("Block", ("Active",), "Blocked", "blocked"),
        Action("Activate", ("Blocked", "Inactive"), "Active", "activated"),
        Action("Deactivate", ("Active",), "Inactive", "deactivated"),
    )),
    "SupplierInfoGeneralSet": ("supplier", (
        Action("Block", ("Active",), "Blocked", "blocked"),
        Action("Activate", ("Blocked", "Inactive"), "Active", "activated"),
        Action("Deactivate", ("Active",), "Inactive", "deactivated"),
    )),
}


def _check_actions() -> None:
    """A typo in the table would otherwise surface only as an action that can never run."""
    for entity_set, (_, actions) in BOUND_ACTIONS.items():
        members = ENTITY_BY_SET[entity_set].state_enum.members
        for action in actions:
            unknown = [s for s in (*action.from_states, action.to_state) if s not in members]
            if unknown:
                raise ValueError(f"{entity_set} action {action.name}: no such state {', '.join(unknown)}")


_check_actions()
