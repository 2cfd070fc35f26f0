"""The compact form of audit entries: the entries of one batch and stream as one row of ``audit_blocks``, column by
column, compressed.

A block keeps, per entry: its id, key, version, operation, attempts, error (a note for entries that wrote nothing),
destination (once when the whole block has one), when it was written (an offset from the block's time) and whether it
has a payload or a source. The run, stream and times are columns of the block's row, written once.

Payloads and sources (what was sent, the record as received) are kept apart from the entries, in the block's
``documents``: a retention setting can drop them and leave the entries whole. They are stored by top-level field:
all the values of ``OrderNo``, then all of ``Company``, ... so that the compressor sees like beside like (a batch of
invoices compresses about 14 times). Each value is kept as the exact JSON text it was encoded to, so an entry's
payload is put back together byte for byte: the same text the row form stored (``StoredEntry.payload_json``).

The key hashes of a block (CRC-32 of each entry's canonical key, sorted) let a lookup by key skip every block that
cannot hold the key, without an index row per entry.
"""

from __future__ import annotations

import itertools
import struct
import sys
import zlib
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

#: Entries in one block at most: larger blocks compress a little better, smaller ones are quicker to open for one
#: entry (``mlc-audit show``) and bound what a reader holds in memory.
BLOCK_ENTRIES = 5_000
#: Payloads are compressed in frames of this many entries: reading one payload decompresses one frame (about a
#: megabyte of IFS rows, 2 ms), at 7% more bytes than one frame for the whole block.
FRAME_ENTRIES = 1_000
#: Decoded frames a block keeps while it is read.
_DECODED_FRAMES = 2
#: zlib's level: 6 compresses IFS rows 14 times at about 35,000 entries a second; 9 gains 2% at a third the speed.
COMPRESSION_LEVEL = 6
#: How far apart the first and last entry ids of one block may be. Blocks merged at the end of a run may interleave
#: with the entries of other runs written meanwhile; a reader looking for an entry id checks the blocks starting at
#: most this far before it.
MAX_BLOCK_SPAN = 1 << 22

# What a block says about an entry's payload (and, separately, its source).
DOCUMENT_NONE = 0  #: none was recorded
DOCUMENT_KEPT = 1  #: in the block's documents (unless retention has removed them)
DOCUMENT_NOT_KEPT = 2  #: an entry that wrote nothing, whose payload an earlier entry holds: not kept

_encoder = msgspec.json.Encoder(decimal_format="number")
_TEXT_GROUP = -2
_NO_GROUP = -1


def key_hash(canonical_key_text: str) -> int:
    return zlib.crc32(canonical_key_text.encode("utf-8"))


# --- Entries ---


class EntryColumns(msgspec.Struct, array_like=True):
    """The entries of a block, one list per column (``offsets``: entry id minus the block's first id; ``written``:
    microseconds after the block's written_at; ``destinations``: None when the block's row holds the one
    destination of all)."""

    offsets: list[int]
    keys: list[str]
    versions: list[str | None]
    operations: list[str]
    attempts: list[int]
    errors: list[str | None]
    destinations: list[str | None] | None
    written: list[int]
    payloads: list[int]
    sources: list[int]


_entry_columns_decoder = msgspec.json.Decoder(EntryColumns)


def pack_entries(columns: EntryColumns) -> bytes:
    return zlib.compress(_encoder.encode(columns), COMPRESSION_LEVEL)


def unpack_entries(blob: bytes) -> EntryColumns:
    return _entry_columns_decoder.decode(zlib.decompress(blob))


def pack_key_hashes(keys: Iterable[str]) -> bytes:
    hashes = array("I", sorted({key_hash(key) for key in keys}))
    if hashes.itemsize != 4:  # pragma: no cover - every platform ml-connector runs on has 4-byte unsigned ints
        hashes = array("L", hashes)
    if sys.byteorder == "big":  # stored little-endian, so that a store shared by other machines reads the same
        hashes.byteswap()
    return zlib.compress(hashes.tobytes(), COMPRESSION_LEVEL)


def unpack_key_hashes(blob: bytes) -> array:
    hashes = array("I" if array("I").itemsize == 4 else "L")
    hashes.frombytes(zlib.decompress(blob))
    if sys.byteorder == "big":
        hashes.byteswap()
    return hashes


# --- Documents (payloads and sources) ---


class _DocumentColumns(msgspec.Struct, array_like=True):
    """Documents stored by top-level field. ``groups``: per entry, which field list its document has (an index into
    ``fields``), -1 for none, -2 for a document that is not an object (kept whole, in ``texts``). ``columns``: per
    field list, per field, the values of the documents of that group in entry order, each as its JSON text."""

    groups: list[int]
    fields: list[list[str]]
    columns: list[list[list[msgspec.Raw]]]
    texts: list[msgspec.Raw]


class _BlockDocuments(msgspec.Struct, array_like=True):
    payloads: _DocumentColumns
    sources: _DocumentColumns


_block_documents_decoder = msgspec.json.Decoder(_BlockDocuments)


class DocumentColumnsBuilder:
    """Collects documents (JSON-able values, already redacted) field by field."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self._group_of_fields: dict[tuple[str, ...], int] = {}
        self.fields: list[list[str]] = []
        self._rows: list[list[tuple]] = []  # per group, the values of each document (turned into columns at the end)
        self.texts: list[Any] = []

    def add(self, document: Any) -> None:
        """A document as an object (encoded field by field when the block is packed), or None for none."""
        if document is None:
            self.groups.append(_NO_GROUP)
            return
        if type(document) is dict:
            shape = tuple(document)
            group = self._group_of_fields.get(shape)
            if group is None and all(type(name) is str for name in shape):
                group = self._group_of_fields[shape] = len(self.fields)
                self.fields.append(list(shape))
                self._rows.append([])
            if group is not None:
                self.groups.append(group)
                self._rows[group].append(tuple(document.values()))
                return
        self.groups.append(_TEXT_GROUP)
        self.texts.append(document)

    def build(self) -> _DocumentColumns:
        return _DocumentColumns(self.groups, self.fields, [[list(values) for values in zip(*rows)]
                                                           for rows in self._rows], self.texts)


_raw_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def document_columns_of_texts(texts: Sequence[str | None]) -> _DocumentColumns:
    """The columns of documents given as JSON text (entries of the row form being compacted). A text that would not
    come back exactly from its fields (not an object, or spelt unlike the encoder's compact form) is kept whole."""
    groups: list[int] = []
    group_of_fields: dict[tuple[str, ...], int] = {}
    fields: list[list[str]] = []
    columns: list[list[list[msgspec.Raw]]] = []
    kept_whole: list[msgspec.Raw] = []
    for text in texts:
        if text is None:
            groups.append(_NO_GROUP)
            continue
        encoded = text.encode("utf-8")
        values = None
        if encoded.startswith(b"{"):
            try:
                values = _raw_fields_decoder.decode(encoded)
            except msgspec.DecodeError:
                values = None
        if values is None or _object_text(list(values), list(values.values())) != encoded:
            groups.append(_TEXT_GROUP)
            kept_whole.append(msgspec.Raw(encoded))
            continue
        shape = tuple(values)
        group = group_of_fields.get(shape)
        if group is None:
            group = group_of_fields[shape] = len(fields)
            fields.append(list(shape))
            columns.append([[] for _ in shape])
        groups.append(group)
        for column, value in zip(columns[group], values.values()):
            column.append(value)
    return _DocumentColumns(groups, fields, columns, kept_whole)


def pack_documents(payloads: _DocumentColumns, sources: _DocumentColumns) -> bytes:
    """The documents of a block in frames of FRAME_ENTRIES entries, each compressed on its own (reading one entry's
    payload opens one frame): the number of frames and their lengths (little-endian 32 bits), then the frames."""
    count = len(payloads.groups)
    frames = [
        zlib.compress(_encoder.encode(_BlockDocuments(_frame(payloads, start, start + FRAME_ENTRIES),
                                                      _frame(sources, start, start + FRAME_ENTRIES))),
                      COMPRESSION_LEVEL)
        for start in range(0, count, FRAME_ENTRIES)
    ]
    return struct.pack(f"<I{len(frames)}I", len(frames), *map(len, frames)) + b"".join(frames)


def _frame(documents: _DocumentColumns, start: int, stop: int) -> _DocumentColumns:
    """The documents of the entries at positions start to stop (each group's values of those entries)."""
    if start == 0 and stop >= len(documents.groups):
        return documents
    before = Counter(documents.groups[:start])
    within = Counter(documents.groups[start:stop])
    columns = [[column[before[group]: before[group] + within[group]] for column in group_columns]
               for group, group_columns in enumerate(documents.columns)]
    texts = documents.texts[before[_TEXT_GROUP]: before[_TEXT_GROUP] + within[_TEXT_GROUP]]
    return _DocumentColumns(documents.groups[start:stop], documents.fields, columns, texts)


def _object_text(names: Sequence[str], values: Sequence[msgspec.Raw | bytes]) -> bytes:
    return b"{" + b",".join(_encoder.encode(name) + b":" + bytes(value) for name, value in zip(names, values)) + b"}"


class DocumentReader:
    """The documents of one block, put back together entry by entry (by position in the block)."""

    def __init__(self, columns: _DocumentColumns) -> None:
        self._columns = columns
        self._prefixes = [[_encoder.encode(name) + b":" for name in names] for names in columns.fields]
        # An entry's place among the documents of its group: its value's index in each of the group's columns.
        counters = [0] * (len(columns.fields) + 2)
        ranks = []
        for group in columns.groups:
            ranks.append(counters[group])
            counters[group] += 1
        self._ranks = ranks

    def text(self, position: int) -> str | None:
        group = self._columns.groups[position]
        rank = self._ranks[position]
        if group == _NO_GROUP:
            return None
        if group == _TEXT_GROUP:
            return bytes(self._columns.texts[rank]).decode("utf-8")
        values = self._columns.columns[group]
        parts = [prefix + bytes(column[rank]) for prefix, column in zip(self._prefixes[group], values)]
        return (b"{" + b",".join(parts) + b"}").decode("utf-8")


class BlockDocuments:
    """The payloads and sources of a block, each frame decoded when an entry of it is first read."""

    def __init__(self, blob: bytes) -> None:
        count = struct.unpack_from("<I", blob)[0]
        lengths = struct.unpack_from(f"<{count}I", blob, 4)
        self._blob = blob
        self._offsets = [4 + 4 * count, *itertools.accumulate(lengths, initial=4 + 4 * count)][1:]
        self._frames: OrderedDict[int, tuple[DocumentReader, DocumentReader]] = OrderedDict()

    def payload(self, position: int) -> str | None:
        frame, at = divmod(position, FRAME_ENTRIES)
        return self._frame(frame)[0].text(at)

    def source(self, position: int) -> str | None:
        frame, at = divmod(position, FRAME_ENTRIES)
        return self._frame(frame)[1].text(at)

    def frames(self) -> Iterator[_BlockDocuments]:
        for index in range(len(self._offsets) - 1):
            yield self._decoded(index)

    def _decoded(self, index: int) -> _BlockDocuments:
        return _block_documents_decoder.decode(zlib.decompress(self._blob[self._offsets[index]:
                                                                          self._offsets[index + 1]]))

    def _frame(self, index: int) -> tuple[DocumentReader, DocumentReader]:
        readers = self._frames.get(index)
        if readers is None:
            decoded = self._decoded(index)
            readers = self._frames[index] = DocumentReader(decoded.payloads), DocumentReader(decoded.sources)
            if len(self._frames) > _DECODED_FRAMES:
                self._frames.popitem(last=False)
        return readers


def unpack_documents(blob: bytes) -> BlockDocuments:
    return BlockDocuments(blob)


def merged_document_columns(parts: Sequence[_DocumentColumns]) -> _DocumentColumns:
    """The documents of several blocks, in their order, as one block's (their JSON texts are not re-encoded)."""
    groups: list[int] = []
    group_of_fields: dict[tuple[str, ...], int] = {}
    fields: list[list[str]] = []
    columns: list[list[list[msgspec.Raw]]] = []
    texts: list[msgspec.Raw] = []
    for part in parts:
        mapping = []
        for names, part_columns in zip(part.fields, part.columns):
            shape = tuple(names)
            group = group_of_fields.get(shape)
            if group is None:
                group = group_of_fields[shape] = len(fields)
                fields.append(list(shape))
                columns.append([[] for _ in shape])
            mapping.append(group)
            for column, values in zip(columns[group], part_columns):
                column.extend(values)
        groups.extend(group if group < 0 else mapping[group] for group in part.groups)
        texts.extend(part.texts)
    return _DocumentColumns(groups, fields, columns, texts)


def raw_document_columns(blob: bytes) -> tuple[_DocumentColumns, _DocumentColumns]:
    """A block's documents as stored, all frames (for merging blocks)."""
    frames = list(BlockDocuments(blob).frames())
    return (merged_document_columns([frame.payloads for frame in frames]),
            merged_document_columns([frame.sources for frame in frames]))


def empty_document_columns(count: int) -> _DocumentColumns:
    return _DocumentColumns([_NO_GROUP] * count, [], [], [])


def iter_chunks(items: Sequence[Any], size: int = BLOCK_ENTRIES) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
