"""JSON answers in the shapes each service uses: Logic Apps (Workflows webhooks), Microsoft Graph and Entra ID."""

from __future__ import annotations

import json
import time
import uuid

from ..http import Response

GRAPH_WWW_AUTHENTICATE = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                          'authorize", client_id="00000003-0000-0000-c000-000000000000"')


def to_json(document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def utc_now(epoch: float | None = None) -> str:
    """2024-05-01T10:00:00.123Z, as Graph and Logic Apps write times."""
    epoch = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def logic_apps_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None,
                     **extra) -> Response:
    """`{"error": {"code", "message"}}`, as a Logic Apps (Workflows) trigger endpoint fails."""
    return Response(status, to_json({"error": {"code": code, "message": message, **extra}}),
                    headers=[("x-ms-failure-cause", "trigger"), *(headers or [])])


def graph_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None,
                **extra) -> Response:
    """`{"error": {"code", "message", "innerError": {...}}}`, as Microsoft Graph fails."""
    request_id = str(uuid.uuid4())
    document = {"error": {"code": code, "message": message, **extra,
                          "innerError": {"date": utc_now()[:19], "request-id": request_id,
                                         "client-request-id": request_id}}}
    return Response(status, to_json(document), headers=[("request-id", request_id), *(headers or [])])


def aad_error(status: int, error: str, code: int, description: str) -> Response:
    """The token endpoint's OAuth error: error, error_description starting with the AADSTS code, error_codes."""
    trace = str(uuid.uuid4())
    return Response(status, to_json({
        "error": error, "error_description": f"AADSTS{code}: {description} Trace ID: {trace} "
                                             f"Correlation ID: {trace} Timestamp: {utc_now()[:19].replace('T', ' ')}Z",
        "error_codes": [code], "timestamp": utc_now()[:19].replace("T", " ") + "Z", "trace_id": trace,
        "correlation_id": trace, "error_uri": f"https://login.microsoftonline.com/error?code={code}"}))


class Refused(Exception):
    """Raised by an endpoint to refuse a request; the app answers in the service's own error shape and records it
    in /_admin/rejections."""

    def __init__(self, status: int, code: str, message: str, *, path: str | None = None,
                 problems: list[dict] | None = None, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.path, self.problems, self.headers = path, problems or [], headers or []

    @classmethod
    def invalid(cls, status: int, problems: list[dict], default_code: str, code: str | None = None) -> "Refused":
        """A content refusal naming the first problem's path in its message; every problem goes in the details.
        The error code is `code` when given (Graph says BadRequest for all), else the first problem's."""
        first = problems[0]
        more = f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} in details)" \
            if len(problems) > 1 else ""
        return cls(status, code or first.get("code") or default_code, f"{first['path']}: {first['message']}{more}",
                   path=first["path"], problems=problems)
