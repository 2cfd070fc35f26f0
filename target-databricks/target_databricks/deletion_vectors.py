"""Delta deletion vectors: which rows of a data file are deleted, kept beside the file instead of rewriting it.

A change to one row of a ten-thousand-row file then costs the changed row (written again in a new file) and a few
bytes of bitmap, not the file: that is what makes changes spread over a large table as cheap as changes into a small
one. delta-rs reads deletion vectors but writes none (delta-io/delta-rs#4512), and its commit API carries none, so
this module writes them as the Delta protocol defines them (PROTOCOL.md, "Deletion Vectors"): a RoaringBitmapArray in
its portable serialization, stored in a ``deletion_vector_<uuid>.bin`` file beside the data, and named in the add
action by a descriptor. What it writes, delta-rs's scan and DuckDB's delta extension (two readers that are not ours)
read back in the tests.

Z85 (the descriptor's encoding of a file's UUID and of inline vectors) is not in the standard library before Python
3.13; its twenty lines are here rather than a dependency on a messaging library.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from pyroaring import BitMap64

#: The magic number before a RoaringBitmapArray in Delta's portable format.
_MAGIC = 1681511377
_FILE_FORMAT_VERSION = 1
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUES = {c: i for i, c in enumerate(_Z85)}


class DeletionVectorError(ValueError):
    """A deletion vector that cannot be read as the protocol defines it (the message names the file)."""


def z85_encode(data: bytes) -> str:
    if len(data) % 4:
        raise ValueError("Z85 encodes whole 4-byte words")
    out = []
    for start in range(0, len(data), 4):
        number = int.from_bytes(data[start:start + 4], "big")
        word = []
        for _ in range(5):
            number, digit = divmod(number, 85)
            word.append(_Z85[digit])
        out.extend(reversed(word))
    return "".join(out)


def z85_decode(text: str) -> bytes:
    if len(text) % 5:
        raise ValueError("Z85 decodes whole 5-character words")
    out = bytearray()
    for start in range(0, len(text), 5):
        number = 0
        for character in text[start:start + 5]:
            number = number * 85 + _Z85_VALUES[character]
        out += number.to_bytes(4, "big")
    return bytes(out)


def serialize(deleted: BitMap64) -> bytes:
    """The RoaringBitmapArray in Delta's portable format: the magic number, then the 64-bit bitmap as CRoaring's
    portable 64-bit serialization lays it out (number of 32-bit buckets, then each bucket's key and bitmap)."""
    return struct.pack("<i", _MAGIC) + deleted.serialize()


def deserialize(data: bytes, where: str) -> BitMap64:
    if len(data) < 4 or struct.unpack_from("<i", data)[0] != _MAGIC:
        raise DeletionVectorError(f"the deletion vector of {where} is not in Delta's portable bitmap format")
    return BitMap64.deserialize(data[4:])


@dataclass(frozen=True)
class DeletionVector:
    """A deletion vector descriptor, as an add or remove action names it."""

    storage_type: str  # "u": a file beside the data, named by UUID; "p": an absolute path; "i": inline
    path_or_inline: str
    offset: int | None
    size: int
    cardinality: int

    @classmethod
    def from_action(cls, descriptor: dict[str, Any] | None) -> DeletionVector | None:
        if not descriptor:
            return None
        return cls(descriptor["storageType"], descriptor["pathOrInlineDv"], descriptor.get("offset"),
                   int(descriptor["sizeInBytes"]), int(descriptor["cardinality"]))

    def action(self) -> dict[str, Any]:
        described = {"storageType": self.storage_type, "pathOrInlineDv": self.path_or_inline,
                     "sizeInBytes": self.size, "cardinality": self.cardinality}
        if self.offset is not None:
            described["offset"] = self.offset
        return described

    @property
    def unique_id(self) -> str:
        """What tells this file's version apart from the same file with another vector (log reconciliation)."""
        base = self.storage_type + self.path_or_inline
        return base if self.offset is None else f"{base}@{self.offset}"

    def relative_path(self) -> str:
        """The vector file's path relative to the table's folder (storage type "u")."""
        prefix, encoded = self.path_or_inline[:-20], self.path_or_inline[-20:]
        name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(encoded))}.bin"
        return f"{prefix}/{name}" if prefix else name

    def read(self, fs: pafs.FileSystem, data_file: str) -> BitMap64:
        """The deleted rows' positions; ``fs`` is rooted at the table's folder."""
        where = f"data file {data_file}"
        if self.storage_type == "i":
            return deserialize(z85_decode(self.path_or_inline)[:self.size], where)
        if self.storage_type == "u":
            path, stored = self.relative_path(), fs
        elif self.storage_type == "p":
            stored, path = pafs.FileSystem.from_uri(self.path_or_inline)
        else:
            raise DeletionVectorError(f"the deletion vector of {where} has an unknown storage type {self.storage_type!r}")
        with stored.open_input_file(path) as source:
            source.seek(self.offset or 0)
            header = source.read(4)
            if len(header) < 4 or struct.unpack(">i", header)[0] != self.size:
                raise DeletionVectorError(f"the deletion vector of {where} ({path}) does not hold the size its "
                                          "descriptor gives")
            data = source.read(self.size)
            checksum = source.read(4)
        if len(data) != self.size or len(checksum) < 4 or struct.unpack(">I", checksum)[0] != zlib.crc32(data):
            raise DeletionVectorError(f"the deletion vector of {where} ({path}) fails its checksum")
        deleted = deserialize(data, where)
        if len(deleted) != self.cardinality:
            raise DeletionVectorError(f"the deletion vector of {where} holds {len(deleted)} rows, its descriptor "
                                      f"says {self.cardinality}")
        return deleted


def write_vectors(fs: pafs.FileSystem, vectors: Iterable[BitMap64]) -> tuple[str, list[DeletionVector]]:
    """The vectors in one new file beside the data (the protocol's format: a version byte, then for each vector its
    size, its bytes and their CRC-32); returns the file's path and a descriptor of each vector, in order."""
    file_id = uuid.uuid4()
    path = f"deletion_vector_{file_id}.bin"
    encoded_id = z85_encode(file_id.bytes)
    descriptors = []
    with fs.open_output_stream(path) as sink:
        sink.write(bytes([_FILE_FORMAT_VERSION]))
        offset = 1
        for deleted in vectors:
            data = serialize(deleted)
            sink.write(struct.pack(">i", len(data)) + data + struct.pack(">I", zlib.crc32(data)))
            descriptors.append(DeletionVector("u", encoded_id, offset, len(data), len(deleted)))
            offset += 8 + len(data)
    return path, descriptors


def keep_mask(deleted: BitMap64 | None, start: int, rows: int) -> pa.Array | None:
    """For rows ``start`` .. ``start + rows - 1`` of a file, True where the row is not deleted; None when none is."""
    if not deleted or rows == 0:
        return None
    window = deleted & BitMap64(range(start, start + rows))
    if not window:
        return None
    keep = [True] * rows
    for position in window:
        keep[position - start] = False
    return pa.array(keep, pa.bool_())
