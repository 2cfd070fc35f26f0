"""The Composite resource (POST /services/data/vNN.N/composite): up to 25 subrequests run in order in one API call,
later ones reading earlier answers through @{referenceId.field} references, all of them rolled back together when
allOrNone is true.

What it follows (REST API Developer Guide: "Send Multiple Requests Using Composite", "Composite Request Body",
"Composite Subrequest Result", "allOrNone Parameters in Composite and Collections Requests"):
- subrequests reach sObject resources (rows, by external id, describe, updated/deleted), query/queryAll and sObject
  Collections; at most 25 of them, at most 5 of those queries or collections;
- referenceId starts with a letter or a digit and holds only letters, digits and '_' (otherwise the whole request is
  400 JSON_PARSER_ERROR, as from API version 52.0); references are `@{ref.field}`, `@{ref.records[0].Id}`,
  case-sensitive;
- allOrNone false: a subrequest that refers to a failed one is not run (400 PROCESSING_HALTED "Invalid reference
  specified. No value for ref.id found in ref."), the others are; allOrNone true: the first failure rolls everything
  back, every other subrequest answers 400 PROCESSING_HALTED "The transaction was rolled back since another operation
  in the same transaction failed.", and collections inside follow all-or-none too;
- the subrequests' Accept, Authorization and Content-Type come from the top-level request and may not be given.
collateSubrequests is accepted and changes nothing: subrequests always run in the order given (which collation
allows)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message
from typing import Callable
from urllib.parse import unquote

from ..http import Request, Response

MAX_SUBREQUESTS = 25
MAX_QUERIES_AND_COLLECTIONS = 5
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
INHERITED_HEADERS = ("accept", "authorization", "content-type")
REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
REFERENCE = re.compile(r"@\{([^}.\[]*)((?:\.[^}.\[]+|\[\d+\])*)\}")
ROLLED_BACK = [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another "
                                                             "operation in the same transaction failed."}]


class CompositeRefused(Exception):
    """The whole request is malformed: 400 JSON_PARSER_ERROR, nothing is run."""


@dataclass
class Subrequest:
    method: str
    url: str
    reference_id: str
    body: object
    headers: dict[str, str]


class Unresolved(Exception):
    def __init__(self, expression: str, reference_id: str, answered: bool):
        self.expression, self.reference_id = expression, reference_id
        message = f"Invalid reference specified. No value for {expression} found in {reference_id}."
        if answered:  # the subrequest answered but has no such value (Salesforce adds the referenceId rule)
            message += (f" Provided referenceId ('{expression}') must start with a letter or a number, and it can "
                        f"contain only letters, numbers and underscores ('_').")
        super().__init__(message)


def parse(body) -> tuple[bool, list[Subrequest]]:
    """(allOrNone, subrequests) of a composite request body; CompositeRefused when it is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise CompositeRefused("The request body must be an object with a 'compositeRequest' list")
    for flag in ("allOrNone", "collateSubrequests"):
        if not isinstance(body.get(flag, False), bool):
            raise CompositeRefused(f"'{flag}' must be a boolean")
    subrequests, seen = [], set()
    for position, item in enumerate(body["compositeRequest"]):
        if not isinstance(item, dict):
            raise CompositeRefused(f"Subrequest {position} is not a JSON object")
        method, url, reference_id = item.get("method"), item.get("url"), item.get("referenceId")
        if method not in METHODS:
            raise CompositeRefused(f"Subrequest {position}: method must be one of {', '.join(METHODS)}, not {method!r}")
        if not isinstance(url, str) or not url.startswith("/services/data/v"):
            raise CompositeRefused(f"Subrequest {position}: url must start with /services/data/vXX.X/")
        if not isinstance(reference_id, str) or not REFERENCE_ID.match(reference_id):
            raise CompositeRefused(f"Provided referenceId ('{reference_id}') must start with a letter or a number, "
                                   f"and it can contain only letters, numbers and underscores ('_').")
        if reference_id in seen:
            raise CompositeRefused(f"Duplicate referenceId provided in the request: {reference_id}")
        seen.add(reference_id)
        headers = item.get("httpHeaders") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise CompositeRefused(f"Subrequest {reference_id}: httpHeaders must map header names to strings")
        inherited = [name for name in headers if name.lower() in INHERITED_HEADERS]
        if inherited:
            raise CompositeRefused(f"Subrequest {reference_id}: the header {inherited[0]} comes from the composite "
                                   f"request and cannot be set on a subrequest")
        subrequests.append(Subrequest(method, url, reference_id, item.get("body"), headers))
    return body.get("allOrNone", False), subrequests


def _limit_exceeded(message: str) -> dict:
    return {"compositeResponse": [{"body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}], "httpHeaders": {},
                                   "httpStatusCode": 400, "referenceId": None}]}


def limits_exceeded(subrequests: list[Subrequest]) -> dict | None:
    """The answer Salesforce gives a request over its limits (HTTP 200, one LIMIT_EXCEEDED result), or None."""
    if len(subrequests) > MAX_SUBREQUESTS:
        return _limit_exceeded(f"The request can’t contain more than {MAX_SUBREQUESTS} operations.")
    heavy = [s for s in subrequests if re.match(r"^/services/data/v[\d.]+/(query|queryAll|composite/sobjects)\b",
                                                s.url)]
    if len(heavy) > MAX_QUERIES_AND_COLLECTIONS:
        return _limit_exceeded(f"The request can’t contain more than {MAX_QUERIES_AND_COLLECTIONS} query or sObject "
                               f"Collections operations.")
    return None


def _lookup(answers: dict[str, object], reference_id: str, path: str):
    if reference_id not in answers:
        raise Unresolved(reference_id + path, reference_id, answered=False)
    value = answers[reference_id]
    for step in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        key, index = step
        if key and isinstance(value, dict) and key in value:
            value = value[key]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise Unresolved(reference_id + path, reference_id, answered=True)
    return value


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def resolve(value, answers: dict[str, object]):
    """`value` with every @{...} reference replaced: a string that is one reference takes the referenced value as it
    is (a number stays a number), references inside longer text are written into it."""
    if isinstance(value, dict):
        return {key: resolve(item, answers) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, answers) for item in value]
    if not isinstance(value, str) or "@{" not in value:
        return value
    whole = REFERENCE.fullmatch(value)
    if whole:
        return _lookup(answers, whole.group(1), whole.group(2))
    return REFERENCE.sub(lambda m: _as_text(_lookup(answers, m.group(1), m.group(2))), value)


def subrequest_request(subrequest: Subrequest, url: str, body) -> Request:
    path, _, query = url.partition("?")
    headers = Message()
    for name, value in subrequest.headers.items():
        headers[name] = value
    content = b"" if body is None else json.dumps(body).encode()
    if body is not None:
        headers["Content-Type"] = "application/json"
    return Request(subrequest.method, path, query, headers, content, ("composite", 0))


def run(subrequests: list[Subrequest], all_or_none: bool,
        execute: Callable[[Request], Response]) -> tuple[list[dict], bool]:
    """(each subrequest's result in order, whether everything must be rolled back). `execute` answers one subrequest
    as the API would, inside the org's transaction, which the caller rolls back when told so."""
    results: list[dict] = []
    answers: dict[str, object] = {}
    halted = False
    for subrequest in subrequests:
        if halted:
            results.append(_result(subrequest, 400, ROLLED_BACK, {}))
            continue
        try:
            url = resolve(subrequest.url, answers)
            body = resolve(subrequest.body, answers)
        except Unresolved as unresolved:
            results.append(_result(subrequest, 400, [{"errorCode": "PROCESSING_HALTED", "message": str(unresolved)}],
                                   {}))
            halted = all_or_none
            continue
        response = execute(subrequest_request(subrequest, url, body))
        document = json.loads(response.body) if response.body else None
        headers = {}
        if response.status == 201 and isinstance(document, dict) and document.get("id"):
            version_and_type = re.match(r"^(/services/data/v[\d.]+/sobjects/[^/?]+)", unquote(url))
            if version_and_type:
                headers["Location"] = f"{version_and_type.group(1)}/{document['id']}"
        result = _result(subrequest, response.status, document, headers)
        results.append(result)
        if _failed(result, all_or_none):
            halted = all_or_none
        else:
            answers[subrequest.reference_id] = document
    if halted:  # all or none: everything that had succeeded is rolled back and says so
        results = [result if _failed(result, True) else {**result, "body": ROLLED_BACK, "httpHeaders": {},
                                                          "httpStatusCode": 400}
                   for result in results]
    return results, halted


def _result(subrequest: Subrequest, status: int, body, headers: dict) -> dict:
    return {"body": body, "httpHeaders": headers, "httpStatusCode": status, "referenceId": subrequest.reference_id}


def _failed(result: dict, all_or_none: bool) -> bool:
    """A subrequest failed when it answered 4xx/5xx; under allOrNone also a collection with a failed record (the
    composite's allOrNone applies to the collections inside it)."""
    if result["httpStatusCode"] >= 400:
        return result["body"] != ROLLED_BACK
    body = result["body"]
    return all_or_none and isinstance(body, list) and any(
        isinstance(item, dict) and item.get("success") is False for item in body)
