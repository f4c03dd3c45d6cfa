"""The journal's files: batches of records as checksummed binary frames, rotated by size,
fsynced per batch, and read back (with the JSON-lines journals of earlier versions).

Why binary: the records are written by a thread of the SMSC process, under the GIL the
event loop needs; JSON lines cost ~1 µs a record to encode (a separate writer process
did it, competing for the cores), a batch marshalled in C costs ~0.1 µs a record and
nothing else runs but ``os.write`` and ``fsync``, which release the GIL.

A file (``journal-<UTC start, µs>-<pid>-<seq>.smj``) is ``MAGIC`` then frames: the payload's
length and CRC-32 (``FRAME``, little endian), then the payload, ``marshal`` format 4 of a
list of str/int/float/bytes values (every CPython since 3.4 reads it; nothing else is
ever in it, and the checksum is verified before it is unmarshalled). A frame cut short
by a crash, or one whose checksum does not match, ends the reading of that file and is
counted as torn. The list is the records one after the other, flat: each record is its
kind then that kind's fields (``FIELDS`` names them, ``ARITY`` counts them), and the
reader gives each record as a dict of those names (what a JSON line of the earlier
format held, plus the fields recovery needs). Flat because a tuple per record would be
a container the cyclic garbage collector tracks: the event loop buffers ~80,000 records
a second, and kept as tuples they made the collector's passes cost the SMSC more than
the journal's own work did. Files of the previous layout (a list of tuples, same magic)
are still read.

Format 3 (``MAGIC``) puts the outcome the receipt policy planned into each accept, so a
receipt that comes as planned (nearly all) needs no ``receipt_queued`` record: a
message costs two records, not three (``recovery.py`` rebuilds the receipt from the
plan). Files of format 2 (``MAGIC_J2``) are read with its fields (``FIELDS_J2``).
"""

from __future__ import annotations

import json
import marshal
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from simulator.smpp.constants import MessageState

#: Record kinds, as in each record's ``e`` field.
ACCEPT = "accept"
RECEIPT_QUEUED = "receipt_queued"
RECEIPT_DELIVERED = "receipt_delivered"
MO_INJECTED = "mo_injected"
MO_DELIVERED = "mo_delivered"
#: A restarted SMSC queued again a receipt / the undelivered parts of an MO that an
#: earlier run of it had not delivered (``recovery.py``).
RECEIPT_RECOVERED = "receipt_recovered"
MO_RECOVERED = "mo_recovered"
#: A message ended with no receipt to come (cancel_sm; in format 2 also a failure-only
#: one that did not fail): not lost, recovery must not plan it again.
FINISHED = "finished"
#: A new plan for an accepted message (replace_sm, or planned again by a recovery).
REPLANNED = "replanned"

#: The fields of each kind's tuple, in order. Fields after those of the JSON-lines
#: format are what recovery rebuilds a receipt or an MO from.
FIELDS: dict[str, tuple[str, ...]] = {
    ACCEPT: (
        *("e", "op", "id", "account", "src", "dst", "rd", "submit", "t"),
        #: TON/NPI of the source and destination, esm_class, data_coding, and the text
        #: (short_message, or message_payload when it came in that).
        *("src_ton", "src_npi", "dst_ton", "dst_npi", "esm", "dcs", "sm"),
        #: The outcome the receipt policy planned at accept: the final state, its error
        #: and its simulated time. The receipt, which carries it, has no record until
        #: it is delivered.
        *("pstate", "perr", "pdone"),
    ),
    #: Format 2: a receipt queued, with its final state and error and (``done``) its
    #: simulated time.
    RECEIPT_QUEUED: ("e", "op", "id", "dst", "stat", "t", "state", "err", "done"),
    #: ``rd``, ``sm`` and the plan as they are now.
    REPLANNED: ("e", "op", "id", "account", "dst", "rd", "sm", "pstate", "perr", "pdone", "t"),
    RECEIPT_DELIVERED: ("e", "op", "id", "dst", "stat", "t"),
    #: ``account``: the account whose receivers it was queued for; ``pdus``: per part
    #: (source TON, NPI, address, destination TON, NPI, address, esm_class, data_coding,
    #: short_message, TLVs).
    MO_INJECTED: ("e", "op", "mo", "src", "dst", "parts", "t", "account", "pdus"),
    MO_DELIVERED: ("e", "op", "mo", "part", "t"),
    RECEIPT_RECOVERED: ("e", "op", "id", "dst", "t"),
    #: ``part_list``: the parts queued again.
    MO_RECOVERED: ("e", "op", "mo", "part_list", "t"),
    FINISHED: ("e", "op", "id", "dst", "stat", "t"),
}
KINDS = frozenset(FIELDS)
#: How many values each kind's record takes in a batch's flat list, its kind included.
ARITY: dict[str, int] = {kind: len(fields) for kind, fields in FIELDS.items()}
#: Files of the format before the plan (``MAGIC_J2``): accepts without it, and a
#: ``receipt_queued`` for every receipt.
FIELDS_J2: dict[str, tuple[str, ...]] = {**FIELDS, ACCEPT: FIELDS[ACCEPT][:-3]}
ARITY_J2: dict[str, int] = {kind: len(fields) for kind, fields in FIELDS_J2.items()}


def plan_wants_receipt(rec: dict[str, Any]) -> bool:
    """Whether an accept's (or a replan's) registered_delivery and plan (format 3) make
    a receipt due: on every outcome (bits 1-0 = 1), or on failure (2) planned to fail."""
    ask: int = rec["rd"] & 0x03
    return ask == 1 or (ask == 2 and rec["pstate"] != MessageState.DELIVERED)


SUFFIX = ".smj"
#: ``smsim smsc --processes N --journal DIR``: process K journals (and recovers) in
#: DIR/process-K, so a restart recovers each process's own messages once.
PROCESS_DIR = "process-"
#: The files of the JSON-lines format (before the binary one); still read.
LEGACY_SUFFIX = ".jsonl"
MAGIC = b"SMSIMJ3\n"
#: The format before the accept carried its plan; still read.
MAGIC_J2 = b"SMSIMJ2\n"
#: What each magic says of its file's flat records: their fields and arity by kind.
FORMATS: dict[bytes, tuple[dict[str, tuple[str, ...]], dict[str, int]]] = {
    MAGIC: (FIELDS, ARITY),
    MAGIC_J2: (FIELDS_J2, ARITY_J2),
}
#: A frame's head: the payload's length and its CRC-32.
FRAME = struct.Struct("<II")
#: marshal's format: fixed, so files are read the same by every Python that wrote them.
MARSHAL_VERSION = 4


def plain(value: Any) -> Any:
    """``value`` with every int, float and str subclass (an IntEnum tag, a state) made
    the plain type marshal writes, through tuples, lists and dicts."""
    if isinstance(value, bool | None | bytes):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple | list):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return repr(value)


def marshalled(values: list[Any]) -> bytes:
    """A batch's payload: the marshalled flat list of its records' values (``flatten``
    makes one of tuples). C, and it holds the GIL: the caller may drop ``values`` after
    it, before anything that releases the GIL (the CRC, the write)."""
    try:
        return marshal.dumps(values, MARSHAL_VERSION)
    except ValueError:  # an enum in a record: rare, so checked only when marshal fails
        return marshal.dumps([plain(v) for v in values], MARSHAL_VERSION)


def frame_head(payload: bytes) -> bytes:
    """The frame head of ``payload``: its length and CRC-32 (zlib releases the GIL for
    it)."""
    return FRAME.pack(len(payload), zlib.crc32(payload))


def frame(values: list[Any]) -> bytes:
    """One batch as it is written: the frame head, then the payload (``marshalled``)."""
    payload = marshalled(values)
    return frame_head(payload) + payload


def flatten(records: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Records as tuples (kind first) as a batch's flat list."""
    return [value for record in records for value in record]


def count_records(values: list[Any]) -> int:
    """How many records a flat batch holds (its values up to the first that is not a
    kind where one is due)."""
    i = n = 0
    size = len(values)
    arity = ARITY
    while i < size:
        k = arity.get(values[i]) if isinstance(values[i], str) else None
        if k is None:
            break
        i += k
        n += 1
    return n


class JournalFiles:
    """Appends frames to ``journal-<stamp>-<pid>-<seq>.smj`` files, rotated by size.

    Plain ``os.write`` on a raw descriptor, which releases the GIL, so a thread can
    write while the event loop runs. ``fsync``: ``batch`` opens the file ``O_DSYNC``, so
    each write returns once its data (and the file's new size) is on disk, as
    ``fdatasync`` after it would, in one system call; ``interval``: an ``fdatasync``
    after a write once ``fsync_interval`` s have passed since the last; ``never``: none.
    """

    def __init__(
        self, path: Path, rotate_bytes: int, fsync: str, fsync_interval: float = 1.0
    ) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        if fsync not in ("batch", "interval", "never"):
            raise ValueError(f"fsync {fsync!r}: batch, interval or never")
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._synced_at = time.monotonic()
        ns = time.time_ns()
        # To the microsecond: a restarted SMSC's files sort after the last run's.
        day = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9))
        self._stamp = f"{day}.{ns // 1000 % 10**6:06d}"
        self._seq = 0
        self._size = 0
        self._fd = -1
        self.batches_written = 0
        self.syncs = 0
        path.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self._seq += 1
        name = f"journal-{self._stamp}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        dsync = os.O_DSYNC if self.fsync == "batch" else 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | dsync
        self._fd = os.open(self.path / name, flags, 0o644)
        self._size = 0
        self._write(MAGIC)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def write_frame(self, data: bytes, payload: bytes = b"") -> None:
        """One batch already framed: ``data`` is the frame (``frame``), or its head
        (``frame_head``) with ``payload`` after it, written with one ``writev`` and no
        copy of the payload. Written synchronously, per policy, then rotated."""
        if self._fd < 0:
            raise OSError("journal file closed")
        if payload:
            # One system call for both unless the kernel takes part (a full disk, a
            # signal): then the rest as plain writes.
            n = os.writev(self._fd, (data, payload))
            if n < len(data):
                self._write(data[n:])
                self._write(payload)
            elif n < len(data) + len(payload):
                self._write(payload[n - len(data) :])
            self._size += n
        else:
            self._write(data)  # durable on return when fsync is batch (O_DSYNC)
        self.batches_written += 1
        if self.fsync == "interval":
            now = time.monotonic()
            if now - self._synced_at >= self.fsync_interval:
                os.fdatasync(self._fd)
                self._synced_at = now
                self.syncs += 1
        if self._size >= self.rotate_bytes:
            if self.fsync == "interval":
                os.fdatasync(self._fd)  # a rotated file is left complete on disk
            os.close(self._fd)
            self._open()

    def write(self, records: list[tuple[Any, ...]]) -> int:
        """One batch of records (tuples, kind first); how many."""
        if not records:
            return 0
        self.write_frame(frame(flatten(records)))
        return len(records)

    def close(self) -> None:
        if self._fd >= 0:
            if self.fsync == "interval":
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1


def journal_files(path: Path) -> list[Path]:
    """A journal directory's files (both formats), oldest first: their names sort in
    writing order (the start time, the pid, the sequence number). A directory that
    ``smsim smsc --processes N`` wrote holds one ``process-K`` directory per process:
    then theirs, one process after the other (each in its own order)."""
    files = [*path.glob(f"journal-*{SUFFIX}"), *path.glob(f"journal-*{LEGACY_SUFFIX}")]
    if not files:
        return [f for sub in sorted(path.glob(PROCESS_DIR + "*")) for f in journal_files(sub)]
    return sorted(files, key=lambda p: p.stem)


def as_dict(record: tuple[Any, ...]) -> dict[str, Any]:
    """A record's tuple as a dict of its kind's field names."""
    return dict(zip(FIELDS[record[0]], record, strict=False))


class JournalReader:
    """The records of a journal directory's files, in order, one at a time, as dicts;
    ``torn`` counts what could not be read (a frame or line cut by a crash, a bad
    checksum). Reads the binary files and the JSON-lines ones of earlier versions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for file in journal_files(self.path):
            if file.suffix == LEGACY_SUFFIX:
                yield from self._lines(file)
            else:
                fields, arity = FORMATS[MAGIC]
                for batch in self._frames(file):
                    if isinstance(batch, bytes):  # the file's magic: its format
                        fields, arity = FORMATS[batch]
                    elif batch and isinstance(batch[0], tuple):
                        yield from self._tuples(batch)  # the layout before the flat one
                    else:
                        yield from self._flat(batch, fields, arity)

    def _flat(
        self, batch: list[Any], fields: dict[str, tuple[str, ...]], arity: dict[str, int]
    ) -> Iterator[dict[str, Any]]:
        i = 0
        size = len(batch)
        while i < size:
            kind = batch[i]
            k = arity.get(kind) if isinstance(kind, str) else None
            if k is None or i + k > size:
                self.torn += 1  # out of step: nothing after it can be read as records
                return
            yield dict(zip(fields[kind], batch[i : i + k], strict=True))
            i += k

    def _tuples(self, batch: list[Any]) -> Iterator[dict[str, Any]]:
        for rec in batch:
            if isinstance(rec, tuple) and rec and rec[0] in FIELDS:
                yield as_dict(rec)
            else:
                self.torn += 1

    def _frames(self, file: Path) -> Iterator[list[Any] | bytes]:
        """The file's magic (which says its format), then its frames' batches."""
        with open(file, "rb") as f:
            magic = f.read(len(MAGIC))
            if magic not in FORMATS:
                self.torn += 1
                return
            yield magic
            while True:
                head = f.read(FRAME.size)
                if not head:
                    return
                if len(head) < FRAME.size:
                    self.torn += 1
                    return
                size, crc = FRAME.unpack(head)
                data = f.read(size)
                if len(data) < size or zlib.crc32(data) != crc:
                    self.torn += 1  # the tail a crash cut: nothing after it is aligned
                    return
                try:
                    batch = marshal.loads(data)
                except (EOFError, ValueError, TypeError):
                    self.torn += 1
                    return
                if isinstance(batch, list):
                    yield batch
                else:
                    self.torn += 1

    def _lines(self, file: Path) -> Iterator[dict[str, Any]]:
        loads = json.loads
        with open(file, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = loads(line)
                except json.JSONDecodeError:
                    self.torn += 1
                    continue
                if isinstance(rec, dict) and rec.get("e") in KINDS:
                    yield rec
                else:
                    self.torn += 1


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every record in ``path``'s files in order, and how many frames or lines were
    unreadable (torn by a crash mid-write)."""
    reader = JournalReader(path)
    records = list(reader)
    return records, reader.torn


def write_records(path: Path, records: Iterable[tuple[Any, ...]]) -> None:
    """Write ``records`` as one journal file in ``path`` (tests, tools)."""
    files = JournalFiles(path, 1 << 40, fsync="never")
    try:
        files.write(list(records))
    finally:
        files.close()
