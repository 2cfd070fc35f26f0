"""Talking to the IFS stand-in in its own tests: strict URL encoding, Decimal-exact JSON, paging helpers."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import quote

import requests

from mlc_sandbox.ifs import IfsSandbox

SCALE, SEED = 200, 7


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
