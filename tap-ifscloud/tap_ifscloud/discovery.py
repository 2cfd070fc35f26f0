"""Which of the offered streams this tenant lets the service user read, and if not, why and what to change.

One piece of code for the tap's discovery and for tap-ifscloud-check. Only definite answers make a stream unreadable:
HTTP 403 or 404 on the projection's $metadata, or an entity set, change column or navigation that $metadata does not
describe. Everything transient (429, 5xx, a dropped connection, a cut-off document) is retried by whoever reads
$metadata and, when it keeps failing, is an error of the whole run, never a stream quietly gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ml_connector_core.ifs_metadata import EntitySetInfo, ServiceMetadata
from tap_ifscloud.streams import OfferedStream, StreamDefinition


class ProjectionUnreadable(Exception):
    """The projection's $metadata answered 403 (not granted to the service user) or 404 (no such projection)."""

    def __init__(self, projection: str, status: int, message: str) -> None:
        super().__init__(f"HTTP {status} on {projection}.svc/$metadata ({message})" if message
                         else f"HTTP {status} on {projection}.svc/$metadata")
        self.projection = projection
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Unreadable:
    """Why a stream cannot be read as configured, and the one thing to change."""

    what: str  #: what the tenant answered or lacks
    fix: str  #: the setting or permission to change
    option: str  #: the stream option at fault: projection, entity_set, replication_key or expand


@dataclass
class StreamAssessment:
    offered: OfferedStream
    entity: EntitySetInfo | None = None
    #: The entity set the embedded lines live in (None when the stream has no lines).
    lines: EntitySetInfo | None = None
    problem: Unreadable | None = None
    #: Why a stream is offered with less than its definition asks for (its lines left out), for one warning.
    note: str | None = None

    @property
    def name(self) -> str:
        return self.offered.name

    @property
    def definition(self) -> StreamDefinition:
        """The stream as it will be read: without its lines when they cannot be."""
        definition = self.offered.definition
        return replace(definition, expand=None) if definition.expand and self.lines is None else definition

    @property
    def readable(self) -> bool:
        return self.problem is None

    @property
    def is_error(self) -> bool:
        """A stream the user named that cannot be read stops the run; one offered by default is left out."""
        if self.problem is None or self.offered.named_in is None:
            return False
        return self.problem.option != "expand" or "expand" in self.offered.options_set

    def error_text(self) -> str:
        assert self.problem is not None
        named_in = self.offered.named_in
        undo = {"built_in_streams": "; or remove it from built_in_streams",
                "the catalog": "; or deselect it in the catalog",
                "select (meltano.yml)": "; or take it out of the plugin's select rules"}.get(named_in or "", "")
        return (f"Stream '{self.name}' (named in {named_in}) cannot be read: {self.problem.what}. "
                f"{_capitalized(self.problem.fix)}{undo}.")

    def warning_text(self) -> str:
        assert self.problem is not None
        return (f"Stream '{self.name}' left out of the catalog: {self.problem.what}. To read it, {self.problem.fix}; "
                "to stop offering it, list the built-in streams you want in built_in_streams.")


def assess(offered: OfferedStream, metadata_of: Callable[[str], ServiceMetadata]) -> StreamAssessment:
    """Whether the stream can be read as defined, from its projection's $metadata (``metadata_of`` raises
    :class:`ProjectionUnreadable` for a 403/404 and anything else for a failure that is not an answer)."""
    definition, setting = offered.definition, offered.setting
    projection, entity_set = definition.projection, definition.entity_set
    assessment = StreamAssessment(offered)
    try:
        metadata = metadata_of(projection)
    except ProjectionUnreadable as exc:
        if exc.status == 403:
            assessment.problem = Unreadable(
                f"{exc}: the service user is not granted projection {projection}",
                f"grant the IFS service user a permission set that includes {projection}, or set "
                f"{setting}.projection", "projection")
        else:
            assessment.problem = Unreadable(
                f"{exc}: this tenant has no projection {projection}",
                f"set {setting}.projection to its name on this tenant", "projection")
        return assessment
    entity = metadata.entity_sets.get(entity_set)
    if entity is None:
        known = ", ".join(sorted(metadata.entity_sets)) or "none"
        assessment.problem = Unreadable(f"{projection}.svc has no entity set '{entity_set}' (it has: {known})",
                                        f"set {setting}.entity_set", "entity_set")
        return assessment
    change_column = definition.replication_key
    if change_column and change_column not in entity.properties:
        assessment.problem = Unreadable(
            f"{projection}.svc/{entity_set} has no change column '{change_column}'",
            f"set {setting}.replication_key to its change timestamp (empty reads the whole set every run)",
            "replication_key")
        return assessment
    assessment.entity = entity
    if definition.expand:
        lines, why_not = _line_set(metadata, entity, definition.expand, f"{projection}.svc/{entity_set}")
        if lines is not None:
            assessment.lines = lines
        elif "expand" in offered.options_set:
            assessment.entity = None
            assessment.problem = Unreadable(why_not, f"set {setting}.expand to a collection navigation of "
                                                     f"{entity_set} whose lines carry its keys, or to empty", "expand")
        else:
            assessment.note = (f"Stream '{offered.name}' offered without its lines {definition.expand}: {why_not}. "
                               f"Set {setting}.expand to a navigation that has them, or to \"\" to read the headers "
                               "alone without this warning.")
    return assessment


def _line_set(metadata: ServiceMetadata, entity: EntitySetInfo, expand: str, label: str
              ) -> tuple[EntitySetInfo | None, str]:
    """The entity set of the lines embedded through ``expand``: it gives their schema, and it is where they are read
    from, by their header's keys, when IFS refuses the $expand. Else None and why."""
    navigation = entity.navigations.get(expand)
    if navigation is None or not navigation.is_collection:
        return None, f"{label} has no collection navigation '{expand}'"
    if not navigation.target_entity_set:
        return None, f"{label}'s navigation '{expand}' is bound to no entity set"
    lines = metadata.entity_sets.get(navigation.target_entity_set)
    if lines is None:
        return None, f"{label}'s navigation '{expand}' is bound to {navigation.target_entity_set}, which is not there"
    missing = [key for key in entity.keys if key not in lines.properties]
    if missing or not entity.keys:
        return None, (f"the lines in {lines.name} do not carry {entity.name}'s key(s) "
                      f"{', '.join(missing or ['(none)'])}, so they cannot be read by their header's keys")
    return lines, ""


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]
