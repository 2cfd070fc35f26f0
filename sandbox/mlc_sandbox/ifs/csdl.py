"""$metadata (CSDL 4.0 XML) and the service document of one projection."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from . import model


def _property(f: model.Field, namespace: str) -> str:
    type_name = f"{namespace}.{f.enum.name}" if f.enum else f.edm
    attrs = [f"Name={quoteattr(f.name)}", f"Type={quoteattr(type_name)}", f'Nullable="{str(f.nullable).lower()}"']
    if f.max_length:
        attrs.append(f'MaxLength="{f.max_length}"')
    if f.precision is not None:
        attrs.append(f'Precision="{f.precision}"')
    if f.scale is not None:
        attrs.append(f'Scale="{f.scale}"')
    return f"<Property {' '.join(attrs)}/>"


def _entity_type(entity: model.Entity, service: model.Service) -> list[str]:
    namespace = service.namespace
    lines = [f'<EntityType Name="{entity.type_name}">', "<Key>"]
    lines += [f'<PropertyRef Name="{k}"/>' for k in entity.keys]
    lines.append("</Key>")
    lines += [_property(f, namespace) for f in entity.fields]
    # the housekeeping fields every IFS record carries
    lines += [
        '<Property Name="luname" Type="Edm.String" Nullable="true" MaxLength="4000"/>',
        '<Property Name="keyref" Type="Edm.String" Nullable="true" MaxLength="4000"/>',
        '<Property Name="Objgrants" Type="Edm.String" Nullable="true" MaxLength="4000"/>',
    ]
    types = {e.entity_set: e for e in service.entity_types}
    for nav in entity.navigations:
        target = types[nav.target_set]
        type_ref = f"{namespace}.{target.type_name}"
        type_ref = f"Collection({type_ref})" if nav.collection else type_ref
        lines.append(f'<NavigationProperty Name="{nav.name}" Type="{type_ref}" Partner="{nav.partner}">')
        if not nav.collection:
            lines += [f'<ReferentialConstraint Property="{a}" ReferencedProperty="{b}"/>' for a, b in nav.key_pairs]
        lines.append("</NavigationProperty>")
    lines.append("</EntityType>")
    return lines


def metadata(service: model.Service) -> bytes:
    """The CSDL of a service as a tenant serves it (see profile.Catalogue, which keeps the document once built)."""
    ns = service.namespace
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
        "<edmx:DataServices>",
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{ns}">',
    ]
    for enum in service.enum_types.values():
        lines.append(f'<EnumType Name="{enum.name}">')
        lines += [f'<Member Name="{m}" Value="{i}"/>' for i, m in enumerate(enum.members)]
        lines.append("</EnumType>")
    for entity in service.entity_types:
        lines += _entity_type(entity, service)
    for entity in service.entity_types:
        for name in entity.actions:
            # IFS names the binding parameter `it`; no further parameters, no return value
            lines += [f'<Action Name="{name}" IsBound="true">',
                      f'<Parameter Name="it" Type="{ns}.{entity.type_name}" Nullable="false"/>', "</Action>"]
    lines.append('<EntityContainer Name="Main">')
    for entity in service.entities:
        lines.append(f'<EntitySet Name="{entity.entity_set}" EntityType="{ns}.{entity.type_name}">')
        for nav in entity.navigations:
            if service.target(nav) is None:  # its set is not served: the navigation stays, unbound
                continue
            lines.append(f'<NavigationPropertyBinding Path="{nav.name}" Target="{nav.target_set}"/>')
        lines.append("</EntitySet>")
    lines += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(lines).encode()


def service_document(service: model.Service, context: str) -> dict:
    return {
        "@odata.context": context,
        "value": [{"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set} for e in service.entities],
    }
