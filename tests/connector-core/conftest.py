"""Audit stores for the tests: a SQLite file in tmp_path, and a real PostgreSQL (pgserver runs one from a wheel)."""

from __future__ import annotations

import itertools
import warnings

import pytest

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR on CI, it falls back to /tmp
        import pgserver  # from ml-connector-core[test]

        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg
    from sqlalchemy.engine import make_url

    server_url = make_url(postgres_server.get_uri())
    database = f"audit_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    return server_url.set(drivername="postgresql+psycopg", database=database).render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'audit.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def audit_url(request) -> str:
    """The same test against each backend."""
    return request.getfixturevalue(f"{request.param}_url")
