"""The IFS Cloud entity sets tap-ifscloud reads by default.

Field lists and keys come from each projection's $metadata at discovery, because they differ between IFS releases;
what is fixed here is where each stream lives, its change column and the lines that travel with it.
Every entry can be changed per tenant with the `stream_overrides` setting, and `custom_streams` adds any other set.
"""

from __future__ import annotations

import fnmatch
import json
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
    #: The streams whose records these records reference (an order its supplier, a line its order). The tap sends
    #: those streams first: a target that writes parents before children (Salesforce Orders before their items,
    #: JAGGAER suppliers before orders) then never holds a stream back, nor every checkpoint after it.
    references: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"/{self.projection}.svc/{self.entity_set}"


BUILT_IN_STREAMS: tuple[StreamDefinition, ...] = (
    StreamDefinition("purchase_orders", "PurchaseOrderHandling", "PurchaseOrderSet", "ChangedDate",
                     expand="PurchaseOrderLines", description="Purchase order headers with their lines.",
                     references=("suppliers",)),
    StreamDefinition("purchase_order_lines", "PurchaseOrderHandling", "PurchaseOrderLineNopartSet", "LastActivityDate",
                     description="Purchase order lines (non-inventory and inventory parts).",
                     references=("purchase_orders",)),
    StreamDefinition("suppliers", "SupplierHandling", "SupplierInfoGeneralSet", "ChangedDate",
                     description="Supplier master data."),
    StreamDefinition("customers", "CustomerHandling", "CustomerInfoSet", "ChangedDate",
                     description="Customer master data."),
    StreamDefinition("posting_proposals", "ManSuppInvoiceHandling", "PostingProposalHeadSet", "Rowversion",
                     expand="PostingProposalLines", description="Supplier invoice posting proposals with their lines.",
                     references=("suppliers", "purchase_orders")),
    StreamDefinition("posting_proposal_lines", "ManSuppInvoiceHandling", "PostingProposalLineSet", "Rowversion",
                     description="Supplier invoice posting proposal lines.", references=("posting_proposals",)),
    StreamDefinition("gl_accounts", "AccountsHandling", "AccountSet", "ChangedDate",
                     description="General ledger accounts per company."),
    StreamDefinition("vouchers", "VoucherHandling", "VoucherSet", "DateChanged",
                     description="GL voucher headers."),
    StreamDefinition("voucher_rows", "VoucherHandling", "VoucherRowSet", "DateChanged",
                     description="GL voucher rows with account, code parts and amounts.",
                     references=("vouchers", "gl_accounts", "accounting_dimensions")),
    StreamDefinition("accounting_dimensions", "CodePartValuesHandling", "CodePartValueSet", "ChangedDate",
                     description="Accounting dimensions: code part values B..J."),
    StreamDefinition("work_orders", "ActiveWorkOrdersHandling", "ActiveSeparateSet", "LastActivityDate",
                     description="Active separate work orders."),
)


PAGING_MODES = ("seek", "server")


class StreamConfigError(ValueError):
    """A stream override or custom stream in the configuration is not usable."""


@dataclass(frozen=True)
class OfferedStream:
    """A stream this configuration offers, with what the user said about it: a stream the user named is an error
    when it cannot be read, a built-in offered only by default is left out with a warning."""

    definition: StreamDefinition
    #: Where the user named the stream ("built_in_streams", "stream_overrides.vouchers", "custom_streams[0]"), or
    #: None for a built-in offered because built_in_streams is not set.
    named_in: str | None
    #: The setting that changes where the stream is read: "stream_overrides.vouchers" or "custom_streams[0]".
    setting: str
    #: The stream's options the user set (projection, entity_set, replication_key, expand, paging).
    options_set: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.definition.name


def offered_streams(
    built_in_streams: list[str] | None, overrides: Mapping[str, Mapping] | None, custom_streams: list[Mapping] | None
) -> list[OfferedStream]:
    """The built-in streams offered (all when ``built_in_streams`` is None) with the user's overrides applied,
    followed by the user's own streams."""
    overrides = dict(overrides or {})
    known = [d.name for d in BUILT_IN_STREAMS]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise StreamConfigError(
            f"stream_overrides names unknown stream(s) {', '.join(unknown)}; built-in streams are: {', '.join(known)}"
        )
    if built_in_streams is not None:
        not_built_in = [name for name in built_in_streams if name not in known]
        if not_built_in:
            raise StreamConfigError(
                f"built_in_streams names unknown stream(s) {', '.join(not_built_in)}; built-in streams are: "
                f"{', '.join(known)} (other entity sets go in custom_streams)"
            )
    offered = []
    for definition in BUILT_IN_STREAMS:
        if built_in_streams is not None and definition.name not in built_in_streams:
            continue
        override = overrides.get(definition.name)
        setting = f"stream_overrides.{definition.name}"
        named_in = "built_in_streams" if built_in_streams is not None else setting if override is not None else None
        offered.append(OfferedStream(_apply_override(definition, override or {}), named_in, setting,
                                     frozenset(override or ())))
    names = {o.name for o in offered} | set(known)
    for index, custom in enumerate(custom_streams or []):
        where = f"custom_streams[{index}]"
        missing = [k for k in ("name", "projection", "entity_set") if not custom.get(k)]
        if missing:
            raise StreamConfigError(f"{where} lacks {', '.join(missing)}")
        if custom["name"] in names:
            raise StreamConfigError(f"{where}: a stream named '{custom['name']}' already exists")
        names.add(custom["name"])
        definition = _checked(
            StreamDefinition(
                name=custom["name"],
                projection=custom["projection"],
                entity_set=custom["entity_set"],
                replication_key=custom.get("replication_key") or None,
                expand=custom.get("expand") or None,
                paging=custom.get("paging") or "seek",
                description=f"{custom['projection']}.svc/{custom['entity_set']} (custom stream)",
                references=tuple(custom.get("references") or ()),
            ),
            where,
        )
        offered.append(OfferedStream(definition, where, where, frozenset(k for k in custom if k != "name")))
    return offered


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


def reference_order(names: list[str], references: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The stream names with every stream after the streams it references (those among ``names``), otherwise by
    name, as singer-sdk orders them. A cycle of references is broken in name order."""
    remaining = sorted(names)
    ordered: list[str] = []
    while remaining:
        ready = [n for n in remaining if all(r in ordered or r not in remaining for r in references.get(n, ()))]
        chosen = ready[0] if ready else remaining[0]
        ordered.append(chosen)
        remaining.remove(chosen)
    return ordered


@dataclass(frozen=True)
class SelectRules:
    """Meltano's `select:` rules of the plugin (`stream.property` patterns, `!` excluding), which Meltano hands the
    plugin's processes as TAP_IFSCLOUD__SELECT. A pattern naming a stream exactly names it as `built_in_streams` does
    (`work_orders.*` in tap-ifscloud-jira: a tenant that cannot read work orders is an error, not a quiet warning
    while Meltano's catalog selects nothing); wildcards (`*.*`, Meltano's default) name nothing."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SelectRules:
        text = environ.get("TAP_IFSCLOUD__SELECT")
        try:
            patterns = json.loads(text) if text else []
        except ValueError:
            return cls()
        return cls(tuple(str(p) for p in patterns)) if isinstance(patterns, list) else cls()

    def _stream_parts(self, excluded: bool) -> list[str]:
        return [p.lstrip("!").split(".", 1)[0] for p in self.patterns
                if p.startswith("!") == excluded and (not excluded or p.endswith(".*"))]

    def names(self, stream: str) -> bool:
        return stream in self._stream_parts(excluded=False) and not self.excludes(stream)

    def selects(self, stream: str) -> bool:
        if not self.patterns:
            return True
        return (any(fnmatch.fnmatchcase(stream, p) for p in self._stream_parts(excluded=False))
                and not self.excludes(stream))

    def excludes(self, stream: str) -> bool:
        return any(fnmatch.fnmatchcase(stream, p) for p in self._stream_parts(excluded=True))
