"""The Files API 2.0 on Unity Catalog volumes (docs.databricks.com/api/workspace/files), as workspaces answer it.

- `PUT /api/2.0/fs/files{path}?overwrite=`: the body, raw bytes, becomes the file (parent directories are created);
  204 without a body. `overwrite` true or left out replaces a file; false answers 409 ALREADY_EXISTS when one is
  there.
- `GET /api/2.0/fs/files{path}`: the bytes (`Range: bytes=a-b` for a part, 206), `HEAD`: the same headers without
  them (`Content-Length`, `Content-Type`, `Last-Modified`); `DELETE`: 204.
- `PUT /api/2.0/fs/directories{path}`: mkdir -p, idempotent; `HEAD`: 200 when it is there; `GET`: its entries
  `{"contents": [{path, name, is_directory, file_size, last_modified}], "next_page_token"}` (at most `page_size`,
  1000, per page); `DELETE`: only an empty one (400 with the reason FILES_API_DIRECTORY_IS_NOT_EMPTY).

Errors come in the APIs' shape `{"error_code", "message"}`: 404 NOT_FOUND for a missing volume, file or directory
(also for the root of an empty volume, as workspaces answer it), 403 PERMISSION_DENIED without READ VOLUME (reading,
listing) or WRITE VOLUME (anything that changes files), 409 ALREADY_EXISTS where a file or directory is in the way,
400 INVALID_PARAMETER_VALUE for a path that is not a volume path. Paths arrive percent-encoded, one segment at a time.
"""

from __future__ import annotations

import base64
import email.utils
import re
from urllib.parse import unquote

from ..http import Request, Response
from .responses import ApiError, invalid, ok
from .volumes import (BadPath, DirectoryNotEmpty, Entry, NoSuchPath, NoSuchSchema, NoSuchVolume, NotPermitted,
                      PathTaken, VolumeProblem, Volumes)

FILES = "/api/2.0/fs/files"
DIRECTORIES = "/api/2.0/fs/directories"
MAX_PAGE_SIZE = 1000
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def serves(path: str) -> bool:
    return path.startswith((FILES + "/", DIRECTORIES + "/"))


def handle(volumes: Volumes, request: Request, query: dict) -> Response:
    method = request.method
    if request.path.startswith(FILES + "/"):
        path = unquote(request.path[len(FILES):])
        actions = {"PUT": _upload, "GET": _download, "HEAD": _metadata, "DELETE": _delete_file}
    else:
        path = unquote(request.path[len(DIRECTORIES):])
        actions = {"PUT": _make_directory, "GET": _list, "HEAD": _directory_metadata, "DELETE": _delete_directory}
    action = actions.get(method)
    if action is None:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed on {request.path}")
    try:
        return action(volumes, path, request, query)
    except VolumeProblem as problem:
        raise _api_error(problem) from None


def _api_error(problem: VolumeProblem) -> ApiError:
    if isinstance(problem, NotPermitted):
        return ApiError(403, "PERMISSION_DENIED", problem.message)
    if isinstance(problem, (NoSuchVolume, NoSuchPath, NoSuchSchema)):
        return ApiError(404, "NOT_FOUND", problem.message)
    if isinstance(problem, PathTaken):
        return ApiError(409, "ALREADY_EXISTS", problem.message)
    if isinstance(problem, DirectoryNotEmpty):
        return ApiError(400, "INVALID_PARAMETER_VALUE", problem.message, details=[
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FILES_API_DIRECTORY_IS_NOT_EMPTY",
             "domain": "filesystem.databricks.com"}])
    if isinstance(problem, BadPath):
        return invalid(problem.message)
    return ApiError(400, "BAD_REQUEST", problem.message)  # pragma: no cover - every problem is named above


def _no_content() -> Response:
    return Response(204, b"")


def _upload(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    overwrite = str(query.get("overwrite", "true")).lower()
    if overwrite not in ("true", "false"):
        raise invalid(f"overwrite must be true or false, not '{query.get('overwrite')}'")
    volumes.upload(path, request.body, overwrite=overwrite == "true")
    return _no_content()


def _file_headers(entry: Entry) -> list[tuple[str, str]]:
    return [("Last-Modified", email.utils.formatdate(entry.last_modified / 1000, usegmt=True))]


def _download(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    content, entry = volumes.read(path)
    wanted = request.headers.get("Range")
    if not wanted:
        return Response(200, content, "application/octet-stream", headers=_file_headers(entry))
    match = RANGE.match(wanted.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ApiError(416, "INVALID_PARAMETER_VALUE", f"Unsupported Range header: {wanted}")
    size = len(content)
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(match.group(2))), size - 1
    if start >= size or start > end:
        raise ApiError(416, "INVALID_PARAMETER_VALUE", f"Range {wanted} is outside the file's {size} bytes")
    return Response(206, content[start:end + 1], "application/octet-stream",
                    headers=[*_file_headers(entry), ("Content-Range", f"bytes {start}-{end}/{size}")])


def _metadata(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    entry = volumes.file_metadata(path)
    return Response(200, b"", "application/octet-stream", headers=_file_headers(entry),
                    content_length=entry.file_size)


def _delete_file(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    volumes.delete_file(path)
    return _no_content()


def _make_directory(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    volumes.make_directory(path)
    return _no_content()


def _directory_metadata(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    volumes.directory_exists(path)
    return Response(200, b"")


def _list(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    try:
        page_size = min(int(query.get("page_size") or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
    except ValueError:
        raise invalid(f"page_size must be a number, not '{query.get('page_size')}'") from None
    if page_size < 1:
        raise invalid("page_size must be positive")
    after = _page_token_name(query.get("page_token"))
    entries = [e for e in volumes.list_directory(path) if after is None or e.name > after]
    page = entries[:page_size]
    document: dict = {"contents": [e.as_json() for e in page]}
    if len(entries) > page_size:
        document["next_page_token"] = base64.urlsafe_b64encode(page[-1].name.encode()).decode()
    return ok(document)


def _page_token_name(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"Invalid page_token '{token}'") from None


def _delete_directory(volumes: Volumes, path: str, request: Request, query: dict) -> Response:
    volumes.delete_directory(path)
    return _no_content()

