"""Is this an Adaptive Card Teams would show? The official Adaptive Card 1.5 JSON schema (draft-06) plus the rules
Teams adds: a top-level `type` and `version`, a version of at most 1.5, and the shape of the `msteams` extension.

Every problem names the JSON path of what is wrong, relative to the card (`$.body[1].size`). The schema's element and
action lists are unions (`anyOf`) over every element type; a union error is explained through the branch of the
element's own `type`, so a bad `size` on a TextBlock is reported as `$.body[1].size`, not as "not valid under any of
the given schemas" at `$.body[1]`. For speed, `anyOf` skips the branches whose `type` enum already refuses the
element's `type` (they could not match); what is valid is exactly what the plain draft-06 validator finds valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from jsonschema import Draft6Validator, validators
from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "adaptive-card-1.5.schema.json"
MAX_VERSION = (1, 5)  # the highest Adaptive Card version Teams renders
VERSION = re.compile(r"^(\d+)\.(\d+)$")
IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    path: str  # JSON path relative to the card
    message: str
    code: str = "SchemaViolation"
    schema_path: str | None = None

    def as_json(self, prefix: str = "") -> dict:
        """The problem with its path relative to the request body when `prefix` is the card's path there."""
        document = asdict(self)
        document["card_path"] = self.path
        document["path"] = prefix + self.path[1:] if prefix else self.path
        return {k: v for k, v in document.items() if v is not None}


def json_path(parts) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif IDENTIFIER.match(part):
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return path


def load_schema(path: str | Path | None = None) -> dict:
    """The Adaptive Card 1.5 schema shipped in this package, or the one at `path`."""
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return json.loads((resources.files(__package__) / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8"))


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TypeIndex:
    """Which `type` values a (sub)schema can accept: a set, or None when it does not constrain `type`."""

    def __init__(self, schema: dict):
        self._definitions = schema.get("definitions", {})
        self._cache: dict[int, frozenset[str] | None] = {}

    def names(self, schema, depth: int = 0) -> frozenset[str] | None:
        if not isinstance(schema, dict) or depth > 12:
            return None
        key = id(schema)
        if key not in self._cache:
            self._cache[key] = self._names(schema, depth)
        return self._cache[key]

    def _names(self, schema: dict, depth: int) -> frozenset[str] | None:
        constraints: list[frozenset[str]] = []
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            target = self.names(self._definitions.get(ref[len("#/definitions/"):]), depth + 1)
            if target is not None:
                constraints.append(target)
        declared = schema.get("properties", {}).get("type")
        if isinstance(declared, dict) and isinstance(declared.get("enum"), list):
            constraints.append(frozenset(v for v in declared["enum"] if isinstance(v, str)))
        for sub in schema.get("allOf", []):  # every part must accept
            part = self.names(sub, depth + 1)
            if part is not None:
                constraints.append(part)
        for combinator in ("anyOf", "oneOf"):  # some branch must accept: unconstrained if any branch is
            if combinator in schema:
                branches = [self.names(sub, depth + 1) for sub in schema[combinator]]
                if branches and all(b is not None for b in branches):
                    constraints.append(frozenset().union(*branches))
        if not constraints:
            return None
        return frozenset.intersection(*constraints)


def _discriminating_any_of(index: TypeIndex):
    """draft-06 `anyOf`, skipping branches whose `type` enum refuses the instance's `type` (they cannot match)."""

    def any_of(validator, branches, instance, schema):
        kind = instance.get("type") if isinstance(instance, dict) else None
        errors = []
        for i, branch in enumerate(branches):
            if isinstance(kind, str):
                names = index.names(branch)
                if names is not None and kind not in names:
                    continue
            branch_errors = list(validator.descend(instance, branch, schema_path=i))
            if not branch_errors:
                return
            errors.extend(branch_errors)
        yield ValidationError(f"{instance!r} is not valid under any of the given schemas", context=errors)

    return any_of


class CardValidator:
    def __init__(self, schema: dict | None = None):
        schema = schema if schema is not None else load_schema()
        Draft6Validator.check_schema(schema)
        self.schema = schema
        self._types = TypeIndex(schema)
        fast = validators.extend(Draft6Validator, {"anyOf": _discriminating_any_of(self._types)})
        self._validator = fast(schema)

    # the whole check

    def problems(self, card) -> list[Problem]:
        if not isinstance(card, dict):
            return [Problem("$", f"an Adaptive Card is a JSON object, not {_short(card)}", "InvalidCard")]
        found = self._teams_rules(card)
        schema_card = {k: v for k, v in card.items() if k != "msteams"}  # the Teams host extension, checked above
        for error in self._validator.iter_errors(schema_card):
            found += self._explain(error)
            if len(found) >= MAX_PROBLEMS:
                break
        unique = list(dict.fromkeys(found))
        return unique[:MAX_PROBLEMS]

    def conforms(self, card) -> bool:
        """Valid under the schema alone (no Teams rules): the same answer as a plain draft-06 validator."""
        return self._validator.is_valid(card)

    # Teams' own rules

    def _teams_rules(self, card: dict) -> list[Problem]:
        found = []
        if "type" not in card:
            found.append(Problem("$.type", "'type' is required on the card and must be \"AdaptiveCard\"",
                                 "InvalidCard"))
        version = card.get("version")
        if "version" not in card:
            found.append(Problem("$.version", "'version' is required on the top-level card (Teams renders up to "
                                              "1.5)", "MissingCardVersion"))
        elif isinstance(version, str):
            match = VERSION.match(version)
            if not match:
                found.append(Problem("$.version", f"version {_short(version)} is not a version like \"1.5\"",
                                     "InvalidCardVersion"))
            elif (int(match.group(1)), int(match.group(2))) > MAX_VERSION:
                found.append(Problem("$.version", f"version \"{version}\" is not supported: Teams renders Adaptive "
                                                  "Cards up to version 1.5", "UnsupportedCardVersion"))
        if "msteams" in card:
            found += _msteams_problems(card["msteams"])
        return found

    # schema errors explained

    def _explain(self, error: ValidationError) -> list[Problem]:
        path = json_path(error.absolute_path)
        schema_path = "/".join(str(p) for p in error.absolute_schema_path)
        instance = error.instance
        if error.validator in ("anyOf", "oneOf"):
            return self._explain_union(error, path, schema_path)
        if error.validator == "additionalProperties" and isinstance(instance, dict):
            allowed = set(error.schema.get("properties", {}))
            patterns = list(error.schema.get("patternProperties", {}))
            extras = [k for k in instance if k not in allowed and not any(re.search(p, k) for p in patterns)]
            owner = instance.get("type") if isinstance(instance.get("type"), str) else "this object"
            return [Problem(json_path([*error.absolute_path, k]),
                            f"property '{k}' is not allowed on {owner} in Adaptive Cards 1.5", schema_path=schema_path)
                    for k in extras] or [Problem(path, error.message, schema_path=schema_path)]
        if error.validator == "required" and isinstance(instance, dict):
            missing = [k for k in error.validator_value if k not in instance]
            owner = instance.get("type") if isinstance(instance.get("type"), str) else "this object"
            return [Problem(json_path([*error.absolute_path, k]), f"'{k}' is required on {owner}",
                            schema_path=schema_path) for k in missing]
        if error.validator == "enum":
            return [Problem(path, f"{_short(instance)} is not one of {', '.join(map(_short, error.validator_value))}",
                            schema_path=schema_path)]
        if error.validator == "type":
            return [Problem(path, f"{_short(instance)} is not of type {error.validator_value!r}",
                            schema_path=schema_path)]
        return [Problem(path, error.message, schema_path=schema_path)]

    def _explain_union(self, error: ValidationError, path: str, schema_path: str) -> list[Problem]:
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        names = [self._types.names(branch) for branch in error.validator_value]
        instance = error.instance
        if any(names) and isinstance(instance, dict):
            allowed = sorted(set().union(*(n for n in names if n)))
            kind = instance.get("type")
            if "type" not in instance and all(n is not None for n in names):
                return [Problem(json_path([*error.absolute_path, "type"]),
                                f"'type' is required: one of {', '.join(allowed)}", schema_path=schema_path)]
            if isinstance(kind, str):
                chosen = [i for i, n in enumerate(names) if n is not None and kind in n]
                if chosen:
                    found = [p for i in chosen for sub in branches.get(i, []) for p in self._explain(sub)]
                    if found:
                        return found
                else:
                    return [Problem(json_path([*error.absolute_path, "type"]),
                                    f"{_short(kind)} is not a type Adaptive Cards 1.5 allow here; expected one of "
                                    f"{', '.join(allowed)}", schema_path=schema_path)]
        # alternatives of values (an enum or null, a string or an object, ...): say what would have been allowed
        leaves = [leaf for sub in error.context for leaf in _leaves(sub)]
        values = list(dict.fromkeys(_short(v) for leaf in leaves if leaf.validator == "enum"
                                    for v in leaf.validator_value))
        types = list(dict.fromkeys(str(leaf.validator_value) for leaf in leaves if leaf.validator == "type"))
        if values or types:
            kinds = "null" if types == ["null"] else f"of type {' or '.join(types)}"
            allowed = (f"one of {', '.join(values)}" if values else "") + \
                      (" or " if values and types else "") + (kinds if types else "")
            return [Problem(path, f"{_short(instance)} is not {allowed}", schema_path=schema_path)]
        reasons = list(dict.fromkeys(leaf.message for leaf in leaves))[:3]
        return [Problem(path, f"{_short(instance)} matches none of the allowed forms: " + "; or ".join(reasons),
                        schema_path=schema_path)]


def _leaves(error: ValidationError) -> list[ValidationError]:
    if error.validator in ("anyOf", "oneOf") and error.context:
        return [leaf for sub in error.context for leaf in _leaves(sub)]
    return [error]


def _msteams_problems(extension) -> list[Problem]:
    """The `msteams` property Teams reads on a card: `width` ("Full") and `entities` (mentions)."""
    if not isinstance(extension, dict):
        return [Problem("$.msteams", "'msteams' must be an object", "InvalidTeamsExtension")]
    found = []
    if "width" in extension and extension["width"] != "Full":
        found.append(Problem("$.msteams.width", f"{_short(extension['width'])} is not a width Teams knows "
                                                "(only \"Full\")", "InvalidTeamsExtension"))
    entities = extension.get("entities")
    if entities is not None:
        if not isinstance(entities, list):
            return found + [Problem("$.msteams.entities", "'entities' must be an array", "InvalidTeamsExtension")]
        for i, entity in enumerate(entities):
            where = f"$.msteams.entities[{i}]"
            if not isinstance(entity, dict) or entity.get("type") != "mention":
                found.append(Problem(where, "an entity must be an object of type \"mention\"",
                                     "InvalidTeamsExtension"))
                continue
            if not isinstance(entity.get("text"), str):
                found.append(Problem(f"{where}.text", "a mention needs its 'text' (\"<at>name</at>\")",
                                     "InvalidTeamsExtension"))
            mentioned = entity.get("mentioned")
            if not (isinstance(mentioned, dict) and isinstance(mentioned.get("id"), str)
                    and isinstance(mentioned.get("name"), str)):
                found.append(Problem(f"{where}.mentioned", "a mention needs 'mentioned': {\"id\", \"name\"}",
                                     "InvalidTeamsExtension"))
    return found
