"""The Files API of the Databricks stand-in on Unity Catalog volumes, through databricks-sdk's FilesAPI and plain HTTP:
uploads, downloads, metadata, directories, the errors and privileges of volumes, and faults on file requests."""

from __future__ import annotations

import email.utils
import io
import time

import pytest
import requests
from databricks.sdk.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied

from mlc_sandbox.databricks import DatabricksSandbox, DatabricksSandboxProcess

VOLUME = "main.staging.landing"
ROOT = "/Volumes/main/staging/landing"
FILES = "/api/2.0/fs/files"
DIRECTORIES = "/api/2.0/fs/directories"


@pytest.fixture
def landing(databricks):
    assert databricks.create_volume(VOLUME) is True
    assert databricks.create_volume(VOLUME) is False  # there already
    return databricks


def call(dbx, method: str, path: str, **options) -> requests.Response:
    return requests.request(method, dbx.base_url + path, headers={"Authorization": f"Bearer {dbx.token}",
                                                                  **options.pop("headers", {})}, **options)


def test_upload_download_and_metadata_round_trip_every_byte(landing, workspace):
    content = bytes(range(256)) * 1000
    workspace.files.upload(f"{ROOT}/in/2026/batch.bin", io.BytesIO(content))  # parent folders made on the way
    downloaded = workspace.files.download(f"{ROOT}/in/2026/batch.bin")
    assert downloaded.contents.read() == content and downloaded.content_length == len(content)
    metadata = workspace.files.get_metadata(f"{ROOT}/in/2026/batch.bin")
    assert (metadata.content_length, metadata.content_type) == (len(content), "application/octet-stream")
    modified = email.utils.parsedate_to_datetime(metadata.last_modified)
    assert abs(modified.timestamp() - time.time()) < 600

    workspace.files.upload(f"{ROOT}/in/2026/batch.bin", io.BytesIO(b"second"), overwrite=True)
    assert workspace.files.download(f"{ROOT}/in/2026/batch.bin").contents.read() == b"second"
    with pytest.raises(AlreadyExists, match="already exists"):
        workspace.files.upload(f"{ROOT}/in/2026/batch.bin", io.BytesIO(b"third"), overwrite=False)
    left_out = call(landing, "PUT", f"{FILES}{ROOT}/in/2026/batch.bin", data=b"fourth")  # overwrite unspecified
    assert (left_out.status_code, left_out.content) == (204, b"")
    assert workspace.files.download(f"{ROOT}/in/2026/batch.bin").contents.read() == b"fourth"

    part = call(landing, "GET", f"{FILES}{ROOT}/in/2026/batch.bin", headers={"Range": "bytes=1-3"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"our", "bytes 1-3/6")
    head = call(landing, "HEAD", f"{FILES}{ROOT}/in/2026/batch.bin")
    assert head.status_code == 200 and head.headers["Content-Length"] == "6" and head.content == b""

    workspace.files.delete(f"{ROOT}/in/2026/batch.bin")
    with pytest.raises(NotFound):
        workspace.files.get_metadata(f"{ROOT}/in/2026/batch.bin")
    with pytest.raises(NotFound):
        workspace.files.delete(f"{ROOT}/in/2026/batch.bin")
    assert landing.volume_files(VOLUME) == []


def test_a_streamed_upload_of_unknown_length_arrives_whole(landing):
    chunks = [b"a" * 70_000, b"b" * 3, b"c" * 100_000]
    sent = call(landing, "PUT", f"{FILES}{ROOT}/streamed.bin", data=iter(chunks))  # Transfer-Encoding: chunked
    assert sent.status_code == 204
    assert call(landing, "GET", f"{FILES}{ROOT}/streamed.bin").content == b"".join(chunks)


def test_directories_are_made_listed_in_pages_and_removed_only_when_empty(landing, workspace):
    empty_root = call(landing, "HEAD", f"{DIRECTORIES}{ROOT}")
    assert empty_root.status_code == 404  # the root of an empty volume answers 404, as workspaces answer it
    assert call(landing, "GET", f"{DIRECTORIES}{ROOT}").json()["error_code"] == "NOT_FOUND"

    workspace.files.create_directory(f"{ROOT}/a/b/c")
    workspace.files.create_directory(f"{ROOT}/a/b/c")  # idempotent
    for name in ("x.parquet", "y.parquet", "z.parquet"):
        workspace.files.upload(f"{ROOT}/a/{name}", io.BytesIO(name.encode()))
    workspace.files.get_directory_metadata(ROOT)  # no longer empty
    listed = list(workspace.files.list_directory_contents(f"{ROOT}/a"))
    assert [(e.name, e.path, e.is_directory, e.file_size) for e in listed] == [
        ("b", f"{ROOT}/a/b/", True, None), ("x.parquet", f"{ROOT}/a/x.parquet", False, 9),
        ("y.parquet", f"{ROOT}/a/y.parquet", False, 9), ("z.parquet", f"{ROOT}/a/z.parquet", False, 9)]
    assert all(abs(e.last_modified / 1000 - time.time()) < 600 for e in listed if not e.is_directory)

    first = call(landing, "GET", f"{DIRECTORIES}{ROOT}/a", params={"page_size": 3}).json()
    assert [e["name"] for e in first["contents"]] == ["b", "x.parquet", "y.parquet"] and first["next_page_token"]
    rest = call(landing, "GET", f"{DIRECTORIES}{ROOT}/a",
                params={"page_size": 3, "page_token": first["next_page_token"]}).json()
    assert [e["name"] for e in rest["contents"]] == ["z.parquet"] and "next_page_token" not in rest

    refused = call(landing, "DELETE", f"{DIRECTORIES}{ROOT}/a/b")
    assert refused.status_code == 400
    assert refused.json()["details"][0]["reason"] == "FILES_API_DIRECTORY_IS_NOT_EMPTY"
    with pytest.raises(InvalidParameterValue, match="not empty"):
        workspace.files.delete_directory(f"{ROOT}/a/b")
    workspace.files.delete_directory(f"{ROOT}/a/b/c")
    workspace.files.delete_directory(f"{ROOT}/a/b")
    with pytest.raises(NotFound):
        workspace.files.get_directory_metadata(f"{ROOT}/a/b")


def test_what_cannot_be_done_is_refused_as_workspaces_refuse_it(landing, workspace):
    with pytest.raises(NotFound, match="Volume `main`.`staging`.`nope` does not exist"):
        workspace.files.upload("/Volumes/main/staging/nope/f.bin", io.BytesIO(b"x"))
    with pytest.raises(InvalidParameterValue, match="not a Unity Catalog volume path"):
        workspace.files.upload("/Workspace/Users/me/f.bin", io.BytesIO(b"x"))
    workspace.files.upload(f"{ROOT}/file", io.BytesIO(b"x"))
    with pytest.raises(AlreadyExists, match="file is a file"):
        workspace.files.upload(f"{ROOT}/file/below", io.BytesIO(b"x"))
    with pytest.raises(AlreadyExists):
        workspace.files.create_directory(f"{ROOT}/file")
    workspace.files.create_directory(f"{ROOT}/dir")
    with pytest.raises(AlreadyExists, match="is a directory"):
        workspace.files.upload(f"{ROOT}/dir", io.BytesIO(b"x"))
    with pytest.raises(NotFound):
        list(workspace.files.list_directory_contents(f"{ROOT}/file"))  # a file, not a directory
    assert call(landing, "DELETE", f"{DIRECTORIES}{ROOT}").status_code == 400  # the root goes with DROP VOLUME


def test_reading_needs_read_volume_and_changing_files_needs_write_volume_too(landing, workspace):
    workspace.files.upload(f"{ROOT}/kept.bin", io.BytesIO(b"kept"))
    landing.grant_volume(VOLUME, "READ VOLUME")
    assert workspace.files.download(f"{ROOT}/kept.bin").contents.read() == b"kept"
    assert [e.name for e in workspace.files.list_directory_contents(ROOT)] == ["kept.bin"]
    for change in (lambda: workspace.files.upload(f"{ROOT}/new.bin", io.BytesIO(b"x")),
                   lambda: workspace.files.delete(f"{ROOT}/kept.bin"),
                   lambda: workspace.files.create_directory(f"{ROOT}/d")):
        with pytest.raises(PermissionDenied, match="User does not have WRITE VOLUME on Volume 'main.staging.landing'"):
            change()
    landing.grant_volume(VOLUME, "WRITE VOLUME")
    with pytest.raises(PermissionDenied, match="User does not have READ VOLUME"):
        workspace.files.download(f"{ROOT}/kept.bin")
    with pytest.raises(PermissionDenied, match="User does not have READ VOLUME"):
        workspace.files.upload(f"{ROOT}/new.bin", io.BytesIO(b"x"))  # creating files needs both
    refused = call(landing, "PUT", f"{FILES}{ROOT}/new.bin", data=b"x")
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert landing.volume_files(VOLUME) == [f"{ROOT}/kept.bin"]


def test_faults_hit_file_requests_as_any_other(landing):
    landing.add_fault("drop_response", path_contains=FILES, method="PUT")  # uploaded, then the answer is lost
    with pytest.raises(requests.ConnectionError):
        call(landing, "PUT", f"{FILES}{ROOT}/lost-answer.bin", data=b"there")
    assert landing.volume_files(VOLUME) == [f"{ROOT}/lost-answer.bin"]
    landing.add_fault("status", status=503, path_contains=FILES, method="PUT")  # refused: nothing written
    assert call(landing, "PUT", f"{FILES}{ROOT}/refused.bin", data=b"x").status_code == 503
    landing.add_fault("drop", path_contains=FILES)  # closed before it was carried out
    with pytest.raises(requests.ConnectionError):
        call(landing, "DELETE", f"{FILES}{ROOT}/lost-answer.bin")
    assert landing.volume_files(VOLUME) == [f"{ROOT}/lost-answer.bin"]
    assert [r["fault"] for r in landing.requests() if r["path"].startswith(FILES)] == ["drop_response", "status", "drop"]

    landing.fault_rates(rate_limit=1.0)
    assert call(landing, "GET", f"{FILES}{ROOT}/lost-answer.bin").status_code == 429
    landing.fault_rates(rate_limit=0.0)
    traffic = landing.traffic()["by_kind"]["files"]
    assert traffic["requests"] == 4 and traffic["bytes"] == len(b"there") + len(b"x")


def test_volumes_and_their_files_persist_in_the_data_dir(tmp_path):
    with DatabricksSandbox(data_dir=tmp_path, volumes=(VOLUME,)) as dbx:
        requests.put(f"{dbx.base_url}{FILES}{ROOT}/kept.bin", data=b"kept",
                     headers={"Authorization": f"Bearer {dbx.token}"}).raise_for_status()
        dbx.grant_volume(VOLUME, "READ VOLUME")
    with DatabricksSandboxProcess(data_dir=tmp_path) as dbx:
        volume = dbx.volumes()[0]
        assert (volume["full_name"], volume["privileges"]) == (VOLUME, ["READ VOLUME"])
        assert call(dbx, "GET", f"{FILES}{ROOT}/kept.bin").content == b"kept"
    with DatabricksSandboxProcess(data_dir=tmp_path / "other", volume="main.raw.files") as dbx:  # --volume
        assert [v["full_name"] for v in dbx.volumes()] == ["main.raw.files"]
