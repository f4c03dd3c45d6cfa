"""The message journal: every accept, receipt and MO appended to line-delimited JSON files.

Why: a load test's counters say how many; the journal says which, and survives the
process (``smsim audit`` reconciles it after a run or a ``kill -9``). The event loop only
appends a tuple to a deque per event; a thread turns them into JSON every
``flush_interval``, writes the batch in one call, fsyncs it (``fsync = "batch"``) and
rotates files by size. What a crash can lose: the records of the batch not yet written
(at most ``flush_interval`` of traffic, plus a torn last line the reader skips).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring as _q
from pathlib import Path
from typing import Any

from simulator.config import JournalConfig
from simulator.smpp.pdu import Pdu

from .receipts import RECEIPT_STAT_TEXT
from .store import Message

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


class OperatorJournal:
    """One operator's hooks: called on the loop, each appends one tuple and returns.

    Deliveries are matched by the PDU object itself (held until its response), so a
    receipt or MO part counts as delivered once, whatever the redeliveries before.
    """

    __slots__ = ("_append", "_inflight", "_mo_ids", "_op")

    def __init__(self, name: str, append: Any, mo_ids: Iterator[str]) -> None:
        self._op = name
        self._append = append
        self._mo_ids = mo_ids
        #: id(pdu) -> (pdu, the delivered record's tuple without its time).
        self._inflight: dict[int, tuple[Pdu, tuple[Any, ...]]] = {}

    def accepted(self, msg: Message) -> None:
        self._append(
            (
                ACCEPT,
                self._op,
                msg.message_id,
                msg.account,
                msg.source_addr,
                msg.destination_addr,
                msg.registered_delivery,
                msg.submit_time,
                time.time(),
            )
        )

    def receipt_queued(self, msg: Message, pdu: Pdu) -> None:
        stat = RECEIPT_STAT_TEXT[msg.state]
        self._inflight[id(pdu)] = (
            pdu,
            (RECEIPT_DELIVERED, self._op, msg.message_id, msg.destination_addr, stat),
        )
        self._append(
            (RECEIPT_QUEUED, self._op, msg.message_id, msg.destination_addr, stat, time.time())
        )

    def mo_injected(self, source: str, destination: str, pdus: Sequence[Pdu]) -> None:
        mo = next(self._mo_ids)
        for i, pdu in enumerate(pdus):
            self._inflight[id(pdu)] = (pdu, (MO_DELIVERED, self._op, mo, i))
        self._append((MO_INJECTED, self._op, mo, source, destination, len(pdus), time.time()))

    def delivered(self, pdu: Pdu) -> None:
        """The client answered a deliver_sm/data_sm with status 0."""
        item = self._inflight.pop(id(pdu), None)
        if item is not None and item[0] is pdu:
            self._append((*item[1], time.time()))

    def inflight(self) -> int:
        return len(self._inflight)


class Journal:
    """The records' buffer and the thread that writes it; ``start`` then ``stop``.

    ``thread=False`` leaves writing to explicit ``flush()`` calls (tests of batching).
    """

    def __init__(self, config: JournalConfig, *, thread: bool = True) -> None:
        self.config = config
        self.path = Path(config.path)
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread = (
            threading.Thread(target=self._run, name="smsim-journal", daemon=True)
            if thread
            else None
        )
        self._file: Any = None
        self._size = 0
        self._seq = 0
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        # MO ids unique across runs into one directory: this run's stamp and pid.
        self._mo_ids = (f"mo-{self._stamp}-{os.getpid()}-{n}" for n in itertools.count(1))
        self._lock = threading.Lock()
        self.records_written = 0
        self.batches_written = 0

    def operator(self, name: str) -> OperatorJournal:
        return OperatorJournal(name, self._buffer.append, self._mo_ids)

    def pending(self) -> int:
        """Records buffered, not yet written."""
        return len(self._buffer)

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._open()
        if self._thread is not None:
            self._thread.start()
        log.info(
            "journal_started path=%s fsync=%s flush_interval=%g",
            self.path,
            self.config.fsync,
            self.config.flush_interval,
        )

    def stop(self) -> None:
        """Write what is buffered and close (the thread, if any, exits first)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(10)
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        log.info(
            "journal_stopped records=%d batches=%d", self.records_written, self.batches_written
        )

    def _run(self) -> None:
        interval = self.config.flush_interval
        while not self._stop.wait(interval):
            try:
                self.flush()
            except OSError as exc:
                log.error("journal_write_failed path=%s error=%s", self.path, exc)

    def _open(self) -> None:
        self._seq += 1
        name = f"journal-{self._stamp}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        self._file = open(self.path / name, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def flush(self) -> int:
        """Write every buffered record as one batch (fsync per policy); returns how many."""
        buf = self._buffer
        lines = []
        enc = _ENCODERS
        popleft = buf.popleft
        try:
            while True:
                r = popleft()
                lines.append(enc[r[0]](r))
        except IndexError:
            pass
        if not lines:
            return 0
        data = "".join(lines)
        with self._lock:
            f = self._file
            if f is None:
                return 0
            f.write(data)
            f.flush()
            if self.config.fsync == "batch":
                os.fsync(f.fileno())
            self._size = f.tell()
            self.records_written += len(lines)
            self.batches_written += 1
            if self._size >= self.config.rotate_bytes:
                f.close()
                self._open()
        return len(lines)


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
