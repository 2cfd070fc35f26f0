"""The Meltano run a target is part of, and how it ended, from Meltano's system database (its ``runs`` table).

A target sees only its input: when the tap fails after sending part of it, the target reads to the end of what came
and may finish cleanly, while Meltano records the run as ``FAIL`` ("Extractor failed") once every plugin has exited.
So the audit run remembers which Meltano run it was part of, and whoever reads it later (``mlc-audit runs``, the next
target's start) reads how that run ended: a target run that succeeded in a pipeline that failed is ``partial``.

Which Meltano run: the one ``MELTANO_RUN_ID`` names when Meltano was given an id (it then hands it to its plugins);
otherwise Meltano names none, and the run is the one Meltano is running now for this block's state id
(``<environment>:<extractor>-to-<loader>``, optionally ``:<suffix>``), which Meltano records before it starts the
plugins and of which it runs at most one at a time. Meltano's database is ``MELTANO_DATABASE_URI`` (Meltano passes its
settings to its plugins) or, by default, ``meltano.db`` under ``MELTANO_SYS_DIR_ROOT``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from ml_connector_core.audit import PipelineLink, PipelineLookup, PipelineOutcome, RunInfo, describe_url
from ml_connector_core.redaction import redact_text

#: The run id Meltano passes to its plugins, when it was given one (`MELTANO_RUN_ID=... meltano run`).
MELTANO_RUN_ID_ENV = "MELTANO_RUN_ID"
MELTANO_DATABASE_ENV = "MELTANO_DATABASE_URI"
_ID_CHUNK = 500

_log = logging.getLogger(__name__)


class MeltanoDatabaseError(RuntimeError):
    """Meltano's database cannot be read (no such file, no driver, no ``runs`` table, a password not given...)."""


def meltano_database_url(environ: Mapping[str, str]) -> str | None:
    """Where Meltano keeps its runs, as a plugin it runs (or a shell in its project) sees it; None if nowhere."""
    explicit = (environ.get(MELTANO_DATABASE_ENV) or "").strip()
    if explicit:
        return explicit
    system_dir = environ.get("MELTANO_SYS_DIR_ROOT") or (
        str(Path(environ["MELTANO_PROJECT_ROOT"]) / ".meltano") if environ.get("MELTANO_PROJECT_ROOT") else None
    )
    if system_dir and (Path(system_dir) / "meltano.db").is_file():
        return f"sqlite:///{(Path(system_dir) / 'meltano.db').as_posix()}"
    return None


def canonical_run_id(value: object) -> str:
    """Meltano's run ids are UUIDs (kept as 32 hex digits in SQLite, as uuid in PostgreSQL): one spelling for both."""
    return str(uuid.UUID(str(value)))


class MeltanoRuns:
    """Meltano's ``runs`` table, read only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = describe_url(url)
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError:
            raise MeltanoDatabaseError(f"not a database URL: {self.shown!r}") from None
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
            raise MeltanoDatabaseError(f"no Meltano database at {parsed.database}")  # connecting would create one
        try:
            self._engine: Engine = sa.create_engine(parsed)
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            raise MeltanoDatabaseError(f"no database driver for {self.shown}: {exc}") from None

    def close(self) -> None:
        self._engine.dispose()

    def running_run_of(self, job_names: Sequence[str], job_prefix: str | None = None) -> str | None:
        """The id of the latest run Meltano records as running for one of these state ids (or one that starts with
        ``job_prefix:``, a state id suffix)."""
        rows = self._query("SELECT run_id, job_name, started_at FROM runs WHERE state = 'RUNNING'")
        matching = [row for row in rows if row.job_name in job_names
                    or (job_prefix is not None and row.job_name.startswith(f"{job_prefix}:"))]
        if not matching:
            return None
        return canonical_run_id(max(matching, key=lambda row: str(row.started_at)).run_id)

    def outcomes(self, run_ids: Sequence[str]) -> dict[str, PipelineOutcome]:
        """How each of these Meltano runs stands (those Meltano knows), by canonical run id."""
        hex_ids = sorted({uuid.UUID(run_id).hex for run_id in run_ids})
        found: dict[str, PipelineOutcome] = {}
        for start in range(0, len(hex_ids), _ID_CHUNK):
            # SQLite keeps 32 hex digits, PostgreSQL a uuid whose text has dashes: compare both without dashes.
            query = sa.text(
                "SELECT run_id, state, payload FROM runs WHERE REPLACE(LOWER(CAST(run_id AS VARCHAR(36))), '-', '') "
                "IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True))
            for row in self._query(query, ids=hex_ids[start : start + _ID_CHUNK]):
                found[canonical_run_id(row.run_id)] = PipelineOutcome(str(row.state), _error_of(row.payload))
        return found

    def _query(self, query: str | sa.TextClause, **params) -> list[sa.Row]:
        try:
            with self._engine.connect() as conn:
                return conn.execute(sa.text(query) if isinstance(query, str) else query, params).all()
        except sa_exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            raise MeltanoDatabaseError(f"cannot read Meltano's runs at {self.shown}: {redact_text(reason)}") from None


def _error_of(payload: object) -> str | None:
    if payload is None:
        return None
    try:
        document = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    return redact_text(str(error)) if error else None


def lookup_in(meltano: MeltanoRuns) -> PipelineLookup:
    """Audit runs to the outcome of their Meltano runs, read from ``meltano``."""

    def lookup(runs: Sequence[RunInfo]) -> Mapping[str, PipelineOutcome]:
        linked = {run.run_id: canonical_run_id(run.pipeline_run_id) for run in runs if run.pipeline_run_id}
        if not linked:
            return {}
        outcomes = meltano.outcomes(sorted(set(linked.values())))
        return {run_id: outcomes[meltano_id] for run_id, meltano_id in linked.items() if meltano_id in outcomes}

    return lookup


def pipeline_of_this_process(environ: Mapping[str, str] = os.environ) -> tuple[PipelineLink | None,
                                                                                PipelineLookup | None]:
    """For a target starting inside ``meltano run``: the Meltano run it is part of, and a lookup of how earlier
    runs' Meltano runs ended (so that starting settles them). Outside Meltano, or when its database cannot be read,
    what can be had (a warning says what cannot): never an error, the run goes on."""
    given = (environ.get(MELTANO_RUN_ID_ENV) or "").strip() or None
    url = meltano_database_url(environ)
    if url is None:
        return (PipelineLink(canonical_run_id(given), "") if given and _is_uuid(given) else None), None
    try:
        meltano = MeltanoRuns(url)
        if given and _is_uuid(given):
            run_id: str | None = canonical_run_id(given)
        else:
            run_id = _running_run(meltano, environ)
    except MeltanoDatabaseError as exc:
        _log.warning("The pipeline's outcome will not be recorded with the audit run: %s", exc)
        return None, None
    link = None if run_id is None else PipelineLink(run_id, meltano.shown)
    return link, _tolerant(lookup_in(meltano))


def _running_run(meltano: MeltanoRuns, environ: Mapping[str, str]) -> str | None:
    environment = environ.get("MELTANO_ENVIRONMENT")
    extractor, loader = environ.get("MELTANO_EXTRACTOR_NAME"), environ.get("MELTANO_LOADER_NAME")
    state_id = (environ.get("MELTANO_STATE_ID") or "").strip()
    if state_id:
        return meltano.running_run_of([state_id])
    if not (environment and extractor and loader):
        return None  # not a block of `meltano run` (e.g. `meltano invoke`): Meltano records no run
    job = f"{environment}:{extractor}-to-{loader}"
    return meltano.running_run_of([job], job_prefix=job)


def _tolerant(lookup: PipelineLookup) -> PipelineLookup:
    def tolerant(runs: Sequence[RunInfo]) -> Mapping[str, PipelineOutcome]:
        try:
            return lookup(runs)
        except MeltanoDatabaseError as exc:
            _log.warning("Earlier runs' pipeline outcomes are not settled: %s", exc)
            return {}

    return tolerant


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def lookup_for_reader(environ: Mapping[str, str], problems: list[str]) -> PipelineLookup:
    """For ``mlc-audit``: the outcome of each run's Meltano run, read from ``MELTANO_DATABASE_URI`` when it is set,
    else from the database the run recorded (unless it needs a password), else from Meltano's database in the current
    project. What cannot be read is added to ``problems`` (once each) and left out."""
    override = (environ.get(MELTANO_DATABASE_ENV) or "").strip() or None
    opened: dict[str, MeltanoRuns | None] = {}

    def open_once(url: str) -> MeltanoRuns | None:
        if url not in opened:
            try:
                opened[url] = MeltanoRuns(url)
            except MeltanoDatabaseError as exc:
                problems.append(str(exc))
                opened[url] = None
        return opened[url]

    def lookup(runs: Sequence[RunInfo]) -> Mapping[str, PipelineOutcome]:
        by_database: dict[str, list[RunInfo]] = {}
        for run in runs:
            if not run.pipeline_run_id:
                continue
            recorded = run.pipeline_database if run.pipeline_database and "***" not in run.pipeline_database else None
            url = override or recorded or meltano_database_url({"MELTANO_PROJECT_ROOT": os.getcwd()})
            if url is None:
                where = f" ({run.pipeline_database})" if run.pipeline_database else ""
                message = f"Meltano's database{where} cannot be opened from here: set {MELTANO_DATABASE_ENV}"
                if message not in problems:
                    problems.append(message)
                continue
            by_database.setdefault(url, []).append(run)
        found: dict[str, PipelineOutcome] = {}
        for url, group in by_database.items():
            meltano = open_once(url)
            if meltano is None:
                continue
            try:
                found.update(lookup_in(meltano)(group))
            except MeltanoDatabaseError as exc:
                if str(exc) not in problems:
                    problems.append(str(exc))
        return found

    return lookup
