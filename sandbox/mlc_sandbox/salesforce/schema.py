"""The org's objects and fields as Salesforce describes them: Account, Contact, Order, OrderItem and the price book
objects (Pricebook2, PricebookEntry, Product2), each with the audit fields every object has."""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "string": "xsd:string", "textarea": "xsd:string",
              "picklist": "xsd:string", "phone": "xsd:string", "url": "xsd:string", "email": "xsd:string",
              "currency": "xsd:double", "double": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
              "boolean": "xsd:boolean"}
TEXT_TYPES = {"string", "textarea", "picklist", "phone", "url", "email"}
NUMBER_TYPES = {"currency", "double"}
CURRENCIES = ("SEK", "EUR", "USD", "GBP", "NOK", "DKK")


@dataclass
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    required: bool = False  # not nillable and no default: must be given on create
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: object = None
    calculated: bool = False

    def __post_init__(self):
        if not self.label:
            base = self.name[:-3] if self.name.endswith("__c") else self.name
            self.label = base.replace("_", " ")
        if self.type in ("id", "reference") and not self.length:
            self.length = 18
        if self.type in NUMBER_TYPES and not self.precision:
            self.precision, self.scale = 18, 2

    @property
    def read_only(self) -> bool:
        return not self.createable and not self.updateable

    @property
    def nillable(self) -> bool:
        return not self.required and self.type not in ("id", "boolean") and self.name not in AUDIT_NAMES

    def describe(self) -> dict:
        return {
            "name": self.name, "label": self.label, "type": self.type, "soapType": SOAP_TYPES[self.type],
            "length": self.length if self.type in TEXT_TYPES | {"id", "reference"} else 0,
            "precision": self.precision, "scale": self.scale, "digits": 0, "byteLength": self.length * 3,
            "nillable": self.nillable, "createable": self.createable, "updateable": self.updateable,
            "externalId": self.external_id, "unique": self.unique, "idLookup": self.name == "Id" or self.external_id,
            "referenceTo": list(self.reference_to), "relationshipName": self.relationship_name,
            "defaultedOnCreate": self.default is not None or self.name in AUDIT_NAMES,
            "defaultValue": self.default if self.type == "boolean" else None,
            "custom": self.name.endswith("__c"), "calculated": self.calculated, "filterable": True,
            "sortable": self.type != "textarea", "groupable": self.type not in ("textarea", "currency", "double"),
            "caseSensitive": False, "autoNumber": False, "restrictedPicklist": self.restricted,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": v == self.default,
                                "validFor": None} for v in self.picklist],
        }


AUDIT_NAMES = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
               "SystemModstamp")


def _audit_fields(object_name: str) -> list[Field]:
    read_only = {"createable": False, "updateable": False}
    return [Field("Id", "id", f"{object_name} ID", **read_only),
            Field("IsDeleted", "boolean", "Deleted", **read_only),
            Field("CreatedDate", "datetime", "Created Date", **read_only),
            Field("CreatedById", "reference", "Created By ID", reference_to=("User",), relationship_name=None,
                  **read_only),
            Field("LastModifiedDate", "datetime", "Last Modified Date", **read_only),
            Field("LastModifiedById", "reference", "Last Modified By ID", reference_to=("User",), **read_only),
            Field("SystemModstamp", "datetime", "System Modstamp", **read_only)]


@dataclass
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: list[Field]
    by_name: dict[str, Field] = dataclass_field(default_factory=dict)  # lower-case name -> field
    by_relationship: dict[str, Field] = dataclass_field(default_factory=dict)  # lower-case relationship name -> field

    def __post_init__(self):
        self.fields = _audit_fields(self.name)[:1] + self.fields + _audit_fields(self.name)[1:]
        self.by_name = {f.name.lower(): f for f in self.fields}
        self.by_relationship = {f.relationship_name.lower(): f for f in self.fields if f.relationship_name}

    def field(self, name: str) -> Field | None:
        return self.by_name.get(name.lower())

    @property
    def external_ids(self) -> list[Field]:
        return [f for f in self.fields if f.external_id]

    def summary(self, version: str) -> dict:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"name": self.name, "label": self.label, "labelPlural": self.label_plural, "keyPrefix": self.key_prefix,
                "custom": False, "createable": True, "updateable": True, "deletable": True, "queryable": True,
                "retrieveable": True, "searchable": True, "triggerable": True, "layoutable": True,
                "replicateable": True, "mergeable": False,
                "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}}

    def describe(self, version: str) -> dict:
        return {**self.summary(version), "fields": [f.describe() for f in self.fields], "childRelationships": [],
                "recordTypeInfos": [], "supportedScopes": [{"label": "All", "name": "everything"}]}


def _text(name: str, length: int, label: str = "", **options) -> Field:
    return Field(name, "string", label, length=length, **options)


def _ext(name: str, length: int, label: str = "") -> Field:
    return Field(name, "string", label, length=length, external_id=True, unique=True)


def _currency_field() -> Field:
    return Field("CurrencyIsoCode", "picklist", "Currency ISO Code", length=3, picklist=CURRENCIES,
                 restricted=True, default="SEK")


def _reference(name: str, target: str, relationship: str, label: str, **options) -> Field:
    return Field(name, "reference", label, reference_to=(target,), relationship_name=relationship, **options)


OBJECTS: dict[str, SObject] = {o.name: o for o in [
    SObject("Account", "Account", "Accounts", "001", [
        _text("Name", 255, "Account Name", required=True),
        _text("AccountNumber", 40, "Account Number"),
        Field("Type", "picklist", "Account Type", length=255, picklist=("Supplier", "Customer", "Partner", "Other"),
              restricted=True),
        Field("BillingStreet", "textarea", "Billing Street", length=255),
        _text("BillingCity", 40, "Billing City"),
        _text("BillingPostalCode", 20, "Billing Zip/Postal Code"),
        _text("BillingCountry", 80, "Billing Country"),
        Field("Phone", "phone", "Account Phone", length=40),
        Field("Website", "url", "Website", length=255),
        _currency_field(),
        Field("Description", "textarea", "Account Description", length=32000),
        _text("Payment_Terms__c", 40),
        Field("Credit_Limit__c", "currency", "Credit Limit"),
        _ext("IFS_Supplier_Id__c", 20),
        _ext("IFS_Customer_Id__c", 20),
        _text("IFS_Company__c", 20),
    ]),
    SObject("Contact", "Contact", "Contacts", "003", [
        _text("LastName", 80, "Last Name", required=True),
        _text("FirstName", 40, "First Name"),
        Field("Email", "email", "Email", length=80),
        Field("Phone", "phone", "Business Phone", length=40),
        _reference("AccountId", "Account", "Account", "Account ID"),
        _text("MailingCountry", 80, "Mailing Country"),
        _currency_field(),
        _ext("IFS_Customer_Id__c", 20),
    ]),
    SObject("Order", "Order", "Orders", "801", [
        _reference("AccountId", "Account", "Account", "Account ID", required=True),
        Field("EffectiveDate", "date", "Order Start Date", required=True),
        Field("Status", "picklist", "Status", length=40, picklist=("Draft", "Activated"), restricted=True,
              required=True),
        _reference("Pricebook2Id", "Pricebook2", "Pricebook2", "Price Book ID"),
        _currency_field(),
        Field("TotalAmount", "currency", "Order Amount", createable=False, updateable=False, calculated=True),
        Field("Description", "textarea", "Description", length=32000),
        _ext("IFS_Order_No__c", 40),
        _text("IFS_Company__c", 20),
        _text("IFS_Status__c", 40),
    ]),
    SObject("OrderItem", "Order Product", "Order Products", "802", [
        _reference("OrderId", "Order", "Order", "Order ID", required=True, updateable=False),
        _reference("PricebookEntryId", "PricebookEntry", "PricebookEntry", "Price Book Entry ID", required=True,
                   updateable=False),
        Field("Quantity", "double", "Quantity", required=True),
        Field("UnitPrice", "currency", "Unit Price", required=True),
        _text("Description", 255, "Line Description"),
        Field("ServiceDate", "date", "Date"),
        _ext("IFS_Line_Key__c", 80),
    ]),
    SObject("Pricebook2", "Price Book", "Price Books", "01s", [
        _text("Name", 255, "Price Book Name", required=True),
        Field("IsActive", "boolean", "Active", default=False),
        Field("IsStandard", "boolean", "Is Standard Price Book", createable=False, updateable=False, default=False),
        _text("Description", 255, "Description"),
    ]),
    SObject("Product2", "Product", "Products", "01t", [
        _text("Name", 255, "Product Name", required=True),
        _text("ProductCode", 255, "Product Code"),
        Field("IsActive", "boolean", "Active", default=False),
        Field("Description", "textarea", "Product Description", length=4000),
    ]),
    SObject("PricebookEntry", "Price Book Entry", "Price Book Entries", "01u", [
        _reference("Pricebook2Id", "Pricebook2", "Pricebook2", "Price Book ID", required=True, updateable=False),
        _reference("Product2Id", "Product2", "Product2", "Product ID", required=True, updateable=False),
        Field("UnitPrice", "currency", "List Price", required=True),
        Field("IsActive", "boolean", "Active", default=False),
        _text("Name", 255, "Product Name", createable=False, updateable=False, calculated=True),
        _currency_field(),
    ]),
]}

PREFIXES = {o.key_prefix: o.name for o in OBJECTS.values()}
STANDARD_PRICEBOOK_ID = "01s000000000001AAA"
STANDARD_PRODUCT_ID = "01t000000000001AAA"
STANDARD_ENTRY_ID = "01u000000000001AAA"


def find_object(name: str) -> SObject | None:
    for candidate in OBJECTS.values():
        if candidate.name.lower() == name.lower():
            return candidate
    return None
