"""The journal's files: one JSON line per record, rotated by size, fsynced per batch,
and read back. Standard library only: it also runs as the writer process
(``python -m simulator.smsc.journal_files DIR ROTATE_BYTES FSYNC``), which reads
marshalled batches on stdin, so encoding and disk never take the SMSC's GIL; when the
SMSC dies, the writer reads to the end of the pipe, writes it all and exits.
"""

from __future__ import annotations

import json
import logging
import marshal
import os
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring as _q
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("smsim.journal")

#: Record kinds, as written in each line's ``e`` field.
ACCEPT = "accept"
RECEIPT_QUEUED = "receipt_queued"
RECEIPT_DELIVERED = "receipt_delivered"
MO_INJECTED = "mo_injected"
MO_DELIVERED = "mo_delivered"

KINDS = frozenset((ACCEPT, RECEIPT_QUEUED, RECEIPT_DELIVERED, MO_INJECTED, MO_DELIVERED))
SUFFIX = ".jsonl"


def _accept(r: tuple[Any, ...]) -> str:
    return (
        f'{{"e":"accept","op":{_q(r[1])},"id":{_q(r[2])},"account":{_q(r[3])},'
        f'"src":{_q(r[4])},"dst":{_q(r[5])},"rd":{r[6]:d},"submit":{r[7]!r},"t":{r[8]!r}}}\n'
    )


def _receipt(r: tuple[Any, ...]) -> str:
    return (
        f'{{"e":"{r[0]}","op":{_q(r[1])},"id":{_q(r[2])},"dst":{_q(r[3])},'
        f'"stat":{_q(r[4])},"t":{r[5]!r}}}\n'
    )


def _mo_injected(r: tuple[Any, ...]) -> str:
    return (
        f'{{"e":"mo_injected","op":{_q(r[1])},"mo":{_q(r[2])},"src":{_q(r[3])},'
        f'"dst":{_q(r[4])},"parts":{r[5]:d},"t":{r[6]!r}}}\n'
    )


def _mo_delivered(r: tuple[Any, ...]) -> str:
    return f'{{"e":"mo_delivered","op":{_q(r[1])},"mo":{_q(r[2])},"part":{r[3]:d},"t":{r[4]!r}}}\n'


#: One line per kind by f-strings and the C string escaper: a third of json.dumps's
#: cost, which the journal's thread pays under the GIL the event loop needs.
_ENCODERS: dict[str, Callable[[tuple[Any, ...]], str]] = {
    ACCEPT: _accept,
    RECEIPT_QUEUED: _receipt,
    RECEIPT_DELIVERED: _receipt,
    MO_INJECTED: _mo_injected,
    MO_DELIVERED: _mo_delivered,
}


def encode(record: tuple[Any, ...]) -> str:
    """One journal line (with its newline) from a recorded tuple."""
    return _ENCODERS[record[0]](record)


class JournalFiles:
    """Appends batches of records to ``journal-<stamp>-<pid>-<seq>.jsonl`` files."""

    def __init__(self, path: Path, rotate_bytes: int, fsync: bool) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.fsync = fsync
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._seq = 0
        self._size = 0
        self.records_written = 0
        self.batches_written = 0
        path.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None
        self._open()

    def _open(self) -> None:
        self._seq += 1
        name = f"journal-{self._stamp}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        self._file = open(self.path / name, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def write(self, records: Iterable[tuple[Any, ...]]) -> int:
        """One batch: encoded, written in one call, fsynced (per policy); how many."""
        enc = _ENCODERS
        lines = [enc[r[0]](r) for r in records]
        f = self._file
        if not lines or f is None:
            return 0
        data = "".join(lines)
        f.write(data)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        self._size = f.tell()
        self.records_written += len(lines)
        self.batches_written += 1
        if self._size >= self.rotate_bytes:
            f.close()
            self._open()
        return len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: A batch on the writer's stdin: its length (4 bytes, big endian), then marshal bytes.
FRAME = struct.Struct(">I")


def frame(records: list[tuple[Any, ...]]) -> bytes:
    data = marshal.dumps(records)
    return FRAME.pack(len(data)) + data


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(stream: IO[bytes], files: JournalFiles) -> None:
    """Write every batch read from ``stream`` until it ends (or breaks mid-frame)."""
    while True:
        head = _read_exact(stream, FRAME.size)
        if head is None:
            break
        body = _read_exact(stream, FRAME.unpack(head)[0])
        if body is None:
            break
        files.write(marshal.loads(body))
    files.close()


def main(argv: list[str]) -> int:
    path, rotate, fsync = argv
    # Ctrl-C and SIGTERM reach the whole process group: the SMSC then hands over its
    # last batch and closes the pipe, and the writer exits at its end, not before.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    files = JournalFiles(Path(path), int(rotate), fsync == "batch")
    serve(sys.stdin.buffer, files)
    return 0


def journal_files(path: Path) -> list[Path]:
    """A journal directory's files, oldest first (their names sort in writing order)."""
    return sorted(path.glob(f"journal-*{SUFFIX}"))


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every record in ``path``'s files in order, and how many lines were unreadable
    (a line torn by a crash mid-write)."""
    records: list[dict[str, Any]] = []
    torn = 0
    for file in journal_files(path):
        with open(file, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    torn += 1
                    continue
                if isinstance(rec, dict) and rec.get("e") in KINDS:
                    records.append(rec)
                else:
                    torn += 1
    return records, torn


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
