"""The message journal: every accept, receipt and MO, recorded off the hot path.

Why: a load test's counters say how many; the journal says which, and survives the
process (``smsim audit`` reconciles it after a run or a ``kill -9``). On the event loop
each event only appends a tuple to a deque. A thread takes what is there every
``flush_interval``, marshals it (C, a fifth of a microsecond a record) and pipes it to
the writer process (``journal_files.py``), which encodes the lines, writes and fsyncs
each batch and rotates the files: JSON and disk never hold the SMSC's GIL.

What a crash of the SMSC loses: the records still in its deque, i.e. at most the last
``flush_interval`` of traffic; what is in the pipe the writer still writes. A crash of
the machine also loses batches the writer had not fsynced (``fsync = "never"``).
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from simulator.config import JournalConfig
from simulator.smpp.pdu import Pdu

from .journal_files import (
    ACCEPT,
    MO_DELIVERED,
    MO_INJECTED,
    RECEIPT_DELIVERED,
    RECEIPT_QUEUED,
    JournalFiles,
    frame,
)
from .receipts import RECEIPT_STAT_TEXT
from .store import Message

log = logging.getLogger("smsim.journal")


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
    """The records' buffer and its hand-off to the writer process; ``start`` then ``stop``.

    ``thread=False``: no process, no thread; ``flush()`` writes in this process (tests
    of batching, and what ``stop`` does with the rest).
    """

    def __init__(self, config: JournalConfig, *, thread: bool = True) -> None:
        self.config = config
        self.path = Path(config.path)
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._use_writer = thread
        self._thread: threading.Thread | None = None
        self._writer: subprocess.Popen[bytes] | None = None
        self._files: JournalFiles | None = None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        # MO ids unique across runs into one directory: this run's stamp and pid.
        self._mo_ids = (f"mo-{stamp}-{os.getpid()}-{n}" for n in itertools.count(1))
        self.records_sent = 0
        self.batches_sent = 0

    def operator(self, name: str) -> OperatorJournal:
        return OperatorJournal(name, self._buffer.append, self._mo_ids)

    def pending(self) -> int:
        """Records buffered, not yet handed to the writer."""
        return len(self._buffer)

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self._use_writer:
            # The writer imports this package wherever it was imported from.
            root = str(Path(__file__).resolve().parents[2])
            pypath = os.environ.get("PYTHONPATH", "")
            self._writer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "simulator.smsc.journal_files",
                    str(self.path),
                    str(self.config.rotate_bytes),
                    self.config.fsync,
                ],
                stdin=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, pypath)))},
            )
            self._thread = threading.Thread(target=self._run, name="smsim-journal", daemon=True)
            self._thread.start()
        else:
            self._files = JournalFiles(
                self.path, self.config.rotate_bytes, self.config.fsync == "batch"
            )
        log.info(
            "journal_started path=%s fsync=%s flush_interval=%g writer_pid=%s",
            self.path,
            self.config.fsync,
            self.config.flush_interval,
            self._writer.pid if self._writer else "-",
        )

    def stop(self) -> None:
        """Hand over what is buffered, close the pipe and wait for the writer."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(10)
        try:
            self.flush()
        except OSError as exc:
            log.error("journal_write_failed path=%s error=%s", self.path, exc)
        if self._writer is not None:
            if self._writer.stdin is not None:
                self._writer.stdin.close()
            try:
                self._writer.wait(10)
            except subprocess.TimeoutExpired:
                log.error("journal_writer_stuck pid=%d", self._writer.pid)
        if self._files is not None:
            self._files.close()
        log.info("journal_stopped records=%d batches=%d", self.records_sent, self.batches_sent)

    def _run(self) -> None:
        interval = self.config.flush_interval
        while not self._stop.wait(interval):
            try:
                self.flush()
            except OSError as exc:
                log.error("journal_write_failed path=%s error=%s", self.path, exc)
                return

    def flush(self) -> int:
        """Take every buffered record as one batch and write it (in this process) or
        pipe it to the writer; returns how many."""
        buf = self._buffer
        popleft = buf.popleft
        batch = [popleft() for _ in range(len(buf))]
        if not batch:
            return 0
        if self._files is not None:
            self._files.write(batch)
        elif self._writer is not None and self._writer.stdin is not None:
            stdin = self._writer.stdin
            stdin.write(frame(batch))
            stdin.flush()
        else:
            return 0
        self.records_sent += len(batch)
        self.batches_sent += 1
        return len(batch)
