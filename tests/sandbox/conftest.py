"""Fixtures for the IFS stand-in's own tests: real HTTP over loopback against in-process servers."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import quote

import pytest
import requests

from mlc_sandbox.ifs import IfsSandbox

SCALE, SEED = 200, 7
ALL_ROWS = 100000  # larger than any set at SCALE: one $top page returns a whole top/skip set... capped by page size


def encode(value: str) -> str:
    """RFC 3986 percent-encoding as a strict OData client must send it (space → %20, + → %2B)."""
    return quote(value, safe="$(),'=:*/")


def query(**options: object) -> str:
    return "&".join(f"${name}={encode(str(value))}" for name, value in options.items())


class Client:
    """A plain requests client for the stand-in, parsing numbers as Decimal so exactness can be checked."""

    def __init__(self, sandbox: IfsSandbox, utc: bool = True):
        self.sandbox = sandbox
        self.utc = utc
        self.http = requests.Session()
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post(self.sandbox.token_url, data={
            "grant_type": "client_credentials", "client_id": "mlc-sandbox-client",
            "client_secret": "mlc-sandbox-secret"})
        response.raise_for_status()
        return response.json()["access_token"]

    def url(self, projection: str, path: str, query_string: str = "") -> str:
        return f"{self.sandbox.service_url(projection)}/{path}" + (f"?{query_string}" if query_string else "")

    def get(self, projection: str, path: str, query_string: str = "", *, utc: bool | None = None,
            headers: dict | None = None) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {self.token}"}
        if self.utc if utc is None else utc:
            all_headers["X-Ifs-Time-Zone-Aware-Request"] = "true"
        all_headers.update(headers or {})
        return self.http.get(self.url(projection, path, query_string), headers=all_headers)

    def json(self, projection: str, path: str, query_string: str = "", **kwargs) -> dict:
        response = self.get(projection, path, query_string, **kwargs)
        assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
        return json.loads(response.text, parse_float=Decimal)

    def all_rows(self, projection: str, entity_set: str, query_string: str = "", **kwargs) -> list[dict]:
        """Every row, by nextLink where offered, else by $top/$skip."""
        rows: list[dict] = []
        page = self.json(projection, entity_set, query_string, **kwargs)
        skip = 0
        while True:
            rows += page["value"]
            if "@odata.nextLink" in page:
                link = page["@odata.nextLink"]
                page = self.json(projection, link.split("?")[0], link.split("?", 1)[1], **kwargs)
                continue
            if len(page["value"]) < self.sandbox.settings.page_size:
                return rows
            skip += len(page["value"])
            extra = f"$skip={skip}"
            page = self.json(projection, entity_set, "&".join(p for p in (query_string, extra) if p), **kwargs)

    def error(self, projection: str, path: str, query_string: str = "", **kwargs) -> tuple[int, dict]:
        response = self.get(projection, path, query_string, **kwargs)
        return response.status_code, response.json()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ifs-sandbox-data")


@pytest.fixture(scope="session")
def sandbox(data_dir):
    """A shared stand-in for tests that only read (no rate limit in the way)."""
    with IfsSandbox(scale=SCALE, seed=SEED, port=0, data_dir=data_dir, rate_limit=0) as ifs:
        yield ifs


@pytest.fixture
def fresh(data_dir):
    """A stand-in of one's own, for tests that change data, settings or faults."""
    started = []

    def start(**options) -> IfsSandbox:
        options.setdefault("rate_limit", 0)
        ifs = IfsSandbox(scale=SCALE, seed=SEED, port=0, data_dir=data_dir, **options).start()
        started.append(ifs)
        return ifs

    yield start
    for ifs in started:
        ifs.stop()


@pytest.fixture(scope="session")
def client(sandbox) -> Client:
    return Client(sandbox)
