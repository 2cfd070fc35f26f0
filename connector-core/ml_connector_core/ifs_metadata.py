"""Reading an IFS projection's CSDL ($metadata) into entity descriptions (keys, property Edm types, navigations,
bound actions) and JSON schemas for Singer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

_EDM_NS = "{http://docs.oasis-open.org/odata/ns/edm}"


class MetadataError(ValueError):
    """The $metadata document does not describe what the stream needs, or cannot be read."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  #: the HTTP status of a $metadata request that was refused (403, 404, ...)


class MalformedMetadata(MetadataError):
    """$metadata that is not well-formed XML: what a document cut off on the way reads as, so worth asking again."""


@dataclass(frozen=True)
class PropertyInfo:
    name: str
    edm_type: str
    nullable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    is_enum: bool = False
    #: $metadata says clients cannot set it (Core.Computed, or Core.Permissions Read).
    read_only: bool = False


@dataclass(frozen=True)
class NavigationInfo:
    name: str
    target_type: str
    is_collection: bool
    target_entity_set: str | None


@dataclass
class EntitySetInfo:
    name: str
    type_name: str
    keys: list[str]
    properties: dict[str, PropertyInfo]
    navigations: dict[str, NavigationInfo] = field(default_factory=dict)
    #: Names of the actions bound to this entity type, e.g. ``PurchaseOrder_Release``.
    actions: frozenset[str] = frozenset()

    @property
    def type_short_name(self) -> str:
        """``PurchaseOrder`` for ``IfsApp.PurchaseOrderHandling.PurchaseOrder``: the prefix of its bound actions."""
        return self.type_name.rsplit(".", 1)[-1]

    def edm_type(self, name: str) -> str:
        prop = self.properties.get(name)
        return "Edm.String" if prop is None or prop.is_enum else prop.edm_type


@dataclass
class ServiceMetadata:
    namespace: str
    entity_sets: dict[str, EntitySetInfo]

    def entity_set(self, name: str, service: str) -> EntitySetInfo:
        try:
            return self.entity_sets[name]
        except KeyError:
            known = ", ".join(sorted(self.entity_sets)) or "none"
            raise MetadataError(f"{service} has no entity set '{name}' (it has: {known})") from None


def parse_metadata(xml_text: bytes | str, service: str) -> ServiceMetadata:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise MalformedMetadata(f"$metadata of {service} is not well-formed XML: {exc}") from None
    schemas = root.findall(f".//{_EDM_NS}Schema")
    if not schemas:
        raise MetadataError(f"$metadata of {service} holds no CSDL Schema")
    enum_types: set[str] = set()
    entity_types: dict[str, ET.Element] = {}
    bound_actions: dict[str, set[str]] = {}
    namespace = schemas[0].get("Namespace", "")
    for schema in schemas:
        ns = schema.get("Namespace", "")
        for enum in schema.findall(f"{_EDM_NS}EnumType"):
            enum_types.add(f"{ns}.{enum.get('Name')}")
        for entity in schema.findall(f"{_EDM_NS}EntityType"):
            entity_types[f"{ns}.{entity.get('Name')}"] = entity
        for action in schema.findall(f"{_EDM_NS}Action"):
            binding = action.find(f"{_EDM_NS}Parameter")
            if action.get("IsBound") == "true" and binding is not None:
                bound_actions.setdefault(binding.get("Type", ""), set()).add(action.get("Name", ""))
    entity_sets: dict[str, EntitySetInfo] = {}
    for schema in schemas:
        for container in schema.findall(f"{_EDM_NS}EntityContainer"):
            for entity_set in container.findall(f"{_EDM_NS}EntitySet"):
                type_name = entity_set.get("EntityType", "")
                entity = entity_types.get(type_name)
                if entity is None:
                    raise MetadataError(f"$metadata of {service}: entity set {entity_set.get('Name')} has unknown type {type_name}")
                bindings = {
                    b.get("Path"): b.get("Target") for b in entity_set.findall(f"{_EDM_NS}NavigationPropertyBinding")
                }
                info = _entity_set_info(entity_set.get("Name", ""), type_name, entity, enum_types, bindings)
                info.actions = frozenset(bound_actions.get(type_name, ()))
                entity_sets[info.name] = info
    return ServiceMetadata(namespace=namespace, entity_sets=entity_sets)


def _entity_set_info(name, type_name, entity, enum_types, bindings) -> EntitySetInfo:
    keys = [ref.get("Name", "") for ref in entity.findall(f"{_EDM_NS}Key/{_EDM_NS}PropertyRef")]
    properties: dict[str, PropertyInfo] = {}
    for prop in entity.findall(f"{_EDM_NS}Property"):
        edm_type = prop.get("Type", "Edm.String")
        properties[prop.get("Name", "")] = PropertyInfo(
            name=prop.get("Name", ""),
            edm_type=edm_type,
            nullable=prop.get("Nullable", "true") != "false",
            max_length=_int_or_none(prop.get("MaxLength")),
            precision=_int_or_none(prop.get("Precision")),
            scale=_int_or_none(prop.get("Scale")),
            is_enum=edm_type in enum_types,
            read_only=_is_read_only(prop),
        )
    navigations = {}
    for nav in entity.findall(f"{_EDM_NS}NavigationProperty"):
        nav_type = nav.get("Type", "")
        is_collection = nav_type.startswith("Collection(")
        target_type = nav_type[len("Collection("):-1] if is_collection else nav_type
        navigations[nav.get("Name", "")] = NavigationInfo(
            name=nav.get("Name", ""),
            target_type=target_type,
            is_collection=is_collection,
            target_entity_set=bindings.get(nav.get("Name")),
        )
    return EntitySetInfo(name=name, type_name=type_name, keys=keys, properties=properties, navigations=navigations)


_COMPUTED = {"Org.OData.Core.V1.Computed", "Core.Computed"}
_PERMISSIONS = {"Org.OData.Core.V1.Permissions", "Core.Permissions"}


def _is_read_only(prop: ET.Element) -> bool:
    """Annotations written inside the property: ``Core.Computed`` (true unless Bool="false"), or ``Core.Permissions``
    granting Read alone."""
    for annotation in prop.findall(f"{_EDM_NS}Annotation"):
        term = annotation.get("Term", "")
        if term in _COMPUTED and annotation.get("Bool", "true") != "false":
            return True
        if term in _PERMISSIONS:
            permissions = annotation.get("EnumMember") or "".join(
                member.text or "" for member in annotation.iter(f"{_EDM_NS}EnumMember"))
            if permissions.rstrip().endswith("/Read") and "Write" not in permissions:
                return True
    return False


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "", "max", "variable") else None
    except ValueError:
        return None


# IFS housekeeping fields present on every record, whether or not a release lists them in $metadata.
HOUSEKEEPING_SCHEMA = {
    "etag": {"type": ["string", "null"], "description": "The record's OData ETag (objid:objversion), its version."},
    "luname": {"type": ["string", "null"]},
    "keyref": {"type": ["string", "null"]},
    "Objgrants": {"type": ["string", "null"]},
}


def property_schema(prop: PropertyInfo) -> dict:
    """JSON schema of one Edm property; decimals stay numbers that Singer carries exactly (never float)."""
    edm = prop.edm_type
    if prop.is_enum or edm in {"Edm.String", "Edm.Guid"}:
        schema: dict = {"type": ["string", "null"]}
        if prop.max_length:
            schema["maxLength"] = prop.max_length
    elif edm in {"Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64"}:
        schema = {"type": ["integer", "null"]}
    elif edm == "Edm.Decimal":
        # The SDK's own extension keys: they survive catalogs and SCHEMA messages, and SQL targets read them.
        schema = {"type": ["number", "null"], "x-sql-datatype": "decimal"}
        sizes = {k: v for k, v in (("precision", prop.precision), ("scale", prop.scale)) if v is not None}
        if sizes:
            schema["x-sql-datatype-properties"] = sizes
    elif edm in {"Edm.Double", "Edm.Single"}:
        schema = {"type": ["number", "null"]}
    elif edm == "Edm.Boolean":
        schema = {"type": ["boolean", "null"]}
    elif edm == "Edm.Date":
        schema = {"type": ["string", "null"], "format": "date"}
    elif edm == "Edm.DateTimeOffset":
        schema = {"type": ["string", "null"], "format": "date-time"}
    elif edm == "Edm.TimeOfDay":
        schema = {"type": ["string", "null"], "format": "time"}
    elif edm in {"Edm.Binary", "Edm.Stream"}:
        schema = {"type": ["string", "null"], "contentEncoding": "base64"}
    else:
        schema = {}  # complex or unknown types pass through untyped rather than being dropped
    return schema


def entity_schema(entity: EntitySetInfo) -> dict:
    properties = {name: property_schema(prop) for name, prop in entity.properties.items()}
    for name, schema in HOUSEKEEPING_SCHEMA.items():
        properties.setdefault(name, schema)
    return {"type": "object", "properties": properties, "required": list(entity.keys)}
