"""JSON answers in the shapes Databricks REST APIs use, errors included."""

from __future__ import annotations

import json

from ..http import Response


def to_json(document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def ok(document) -> Response:
    return Response(200, to_json(document))


def api_error(status: int, error_code: str | int, message: str,
              headers: list[tuple[str, str]] | None = None, details: list[dict] | None = None) -> Response:
    """`{"error_code", "message"}`, the body every Databricks REST API fails with.

    The authentication layer answers with the numeric status as error_code (`{"error_code": 403, ...}`) and an
    X-Databricks-Reason-Phrase header, exactly as workspaces do; the APIs behind it use symbolic codes.
    """
    document = {"error_code": error_code, "message": message}
    if details:
        document["details"] = details  # google.rpc error details, e.g. an ErrorInfo with the precise reason
    return Response(status, to_json(document), headers=list(headers or []))


class ApiError(Exception):
    """Raised anywhere below the router to answer with a Databricks error."""

    def __init__(self, status: int, error_code: str, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.status, self.error_code, self.message, self.details = status, error_code, message, details

    def response(self) -> Response:
        return api_error(self.status, self.error_code, self.message, details=self.details)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)
