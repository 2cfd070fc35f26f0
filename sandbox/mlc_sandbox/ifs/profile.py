"""Tenant profiles: which variant of IFS Cloud the stand-in plays.

Real tenants differ (release, granted projections, allowed companies, server settings); a profile names the ways this
one differs from the stand-in's default tenant. It is read once at start and checked strictly: an unknown key, an
unknown projection or entity set, or a bad value stops the stand-in with one line naming the key and the file.

The profile is applied where each behaviour lives: `Catalogue` (below) is the tenant's view of `model` (projections
missing, forbidden or renamed, entity sets missing); the rest are flags read by the router (`api_paths`), the OData
service (time-zone header, $expand refusals, $count, nextLink), the reader (allowed companies) and the renderer (ETags).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

from . import csdl, generate, model

PROFILE_DIR = Path(__file__).with_name("profiles")
DEFAULT = "default"
MAIN_ROOT = "/main/ifsapplications/projection/v1"
INT_ROOT = "/int/ifsapplications/projection/v1"
API_ROOTS = (MAIN_ROOT, INT_ROOT)

# allowed values of the enumerated keys; the first is the default tenant's behaviour
COUNT = ("exact", "absent", "wrong")
TIME_ZONE_HEADER = ("honoured", "ignored")
ETAG_OBJVERSION = ("timestamp", "counter")
NEXT_LINK = ("per_set", "never")
EXPAND_REFUSALS = ("not_implemented", "bad_request")

_PROJECTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ProfileError(ValueError):
    """A profile that cannot be played; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class Profile:
    name: str = DEFAULT
    source: str = "built-in default"  # the file it came from, for messages and /_admin/profile
    document: Mapping = field(default_factory=dict)  # the JSON as given
    description: str = ""
    missing_projections: frozenset[str] = frozenset()  # model names
    forbidden_projections: frozenset[str] = frozenset()  # model names
    renamed_projections: Mapping[str, str] = field(default_factory=dict)  # model name → name served
    missing_entity_sets: frozenset[str] = frozenset()  # entity set names (unique across the model)
    expand_refused: Mapping[str, str] = field(default_factory=dict)  # entity set → not_implemented | bad_request
    count: str = COUNT[0]
    time_zone_header: str = TIME_ZONE_HEADER[0]
    etag_objversion: str = ETAG_OBJVERSION[0]
    allowed_companies: frozenset[str] | None = None  # None: every company
    page_size: int | None = None  # None: the --page-size setting
    next_link: str = NEXT_LINK[0]
    api_paths: tuple[str, ...] = API_ROOTS

    def served_name(self, projection: str) -> str:
        return self.renamed_projections.get(projection, projection)

    @property
    def api_root(self) -> str:
        """The root a client of this tenant uses: /main where it is served, else the first one."""
        return MAIN_ROOT if MAIN_ROOT in self.api_paths else self.api_paths[0]

    def describe(self) -> dict:
        """What /_admin/profile answers: the name, the file, the JSON as given and every key as in effect."""
        return {
            "name": self.name, "source": self.source, "description": self.description, "api_root": self.api_root,
            "document": dict(self.document),
            "effective": {
                "missing_projections": sorted(self.missing_projections),
                "forbidden_projections": sorted(self.forbidden_projections),
                "renamed_projections": dict(self.renamed_projections),
                "missing_entity_sets": sorted(self.missing_entity_sets),
                "expand_refused": dict(self.expand_refused),
                "count": self.count, "time_zone_header": self.time_zone_header,
                "etag_objversion": self.etag_objversion,
                "allowed_companies": sorted(self.allowed_companies) if self.allowed_companies is not None else None,
                "page_size": self.page_size, "next_link": self.next_link, "api_paths": list(self.api_paths),
            },
        }

    @cached_property
    def catalogue(self) -> "Catalogue":
        return Catalogue.of(self)


def builtin_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load(profile: str | Path | dict | Profile | None) -> Profile:
    """A built-in profile by name, a JSON file by path, or (in-process only) the JSON document itself."""
    if isinstance(profile, Profile):
        return profile
    if profile is None or profile == "":
        profile = DEFAULT
    if isinstance(profile, dict):
        return from_document(profile, name="in-process", source="in-process profile")
    text = str(profile)
    if isinstance(profile, Path) or "/" in text or "\\" in text or text.endswith(".json"):
        path = Path(text)
        name = path.stem
    else:
        path = PROFILE_DIR / f"{text}.json"
        name = text
        if not path.is_file():
            raise ProfileError(f"profile {text!r}: no such built-in profile (built-in: {', '.join(builtin_names())}; "
                               f"or give the path of a JSON file)")
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ProfileError(f"profile {path}: not valid JSON ({exc})") from None
    return from_document(document, name=name, source=str(path))


def from_document(document, *, name: str, source: str) -> Profile:
    if not isinstance(document, dict):
        raise ProfileError(f"profile {source}: must be a JSON object")
    checks = _Checks(source)
    values: dict = {}
    for key, value in document.items():
        reader = _READERS.get(key)
        if reader is None:
            raise ProfileError(f"profile {source}: unknown key '{key}' (known: {', '.join(_READERS)})")
        values[key] = reader(checks.at(key), value)
    profile = Profile(name=name, source=source, document=document, **values)
    _check_together(profile, checks)
    return profile


# --- reading one key ---------------------------------------------------------------------------------------------


class _Checks:
    def __init__(self, source: str, key: str = ""):
        self.source, self.key = source, key

    def at(self, key: str) -> "_Checks":
        return _Checks(self.source, key)

    def fail(self, problem: str) -> ProfileError:
        return ProfileError(f"profile {self.source}: key '{self.key}': {problem}")

    def strings(self, value) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail("must be a list of strings")
        if len(set(value)) != len(value):
            raise self.fail("names a value twice")
        return value

    def projection(self, name: str) -> str:
        if name not in model.SERVICES:
            raise self.fail(f"unknown projection '{name}' (known: {', '.join(sorted(model.SERVICES))})")
        return name

    def entity_set(self, name: str) -> model.Entity:
        entity = model.ENTITY_BY_SET.get(name)
        if entity is None:
            raise self.fail(f"unknown entity set '{name}' (known: {', '.join(sorted(model.ENTITY_BY_SET))})")
        return entity

    def choice(self, value, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(f"must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}")
        return value


def _description(checks: _Checks, value) -> str:
    if not isinstance(value, str):
        raise checks.fail("must be a string")
    return value


def _projections(checks: _Checks, value) -> frozenset[str]:
    return frozenset(checks.projection(name) for name in checks.strings(value))


def _renamed(checks: _Checks, value) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise checks.fail('must be an object {"<projection>": "<name served instead>"}')
    for old, new in value.items():
        checks.projection(old)
        if not _PROJECTION_NAME.match(new):
            raise checks.fail(f"'{new}' is not a projection name")
        if new in model.SERVICES and new not in value:
            raise checks.fail(f"'{old}' cannot be served as '{new}': that projection exists already")
    if len(set(value.values())) != len(value):
        raise checks.fail("two projections are given the same new name")
    return dict(value)


def _missing_sets(checks: _Checks, value) -> frozenset[str]:
    sets = []
    for item in checks.strings(value):
        projection, dot, set_name = item.rpartition(".")
        if not dot:
            raise checks.fail(f"'{item}' must be <Projection>.<EntitySet>")
        entity = checks.entity_set(set_name)
        if projection != entity.projection:
            raise checks.fail(f"'{item}': {set_name} belongs to {entity.projection}, not {projection}")
        sets.append(set_name)
    return frozenset(sets)


def _expand_refused(checks: _Checks, value) -> dict[str, str]:
    if not isinstance(value, dict):
        raise checks.fail('must be an object {"<EntitySet>": "not_implemented" | "bad_request"}')
    for set_name, how in value.items():
        entity = checks.entity_set(set_name)
        if not any(n.collection for n in entity.navigations):
            raise checks.fail(f"{set_name} has no collection navigation to refuse")
        checks.at(f"expand_refused.{set_name}").choice(how, EXPAND_REFUSALS)
    return dict(value)


def _companies(checks: _Checks, value) -> frozenset[str]:
    companies = checks.strings(value)
    if not companies:
        raise checks.fail("must name at least one company")
    unknown = [c for c in companies if c not in generate.COMPANIES]
    if unknown:
        raise checks.fail(f"unknown company {', '.join(unknown)} (the data has {', '.join(generate.COMPANIES)})")
    return frozenset(companies)


def _page_size(checks: _Checks, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise checks.fail(f"must be a whole number of at least 1, not {value!r}")
    return value


def _api_paths(checks: _Checks, value) -> tuple[str, ...]:
    paths = checks.strings(value)
    if not paths:
        raise checks.fail("must name at least one root")
    for path in paths:
        if path.rstrip("/") not in API_ROOTS:
            raise checks.fail(f"unknown root '{path}' (known: {', '.join(API_ROOTS)})")
    return tuple(path.rstrip("/") for path in paths)


_READERS = {
    "description": _description,
    "missing_projections": _projections,
    "forbidden_projections": _projections,
    "renamed_projections": _renamed,
    "missing_entity_sets": _missing_sets,
    "expand_refused": _expand_refused,
    "count": lambda checks, value: checks.choice(value, COUNT),
    "time_zone_header": lambda checks, value: checks.choice(value, TIME_ZONE_HEADER),
    "etag_objversion": lambda checks, value: checks.choice(value, ETAG_OBJVERSION),
    "allowed_companies": _companies,
    "page_size": _page_size,
    "next_link": lambda checks, value: checks.choice(value, NEXT_LINK),
    "api_paths": _api_paths,
}


def _check_together(profile: Profile, checks: _Checks) -> None:
    """Keys that contradict each other."""
    for key, names in (("forbidden_projections", profile.forbidden_projections),
                       ("renamed_projections", profile.renamed_projections)):
        both = sorted(profile.missing_projections & set(names))
        if both:
            raise checks.at(key).fail(f"{', '.join(both)} is also in missing_projections")
    gone = sorted(s for s in profile.expand_refused
                  if s in profile.missing_entity_sets
                  or model.ENTITY_BY_SET[s].projection in profile.missing_projections)
    if gone:
        raise checks.at("expand_refused").fail(f"{', '.join(gone)} is not served by this profile")


# --- the tenant's catalogue ----------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    """The projections this tenant serves, by the name it serves them under, with the entity sets it serves."""

    services: dict[str, model.Service]
    forbidden: frozenset[str]  # served names whose $metadata, service document and sets answer 403
    _metadata: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, profile: Profile) -> "Catalogue":
        services = {}
        for projection, service in model.SERVICES.items():
            if projection in profile.missing_projections:
                continue
            served = profile.served_name(projection)
            entities = tuple(dataclasses.replace(e, projection=served) if served != projection else e
                             for e in service.entities)
            services[served] = model.Service(
                served,
                tuple(e for e in entities if e.entity_set not in profile.missing_entity_sets),
                types_without_set=tuple(e for e in entities if e.entity_set in profile.missing_entity_sets))
        forbidden = frozenset(profile.served_name(p) for p in profile.forbidden_projections)
        return cls(services, forbidden)

    def metadata(self, served_name: str) -> bytes:
        document = self._metadata.get(served_name)
        if document is None:
            document = self._metadata[served_name] = csdl.metadata(self.services[served_name])
        return document
