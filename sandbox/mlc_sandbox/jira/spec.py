"""The official contracts every exchange is held to: the Jira Cloud platform v3 OpenAPI document (requests and
responses, through openapi-core) and the Atlassian Document Format schema (descriptions, comment bodies). Requests
through /rest/api/2 and /rest/api/latest are held to the same operations of the v3 document: Atlassian documents the
same operations for both versions, differing in rich text, which the v3 document leaves untyped in the request and
response bodies the stand-in serves (comment `body`, the free-form issue `fields`) and the stand-in checks itself.

Building the OpenAPI object takes about a second for the 2.4 MB document, so it is built once per process and shared
by every app in it."""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from pathlib import Path

import jsonschema_rs

SPECS = Path(__file__).parent / "specs"
OPENAPI_FILE = SPECS / "jira-cloud-platform-v3.openapi.json"
ADF_FILE = SPECS / "atlassian-document-format-v1.schema.json"
SPEC_SERVER = "https://your-domain.atlassian.net"  # the spec's server; requests are validated as if sent there

_build_lock = threading.Lock()


def _security_providers():
    """openapi-core cannot check OAuth 2.0 and warns on every such request; the stand-in authenticates every request
    itself before validating it, so the OAuth 2.0 scheme passes here quietly."""
    from openapi_core.security.factories import SecurityProviderFactory
    from openapi_core.security.providers import BaseProvider

    class CheckedBeforehand(BaseProvider):
        def __call__(self, parameters):
            return None

    class Providers(SecurityProviderFactory):
        PROVIDERS = {**SecurityProviderFactory.PROVIDERS, "oauth2": CheckedBeforehand}

    return Providers()


# the operations the stand-in serves; finding a request's path among all 402 of the document is most of the cost of
# validating it, and a request to any other path is answered 404 before validation, so only these are kept (their
# definitions untouched)
SERVED_PATHS = (
    "/rest/api/3/myself", "/rest/api/3/serverInfo", "/rest/api/3/user/search", "/rest/api/3/project",
    "/rest/api/3/project/search",
    "/rest/api/3/project/{projectIdOrKey}", "/rest/api/3/project/{projectIdOrKey}/statuses",
    "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes",
    "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}", "/rest/api/3/field",
    "/rest/api/3/priority", "/rest/api/3/issue", "/rest/api/3/issue/bulk", "/rest/api/3/issue/{issueIdOrKey}",
    "/rest/api/3/issue/{issueIdOrKey}/transitions", "/rest/api/3/issue/{issueIdOrKey}/comment",
    "/rest/api/3/issue/{issueIdOrKey}/comment/{id}",
    "/rest/api/3/search/jql", "/rest/api/3/search", "/rest/api/3/search/approximate-count",
)


@functools.cache
def _openapi(path: str):
    from openapi_core import Config, OpenAPI

    document = json.loads(Path(path).read_text())
    missing = [p for p in SERVED_PATHS if p not in document["paths"]]
    if missing:
        raise ValueError(f"the OpenAPI document {path} lacks {', '.join(missing)}")
    document["paths"] = {p: document["paths"][p] for p in SERVED_PATHS}

    # the official document fails strict spec validation (one enum default), so it is loaded without it
    config = Config(spec_validator_cls=None, extra_format_validators={"date-time": _jira_date_time},
                    security_provider_factory=_security_providers())
    return OpenAPI.from_dict(copy.deepcopy(document), config=config), document


JIRA_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def _jira_date_time(value) -> bool:
    """Jira documents its times as date-time but writes the offset without a colon (2026-11-25T20:15:03.123+0100),
    which strict RFC 3339 refuses; that is how the real service answers, so it counts as valid."""
    return not isinstance(value, str) or bool(JIRA_DATE_TIME.match(value))


def openapi(path: Path | str | None = None):
    with _build_lock:
        return _openapi(str(path or OPENAPI_FILE))


class _SpecRequest:
    """What openapi-core reads of a request (its Request protocol), with the path as the spec names it."""

    def __init__(self, method: str, api_path: str, query: str, headers, body: bytes, content_type: str):
        from openapi_core.datatypes import RequestParameters
        from urllib.parse import parse_qs
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = SPEC_SERVER
        self.path = api_path
        self.full_url_pattern = SPEC_SERVER + api_path
        self.method = method.lower()
        self.body = body or None
        self.content_type = content_type
        pairs = [(k, v) for k, values in parse_qs(query, keep_blank_values=True).items() for v in values]
        self.parameters = RequestParameters(query=ImmutableMultiDict(pairs), header=Headers(list(headers.items())),
                                            cookie=ImmutableMultiDict())


class _SpecResponse:
    def __init__(self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]]):
        from werkzeug.datastructures import Headers

        self.status_code = status
        self.data = body
        self.content_type = content_type
        self.headers = Headers(headers)


def _describe(exc: Exception, limit: int = 1000) -> str:
    """What openapi-core found, as the schema errors underneath say it (where in the document, what is wrong);
    without the whole offending value, which can be large."""
    cause: BaseException | None = exc
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            where = str(exc).split(":", 1)[0]
            found = "; ".join(f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                              for e in details)
            return f"{where}: {found}"[:limit]
        cause = cause.__cause__
    parts = [str(exc)] + ([str(exc.__cause__)] if exc.__cause__ is not None and str(exc.__cause__) else [])
    return " - ".join(parts)[:limit]


_TEMPLATES = sorted(((re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p)
                     for p in SERVED_PATHS), key=lambda pair: pair[1].count("{"))  # literal segments win


class JacksonReading:
    """A JSON request body as Jira's JSON binding (Jackson, with its default coercions) reads it, before it is held
    to the schema: a number where the schema has a string is taken as its text (`{"transition": {"id": 31}}`, as the
    `jira` package sends it), and `null` for a property that is not required counts as absent (the `jira` package's
    POST search sends `"expand": null`). Other coercions Jackson would make (a numeric string for an integer, "true"
    for a boolean) are not applied: no client is known to rely on them."""

    def __init__(self, document: dict):
        self.document = document

    def read(self, method: str, api_path: str, body: bytes) -> bytes:
        schema = self._body_schema(method, api_path)
        if schema is None or not body:
            return body
        try:
            value = json.loads(body)
        except ValueError:
            return body
        return json.dumps(self._coerce(value, schema, 0)).encode()

    def _body_schema(self, method: str, api_path: str) -> dict | None:
        template = next((t for pattern, t in _TEMPLATES if pattern.match(api_path)), None)
        operation = self.document["paths"].get(template, {}).get(method.lower()) if template else None
        content = ((operation or {}).get("requestBody") or {}).get("content", {})
        return (content.get("application/json") or {}).get("schema")

    def _resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            node = self.document
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part)
                merged.setdefault("properties", {}).update(part.get("properties", {}))
                merged["required"] = merged.get("required", []) + part.get("required", [])
                for key in ("type", "items", "additionalProperties"):
                    if key in part:
                        merged.setdefault(key, part[key])
            schema = merged
        return schema

    def _coerce(self, value, schema: dict, depth: int):
        schema = self._resolve(schema)
        if depth > 20:
            return value
        if isinstance(value, dict):
            declared, required = schema.get("properties", {}), set(schema.get("required", []))
            extra = schema.get("additionalProperties")
            read = {}
            for name, item in value.items():
                if name in declared:
                    if item is None and name not in required:
                        continue
                    read[name] = self._coerce(item, declared[name], depth + 1)
                elif isinstance(extra, dict) and extra:
                    read[name] = self._coerce(item, extra, depth + 1)
                else:
                    read[name] = item
            return read
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [self._coerce(item, schema["items"], depth + 1) for item in value]
        if schema.get("type") == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value


class SpecValidator:
    def __init__(self, path: Path | str | None = None):
        self.api, document = openapi(path)
        self.jackson = JacksonReading(document)

    def request_problem(self, method: str, api_path: str, query: str, headers, body: bytes) -> str | None:
        """Why the request violates the spec, or None."""
        from openapi_core.templating.paths.exceptions import PathNotFound, OperationNotFound
        from openapi_core.validation.request.exceptions import SecurityValidationError

        content_type = (headers.get("Content-Type") or "").split(";")[0].strip() or "application/json"
        if content_type == "application/json":
            body = self.jackson.read(method, api_path, body)
        request = _SpecRequest(method, api_path, query, headers, body, content_type)
        try:
            self.api.validate_request(request)
        except (PathNotFound, OperationNotFound) as exc:
            return str(exc)
        except SecurityValidationError:
            return None  # authentication is the stand-in's own check, done before this
        except Exception as exc:  # openapi-core raises several families; each is a violation
            return _describe(exc)
        return None

    def response_problem(self, method: str, api_path: str, query: str, headers, request_body: bytes,
                         status: int, body: bytes, content_type: str,
                         response_headers: list[tuple[str, str]]) -> str | None:
        """Why the response does not match what the spec documents for this operation and status; None when it
        does or when the spec documents nothing for that status."""
        from openapi_core.templating.responses.exceptions import ResponseNotFound
        from openapi_core.validation.response.exceptions import MissingData

        request = _SpecRequest(method, api_path, query, headers, request_body, "application/json")
        response = _SpecResponse(status, body, content_type, response_headers)
        try:
            self.api.validate_response(request, response)
        except ResponseNotFound:
            return None
        except MissingData:
            # the spec gives several 204s an application/json content; HTTP 204 has no body, and neither has Jira's
            return None if status == 204 and not body else "Missing response data"
        except Exception as exc:
            return _describe(exc)
        return None


class AdfValidator:
    def __init__(self, path: Path | str | None = None):
        schema = json.loads(Path(path or ADF_FILE).read_text())
        # The ADF schema nests anyOf over every node type: the pure-Python validator needs about half a second for a
        # description with a table, the compiled one well under a millisecond, with the same verdicts.
        self._validator = jsonschema_rs.Draft4Validator(schema)

    def is_document(self, value) -> bool:
        return isinstance(value, dict) and self._validator.is_valid(value)
