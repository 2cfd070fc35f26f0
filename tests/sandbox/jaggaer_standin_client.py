"""What the JAGGAER stand-in's tests share: a fresh in-process stand-in per test and a small API client over real
HTTP that reads amounts as exact Decimals."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from mlc_sandbox.jaggaer import JaggaerSandbox


def token_for(jg) -> str:
    answer = requests.post(jg.token_url, data={"grant_type": "client_credentials", "client_id": jg.client_id,
                                               "client_secret": jg.client_secret})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def exact(answer: requests.Response):
    """The answer's JSON with numbers that have a fraction read as Decimals (as a careful client does)."""
    return json.loads(answer.text, parse_float=Decimal)


class Client:
    def __init__(self, jg):
        self.jg = jg
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token_for(jg)}"

    def call(self, method: str, path: str, body=None, **params) -> requests.Response:
        data = None if body is None else body if isinstance(body, (str, bytes)) else json.dumps(body, default=str)
        return self.session.request(method, f"{self.jg.api_url}/{path.lstrip('/')}", data=data, params=params or None,
                                    headers={"Content-Type": "application/json"} if data is not None else None)

    def created(self, path: str, body: dict) -> dict:
        answer = self.call("POST", path, body)
        assert answer.status_code == 201, answer.text
        return exact(answer)

    def listing(self, path: str, **params) -> dict:
        answer = self.call("GET", path, **params)
        assert answer.status_code == 200, answer.text
        return exact(answer)

    def supplier(self, external_id: str = "S1", **fields) -> dict:
        return self.created("suppliers", {"externalId": external_id, "name": f"Supplier {external_id}",
                                          "country": "SE", "currency": "SEK", **fields})

    def order(self, external_id: str = "PO-IFS-1", supplier: str = "S1", lines: list[dict] | None = None,
              **fields) -> dict:
        return self.created("purchase-orders", order_body(external_id, supplier, lines, **fields))


def order_line(number: int, quantity="2", unit_price="10.00", **fields) -> dict:
    return {"lineNumber": number, "description": f"Item {number}", "quantity": quantity, "unitOfMeasure": "EA",
            "unitPrice": unit_price, "glAccount": "4010", **fields}


def order_body(external_id: str = "PO-IFS-1", supplier: str = "S1", lines: list[dict] | None = None, **fields) -> dict:
    return {"externalId": external_id, "supplierExternalId": supplier, "companyCode": "10", "orderDate": "2026-03-01",
            "currency": "SEK", "lines": [order_line(1)] if lines is None else lines, **fields}


def errors_of(answer: requests.Response) -> list[tuple[str, str | None]]:
    """(code, field) of each error entry."""
    return [(error["code"], error.get("field")) for error in answer.json()["errors"]]


@pytest.fixture
def jaggaer():
    """A stand-in of one's own, without the rate limit in the way."""
    with JaggaerSandbox(port=0, rate_limit=0) as jg:
        yield jg


@pytest.fixture
def api(jaggaer) -> Client:
    return Client(jaggaer)
