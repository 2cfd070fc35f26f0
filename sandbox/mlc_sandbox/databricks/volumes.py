"""Unity Catalog volumes: governed folders of files, addressed as /Volumes/<catalog>/<schema>/<volume>/<path>.

A volume lives in a schema (CREATE VOLUME needs the schema; DROP SCHEMA refuses a schema that holds one unless
CASCADE). Its files are real files on the local disk under `<data dir>/volumes/<catalog>/<schema>/<volume>/`; the
register of volumes (comment, when created, the privileges the workspace's principal holds on each) is
`<data dir>/volumes.json`, so both persist across runs like the catalogs.

What the Files API and SQL (read_files) may do is decided here, as Unity Catalog decides it (docs.databricks.com,
"Privileges for Unity Catalog volumes"): reading or listing files needs READ VOLUME; creating, replacing or deleting
files needs READ VOLUME and WRITE VOLUME. The stand-in has one principal, the owner of what it creates, so it holds
both until an arrangement (`POST /_admin/volumes/privileges`) takes some away.

Writes are atomic (a temporary file in `<data dir>/volumes-tmp`, then a rename): a reader sees the old content or the
new, never half a file, as with a PUT to cloud object storage.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

READ, WRITE = "READ VOLUME", "WRITE VOLUME"
PRIVILEGES = (READ, WRITE)
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
# Files whose names start so are hidden from file readers (Spark skips them; _SUCCESS, .crc, ...)
HIDDEN_PREFIXES = ("_", ".")


class VolumeProblem(Exception):
    """Why a volume operation cannot be carried out; the Files API and SQL each report it in their own words."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NoSuchVolume(VolumeProblem):
    def __init__(self, full_name: str):
        super().__init__(f"Volume {quoted(full_name)} does not exist.")
        self.full_name = full_name


class NoSuchSchema(VolumeProblem):
    def __init__(self, catalog: str, schema: str):
        super().__init__(f"The schema `{catalog}`.`{schema}` cannot be found.")
        self.catalog, self.schema = catalog, schema


class VolumeExists(VolumeProblem):
    def __init__(self, full_name: str):
        super().__init__(f"Cannot create volume {quoted(full_name)} because it already exists.")
        self.full_name = full_name


class NotPermitted(VolumeProblem):
    def __init__(self, missing: list[str], full_name: str):
        super().__init__(f"User does not have {' and '.join(missing)} on Volume '{full_name}'.")
        self.missing, self.full_name = missing, full_name


class NoSuchPath(VolumeProblem):
    def __init__(self, path: str, what: str = "file or directory"):
        super().__init__(f"The {what} {path} does not exist.")
        self.path = path


class PathTaken(VolumeProblem):
    """A file where a directory is wanted, or the other way round, or a file that may not be overwritten."""


class DirectoryNotEmpty(VolumeProblem):
    def __init__(self, path: str):
        super().__init__(f"The directory {path} is not empty.")
        self.path = path


class BadPath(VolumeProblem):
    """Not a path the Files API serves (the stand-in serves volumes only) or not a well-formed one."""


def glob_pattern(glob: str) -> re.Pattern:
    """A file glob as read_files takes it (Hadoop's): `*` and `?` within one folder name, `[abc]`, `[^a]`, `[a-z]`,
    `{ab,cd}`."""
    out, i = [], 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = glob.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                inner = glob[i + 1:end]
                out.append("[" + ("^" + re.escape(inner[1:]).replace("\\-", "-") if inner.startswith("^")
                                  else re.escape(inner).replace("\\-", "-")) + "]")
                i = end
        elif ch == "{":
            alternatives, end = _alternatives(glob, i)
            if end < 0:
                out.append(re.escape(ch))
            else:
                out.append("(?:" + "|".join(glob_pattern(a).pattern for a in alternatives) + ")")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))


def _alternatives(glob: str, start: int) -> tuple[list[str], int]:
    """The comma-separated alternatives of the {...} opening at `start` (nested ones kept whole), and where it
    closes (-1: it does not)."""
    depth, parts, current = 0, [], []
    for i in range(start + 1, len(glob)):
        ch = glob[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return [*parts, "".join(current)], i
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    return [], -1


def quoted(full_name: str) -> str:
    return ".".join(f"`{part}`" for part in full_name.split("."))


@dataclass
class Volume:
    catalog: str
    schema: str
    name: str
    comment: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time() * 1000))
    privileges: list[str] = field(default_factory=lambda: list(PRIVILEGES))  # what the principal holds

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"

    def require(self, *needed: str) -> None:
        missing = [p for p in needed if p not in self.privileges]
        if missing:
            raise NotPermitted(missing, self.full_name)


@dataclass(frozen=True)
class VolumePath:
    """/Volumes/<catalog>/<schema>/<volume>/<relative>, names folded to lower case as Unity Catalog folds them; the
    path inside the volume keeps its case."""

    catalog: str
    schema: str
    volume: str
    relative: str  # "" for the volume's root, else "dir/file" without leading or trailing slash

    @classmethod
    def parse(cls, path: str) -> "VolumePath":
        if not path.startswith("/Volumes/"):
            raise BadPath(f"The path {path} is not a Unity Catalog volume path (/Volumes/<catalog>/<schema>/<volume>/"
                          "...); the Databricks stand-in serves volumes only.")
        parts = path[len("/Volumes/"):].split("/")
        if len(parts) < 3 or not all(parts[:3]):
            raise BadPath(f"The path {path} does not name a volume: /Volumes/<catalog>/<schema>/<volume>/<path>.")
        inner = [p for p in parts[3:] if p != ""]
        if any(p in (".", "..") for p in inner):
            raise BadPath(f"The path {path} is not normalized: '.' and '..' are not allowed.")
        catalog, schema, volume = (p.lower() for p in parts[:3])
        return cls(catalog, schema, volume, "/".join(inner))

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.volume}"

    @property
    def absolute(self) -> str:
        return f"/Volumes/{self.catalog}/{self.schema}/{self.volume}" + (f"/{self.relative}" if self.relative else "")


@dataclass(frozen=True)
class Entry:
    """A file or directory as the Files API lists it."""

    path: str  # absolute; a directory's ends with "/"
    name: str
    is_directory: bool
    file_size: int | None = None
    last_modified: int | None = None  # milliseconds since the epoch

    def as_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Volumes:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "volumes"
        self.scratch = Path(data_dir) / "volumes-tmp"
        self.register_file = Path(data_dir) / "volumes.json"
        self.root.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}
        if self.register_file.exists():
            for item in json.loads(self.register_file.read_text()):
                volume = Volume(**item)
                self._volumes[volume.full_name] = volume

    # the register

    def _save(self) -> None:
        temporary = self.register_file.with_suffix(".tmp")
        temporary.write_text(json.dumps([asdict(v) for v in self._volumes.values()], indent=1))
        os.replace(temporary, self.register_file)

    def create(self, catalog: str, schema: str, name: str, *, schema_exists: bool, if_not_exists: bool = False,
               comment: str | None = None) -> Volume | None:
        catalog, schema, name = catalog.lower(), schema.lower(), name.lower()
        if not NAME.match(name):
            raise BadPath(f"`{name}` is not a valid name for a volume.")
        with self._lock:
            full_name = f"{catalog}.{schema}.{name}"
            if full_name in self._volumes:
                if if_not_exists:
                    return None
                raise VolumeExists(full_name)
            if not schema_exists:
                raise NoSuchSchema(catalog, schema)
            volume = Volume(catalog, schema, name, comment)
            self._volumes[full_name] = volume
            self._directory(volume).mkdir(parents=True, exist_ok=True)
            self._save()
            return volume

    def drop(self, full_name: str, *, if_exists: bool = False) -> bool:
        with self._lock:
            volume = self._volumes.pop(full_name.lower(), None)
            if volume is None:
                if if_exists:
                    return False
                raise NoSuchVolume(full_name.lower())
            self._remove_tree(self._directory(volume))
            self._save()
            return True

    def get(self, full_name: str) -> Volume:
        with self._lock:
            volume = self._volumes.get(full_name.lower())
        if volume is None:
            raise NoSuchVolume(full_name.lower())
        return volume

    def in_schema(self, catalog: str, schema: str) -> list[Volume]:
        with self._lock:
            return [v for v in self._volumes.values() if (v.catalog, v.schema) == (catalog.lower(), schema.lower())]

    def all(self) -> list[Volume]:
        with self._lock:
            return sorted(self._volumes.values(), key=lambda v: v.full_name)

    def set_privileges(self, full_name: str, privileges: list[str]) -> Volume:
        unknown = set(privileges) - set(PRIVILEGES)
        if unknown:
            raise ValueError(f"unknown volume privileges: {', '.join(sorted(unknown))} (known: {', '.join(PRIVILEGES)})")
        with self._lock:
            volume = self.get(full_name)
            volume.privileges = [p for p in PRIVILEGES if p in privileges]
            self._save()
            return volume

    # files

    def _directory(self, volume: Volume) -> Path:
        return self.root / volume.catalog / volume.schema / volume.name

    def _no_file_on_the_way(self, where: VolumePath, *, parents_only: bool) -> None:
        """A directory cannot be made (nor a file put) where a file stands for one of its folders."""
        parts = where.relative.split("/")
        local = self._directory(self.get(where.full_name))
        for depth, part in enumerate(parts[:-1] if parents_only else parts):
            local = local / part
            if local.is_file():
                taken = "/".join(parts[:depth + 1])
                raise PathTaken(f"The path {where.absolute} cannot be created: {taken} is a file in volume "
                                f"{where.full_name}.")

    def _local(self, where: VolumePath, *needed: str) -> tuple[Volume, Path]:
        volume = self.get(where.full_name)
        volume.require(*needed)
        return volume, self._directory(volume) / where.relative if where.relative else self._directory(volume)

    def upload(self, path: str, content: bytes, *, overwrite: bool = True) -> None:
        where = VolumePath.parse(path)
        if not where.relative:
            raise PathTaken(f"The path {where.absolute} is the root of a volume, not a file.")
        with self._lock:
            volume, local = self._local(where, READ, WRITE)
            self._no_file_on_the_way(where, parents_only=True)
            if local.is_dir():
                raise PathTaken(f"The path {where.absolute} is a directory, not a file.")
            if local.exists() and not overwrite:
                raise PathTaken(f"The file {where.absolute} already exists.")
            local.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.scratch / f"upload-{uuid.uuid4().hex}"
        temporary.write_bytes(content)  # written outside the lock: a large upload holds nobody else up
        with self._lock:
            if not self._directory(volume).exists() or where.full_name not in self._volumes:
                temporary.unlink(missing_ok=True)
                raise NoSuchVolume(where.full_name)  # dropped meanwhile
            local.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, local)

    def read(self, path: str) -> tuple[bytes, Entry]:
        where = VolumePath.parse(path)
        _, local = self._local(where, READ)
        if not local.is_file():
            raise NoSuchPath(where.absolute, "file")
        try:
            content = local.read_bytes()
        except FileNotFoundError:  # deleted meanwhile
            raise NoSuchPath(where.absolute, "file") from None
        return content, self._entry(where.absolute, local)

    def file_metadata(self, path: str) -> Entry:
        where = VolumePath.parse(path)
        _, local = self._local(where, READ)
        if not local.is_file():
            raise NoSuchPath(where.absolute, "file")
        return self._entry(where.absolute, local)

    def delete_file(self, path: str) -> None:
        where = VolumePath.parse(path)
        with self._lock:
            _, local = self._local(where, READ, WRITE)
            if not local.is_file():
                raise NoSuchPath(where.absolute, "file")
            local.unlink()

    def make_directory(self, path: str) -> None:
        """mkdir -p; succeeds when the directory is there already."""
        where = VolumePath.parse(path)
        with self._lock:
            _, local = self._local(where, READ, WRITE)
            self._no_file_on_the_way(where, parents_only=False)
            local.mkdir(parents=True, exist_ok=True)

    def directory_exists(self, path: str) -> None:
        self._existing_directory(VolumePath.parse(path))

    def _existing_directory(self, where: VolumePath) -> Path:
        _, local = self._local(where, READ)
        if not local.is_dir():
            raise NoSuchPath(where.absolute, "directory")
        if not where.relative and not any(local.iterdir()):
            # Workspaces answer 404 for the root of a volume that holds nothing (databricks/cli#5834): a client
            # cannot learn from HEAD or a listing whether an empty volume exists
            raise NoSuchPath(where.absolute, "directory")
        return local

    def list_directory(self, path: str) -> list[Entry]:
        """The directory's immediate entries, sorted by name."""
        where = VolumePath.parse(path)
        local = self._existing_directory(where)
        base = where.absolute.rstrip("/")
        entries = []
        for child in sorted(local.iterdir(), key=lambda p: p.name):
            try:
                entries.append(self._entry(f"{base}/{child.name}", child))
            except FileNotFoundError:  # deleted meanwhile
                continue
        return entries

    def delete_directory(self, path: str) -> None:
        where = VolumePath.parse(path)
        if not where.relative:
            raise BadPath(f"The path {where.absolute} is the root of a volume; drop the volume (DROP VOLUME) instead.")
        with self._lock:
            _, local = self._local(where, READ, WRITE)
            if not local.is_dir():
                raise NoSuchPath(where.absolute, "directory")
            if any(local.iterdir()):
                raise DirectoryNotEmpty(where.absolute)
            local.rmdir()

    def files_under(self, path: str) -> list[tuple[str, Path]]:
        """For readers (read_files): (absolute path, local file) of every file at or under `path`, recursively and
        sorted, hidden files left out; a glob in the path (*, ?, [...]) filters the files it matches."""
        if any(ch in path for ch in "*?[{"):
            return self._glob(path)
        where = VolumePath.parse(path)
        _, local = self._local(where, READ)
        if local.is_file():
            return [(where.absolute, local)]
        if not local.is_dir():
            raise NoSuchPath(where.absolute)
        found = []
        for child in sorted(local.rglob("*")):
            relative = child.relative_to(local)
            if child.is_file() and not any(part.startswith(HIDDEN_PREFIXES) for part in relative.parts):
                found.append((f"{where.absolute.rstrip('/')}/{relative.as_posix()}", child))
        return found

    def _glob(self, path: str) -> list[tuple[str, Path]]:
        fixed = re.split(r"[*?\[{]", path, maxsplit=1)[0]
        where = VolumePath.parse(fixed.rsplit("/", 1)[0] if not fixed.endswith("/") else fixed)
        _, local = self._local(where, READ)
        if not local.is_dir():
            raise NoSuchPath(where.absolute)
        pattern = glob_pattern(VolumePath.parse(path).absolute)
        found = []
        for child in sorted(local.rglob("*")):
            absolute = f"{where.absolute.rstrip('/')}/{child.relative_to(local).as_posix()}"
            if child.is_file() and pattern.fullmatch(absolute) and not child.name.startswith(HIDDEN_PREFIXES):
                found.append((absolute, child))
        return found

    def files_of(self, volume: Volume) -> list[dict]:
        """Every file of a volume with its size (for the admin interface)."""
        directory = self._directory(volume)
        return [{"path": f"/Volumes/{volume.catalog}/{volume.schema}/{volume.name}/{p.relative_to(directory).as_posix()}",
                 "size": p.stat().st_size}
                for p in sorted(directory.rglob("*")) if p.is_file()]

    @staticmethod
    def _entry(absolute: str, local: Path) -> Entry:
        stat = local.stat()
        name = absolute.rstrip("/").rsplit("/", 1)[-1]
        if local.is_dir():
            return Entry(absolute.rstrip("/") + "/", name, True)
        return Entry(absolute, name, False, stat.st_size, int(stat.st_mtime * 1000))

    @staticmethod
    def _remove_tree(directory: Path) -> None:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
