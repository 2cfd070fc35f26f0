"""The IFS Cloud entity sets tap-ifscloud reads by default.

Field lists and keys come from each projection's $metadata at discovery, because they differ between IFS releases;
what is fixed here is where each stream lives, its change column and the lines that travel with it.
Every entry can be changed per tenant with the `stream_overrides` setting, and `custom_streams` adds any other set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Mapping


@dataclass(frozen=True)
class StreamDefinition:
    name: str
    projection: str
    entity_set: str
    #: The per-entity change timestamp; None reads the whole set every run (full table).
    replication_key: str | None
    #: A collection navigation whose rows are embedded in each record (order lines with their order).
    expand: str | None = None
    #: "seek" pages past the last row read (exact under concurrent changes); "server" follows @odata.nextLink, else
    #: $top/$skip, for sets whose keys cannot be compared with gt.
    paging: str = "seek"
    description: str = ""

    @property
    def path(self) -> str:
        return f"/{self.projection}.svc/{self.entity_set}"


BUILT_IN_STREAMS: tuple[StreamDefinition, ...] = (
    StreamDefinition("purchase_orders", "PurchaseOrderHandling", "PurchaseOrderSet", "ChangedDate",
                     expand="PurchaseOrderLines", description="Purchase order headers with their lines."),
    StreamDefinition("purchase_order_lines", "PurchaseOrderHandling", "PurchaseOrderLineNopartSet", "LastActivityDate",
                     description="Purchase order lines (non-inventory and inventory parts)."),
    StreamDefinition("suppliers", "SupplierHandling", "SupplierInfoGeneralSet", "ChangedDate",
                     description="Supplier master data."),
    StreamDefinition("customers", "CustomerHandling", "CustomerInfoSet", "ChangedDate",
                     description="Customer master data."),
    StreamDefinition("posting_proposals", "ManSuppInvoiceHandling", "PostingProposalHeadSet", "Rowversion",
                     expand="PostingProposalLines", description="Supplier invoice posting proposals with their lines."),
    StreamDefinition("posting_proposal_lines", "ManSuppInvoiceHandling", "PostingProposalLineSet", "Rowversion",
                     description="Supplier invoice posting proposal lines."),
    StreamDefinition("gl_accounts", "AccountsHandling", "AccountSet", "ChangedDate",
                     description="General ledger accounts per company."),
    StreamDefinition("vouchers", "VoucherHandling", "VoucherSet", "DateChanged",
                     description="GL voucher headers."),
    StreamDefinition("voucher_rows", "VoucherHandling", "VoucherRowSet", "DateChanged",
                     description="GL voucher rows with account, code parts and amounts."),
    StreamDefinition("accounting_dimensions", "CodePartValuesHandling", "CodePartValueSet", "ChangedDate",
                     description="Accounting dimensions: code part values B..J."),
    StreamDefinition("work_orders", "ActiveWorkOrdersHandling", "ActiveSeparateSet", "LastActivityDate",
                     description="Active separate work orders."),
)


PAGING_MODES = ("seek", "server")


class StreamConfigError(ValueError):
    """A stream override or custom stream in the configuration is not usable."""


def configured_streams(
    overrides: Mapping[str, Mapping] | None, custom_streams: list[Mapping] | None
) -> list[StreamDefinition]:
    """The built-in catalogue with the user's overrides applied, followed by the user's own streams."""
    overrides = dict(overrides or {})
    known = {d.name for d in BUILT_IN_STREAMS}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise StreamConfigError(
            f"stream_overrides names unknown stream(s) {', '.join(unknown)}; built-in streams are: {', '.join(sorted(known))}"
        )
    definitions = [_apply_override(d, overrides.get(d.name, {})) for d in BUILT_IN_STREAMS]
    for index, custom in enumerate(custom_streams or []):
        missing = [k for k in ("name", "projection", "entity_set") if not custom.get(k)]
        if missing:
            raise StreamConfigError(f"custom_streams[{index}] lacks {', '.join(missing)}")
        if custom["name"] in {d.name for d in definitions}:
            raise StreamConfigError(f"custom_streams[{index}]: a stream named '{custom['name']}' already exists")
        definitions.append(_checked(
            StreamDefinition(
                name=custom["name"],
                projection=custom["projection"],
                entity_set=custom["entity_set"],
                replication_key=custom.get("replication_key") or None,
                expand=custom.get("expand") or None,
                paging=custom.get("paging") or "seek",
                description=f"{custom['projection']}.svc/{custom['entity_set']} (custom stream)",
            ),
            f"custom_streams[{index}]",
        ))
    return definitions


def _apply_override(definition: StreamDefinition, override: Mapping) -> StreamDefinition:
    allowed = {"projection", "entity_set", "replication_key", "expand", "paging"}
    extra = sorted(set(override) - allowed)
    if extra:
        raise StreamConfigError(
            f"stream_overrides.{definition.name}: unknown option(s) {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})"
        )
    changes = {k: (v or None) if k in {"replication_key", "expand"} else v for k, v in override.items()}
    return _checked(replace(definition, **changes), f"stream_overrides.{definition.name}")


def _checked(definition: StreamDefinition, where: str) -> StreamDefinition:
    if definition.paging not in PAGING_MODES:
        raise StreamConfigError(f"{where}.paging must be one of {', '.join(PAGING_MODES)}")
    if definition.expand and definition.paging != "seek":
        raise StreamConfigError(f"{where}: expand needs seek paging (pages are split to stay under the element limit)")
    return definition
