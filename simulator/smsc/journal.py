"""The message journal: every accept, receipt and MO, recorded off the hot path.

Why: a load test's counters say how many; the journal says which, and survives the
process (``smsim audit`` reconciles it after a run or a ``kill -9``; a restarted SMSC
queues again what was not delivered, ``recovery.py``). On the event loop each event
adds its values to one buffer, which marshals them at once (``journal_records``: C,
nothing of the record kept alive). A thread takes the buffer's bytes every
``flush_interval`` and writes them as one frame (``journal_files.py``); the CRC and
the write release the GIL, so the loop runs on.

What a crash of the SMSC loses: the records not yet written, i.e. at most the last
``flush_interval`` of traffic (and the batch being written at that instant). A crash of
the machine also loses what was written but not yet forced to disk: with the default
``fsync = "interval"``, at most the last ``fsync_interval`` (1 s); none with ``batch``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.config import JournalConfig
from simulator.smpp.constants import Tag
from simulator.smpp.pdu import Pdu

from .journal_files import (
    ACCEPT,
    FINISHED,
    MO_DELIVERED,
    MO_INJECTED,
    MO_RECOVERED,
    RECEIPT_DELIVERED,
    RECEIPT_RECOVERED,
    REPLANNED,
    JournalFiles,
    frame_head,
)
from .journal_records import Records, new_buffer
from .receipts import RECEIPT_STAT_TEXT
from .store import Message

log = logging.getLogger("smsim.journal")
#: Each hook stamps its record; a module global is one lookup, ``time.time`` two.
_now = time.time


def _payload(msg: Message) -> bytes:
    """The text of a message that came in message_payload (data_sm, long submit_sm)."""
    payload = msg.tlvs.get(Tag.MESSAGE_PAYLOAD) if msg.tlvs else None
    return payload if isinstance(payload, bytes) else b""


def mo_part(pdu: Pdu) -> tuple[Any, ...]:
    """What an MO part's record keeps of its deliver_sm (``recovery.mo_pdu`` inverts it)."""
    p: Any = pdu
    return (
        *(p.source_addr_ton, p.source_addr_npi, p.source_addr),
        *(p.dest_addr_ton, p.dest_addr_npi, p.destination_addr),
        *(p.esm_class, p.data_coding, p.short_message, dict(p.tlvs)),
    )


class OperatorJournal:
    """One operator's hooks: called on the loop, each adds one record's values (kind
    first) to the journal's buffer and returns.

    Deliveries are matched by the PDU object itself (held until its response), so a
    receipt or MO part counts as delivered once, whatever the redeliveries before.
    A message costs two records: its accept (with the outcome planned for it) and its
    receipt's delivery.
    """

    __slots__ = ("_add", "_mo_ids", "_op", "_parts", "_receipts", "route")

    def __init__(self, name: str, records: Records, mo_ids: Iterator[str]) -> None:
        self._op = name
        #: The journal's buffer's ``add``: one call a record, marshalled at once.
        self._add = records.add
        self._mo_ids = mo_ids
        #: id(pdu) -> (pdu, message id, destination, stat): receipts in flight.
        self._receipts: dict[int, tuple[Pdu, str, str, str]] = {}
        #: id(pdu) -> (pdu, MO id, part): MO parts in flight.
        self._parts: dict[int, tuple[Pdu, str, int]] = {}
        #: destination -> the account an MO to it is queued for (the operator's
        #: ``route_mo``), set by the server; None: not recorded.
        self.route: Any = None

    def accepted(self, msg: Message) -> None:
        """An accepted message and the outcome planned for it (``_schedule_outcome`` ran
        first): the receipt that comes as planned needs no record of its own."""
        self._add(
            ACCEPT,
            self._op,
            msg.message_id,
            msg.account,
            msg.source_addr,
            msg.destination_addr,
            msg.registered_delivery,
            msg.submit_time,
            _now(),
            msg.source_ton,
            msg.source_npi,
            msg.dest_ton,
            msg.dest_npi,
            msg.esm_class,
            msg.data_coding,
            msg.short_message or _payload(msg),
            +msg.planned_state,  # a plain int: an enum member costs the fallback
            msg.planned_err,
            msg.planned_time,
        )

    def replanned(self, msg: Message) -> None:
        """A new plan for an accepted message: replace_sm's text and registered_delivery,
        or a recovery that planned it again."""
        self._add(
            REPLANNED,
            self._op,
            msg.message_id,
            msg.account,
            msg.destination_addr,
            msg.registered_delivery,
            msg.short_message or _payload(msg),
            +msg.planned_state,
            msg.planned_err,
            msg.planned_time,
            _now(),
        )

    def finished(self, msg: Message) -> None:
        """A message that ended with no receipt to come (cancel_sm): not lost, nothing
        to recover."""
        stat = RECEIPT_STAT_TEXT[msg.state]
        self._add(FINISHED, self._op, msg.message_id, msg.destination_addr, stat, _now())

    def receipt_queued(self, msg: Message, pdu: Pdu) -> None:
        """A receipt on its way: its delivery is recorded when the client acknowledges
        it. It needs no record now: it carries the outcome the journal's plan holds."""
        self._receipts[id(pdu)] = (
            pdu,
            msg.message_id,
            msg.destination_addr,
            RECEIPT_STAT_TEXT[msg.state],
        )

    def mo_injected(
        self, source: str, destination: str, pdus: Sequence[Pdu], account: str | None = None
    ) -> str:
        """An MO queued as ``pdus``; returns its journal id."""
        mo = next(self._mo_ids)
        for i, pdu in enumerate(pdus):
            self._parts[id(pdu)] = (pdu, mo, i)
        if account is None and self.route is not None:
            account = self.route(destination)
        parts = tuple(mo_part(p) for p in pdus)
        self._add(MO_INJECTED, self._op, mo, source, destination, len(pdus), _now(), account, parts)
        return mo

    def delivered(self, pdu: Pdu) -> None:
        """The client answered a deliver_sm/data_sm with status 0."""
        key = id(pdu)
        item = self._receipts.pop(key, None)
        if item is not None:
            if item[0] is pdu:
                self._add(RECEIPT_DELIVERED, self._op, item[1], item[2], item[3], _now())
            return
        part = self._parts.pop(key, None)
        if part is not None and part[0] is pdu:
            self._add(MO_DELIVERED, self._op, part[1], part[2], _now())

    def receipt_recovered(self, message_id: str, destination: str, stat: str, pdu: Pdu) -> None:
        """A receipt an earlier run did not deliver, queued again as ``pdu``."""
        self._receipts[id(pdu)] = (pdu, message_id, destination, stat)
        self._add(RECEIPT_RECOVERED, self._op, message_id, destination, _now())

    def mo_recovered(self, mo: str, parts: Mapping[int, Pdu]) -> None:
        """An earlier run's MO whose ``parts`` (index -> deliver_sm) were not delivered."""
        for i, pdu in parts.items():
            self._parts[id(pdu)] = (pdu, mo, i)
        self._add(MO_RECOVERED, self._op, mo, tuple(parts), _now())

    def inflight(self) -> int:
        return len(self._receipts) + len(self._parts)


class Journal:
    """The records' buffer and the thread that writes it; ``start`` then ``stop``.

    ``thread=False``: no thread; ``flush()`` writes (tests of batching, and what
    ``stop`` does with the rest).
    """

    def __init__(self, config: JournalConfig, *, thread: bool = True) -> None:
        self.config = config
        self.path = Path(config.path)
        #: The records not yet written: the loop's hooks add to it, the thread takes
        #: its bytes (``journal_records``).
        self._records = new_buffer()
        self._stop = threading.Event()
        self._use_thread = thread
        self._thread: threading.Thread | None = None
        self._files: JournalFiles | None = None
        #: One batch at a time reaches the files (the thread's, then stop's).
        self._lock = threading.Lock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        # MO ids unique across runs into one directory: this run's stamp and pid.
        self._mo_ids = (f"mo-{stamp}-{os.getpid()}-{n}" for n in itertools.count(1))
        self.batches_sent = 0
        self.bytes_sent = 0

    def operator(self, name: str) -> OperatorJournal:
        return OperatorJournal(name, self._records, self._mo_ids)

    def pending(self) -> int:
        """Records buffered, not yet written."""
        return self._records.records

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._files = JournalFiles(
            self.path, self.config.rotate_bytes, self.config.fsync, self.config.fsync_interval
        )
        if self._use_thread:
            self._thread = threading.Thread(target=self._run, name="smsim-journal", daemon=True)
            self._thread.start()
        log.info(
            "journal_started path=%s fsync=%s fsync_interval=%g flush_interval=%g",
            self.path,
            self.config.fsync,
            self.config.fsync_interval,
            self.config.flush_interval,
        )

    def stop(self) -> None:
        """Write what is buffered, then close the file."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(10)
        try:
            self.flush()
        except OSError as exc:
            log.error("journal_write_failed path=%s error=%s", self.path, exc)
        if self._files is not None:
            self._files.close()
        log.info("journal_stopped batches=%d bytes=%d", self.batches_sent, self.bytes_sent)

    def _run(self) -> None:
        interval = self.config.flush_interval
        while not self._stop.wait(interval):
            try:
                self._write_batch()
            except OSError as exc:
                log.error("journal_write_failed path=%s error=%s", self.path, exc)
                return
            except Exception:  # a bug must not end the journal silently
                log.exception("journal_batch_failed path=%s", self.path)

    def flush(self) -> int:
        """Write every buffered record as one batch; returns how many."""
        return self._write_batch()

    def _write_batch(self) -> int:
        """Take the buffered records' bytes and write them as one frame; returns how
        many records. The thread holds the GIL only for ``take`` (a copy of the bytes
        with the C buffer); the CRC and the write release it."""
        with self._lock:
            if self._files is None:
                return 0
            taken = self._records.take()
            if taken is None:
                return 0
            payload, records = taken
            head = frame_head(payload)
            self._files.write_frame(head, payload)
            self.batches_sent += 1
            self.bytes_sent += len(head) + len(payload)
            return records
