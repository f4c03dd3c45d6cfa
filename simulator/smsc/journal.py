"""The message journal: every accept, receipt and MO, recorded off the hot path.

Why: a load test's counters say how many; the journal says which, and survives the
process (``smsim audit`` reconciles it after a run or a ``kill -9``; a restarted SMSC
queues again what was not delivered, ``recovery.py``). On the event loop each event
only extends one flat list with its values (``journal_files``: no tuple per record for
the garbage collector to track). A thread takes that list every ``flush_interval``
(the hooks get a new one), marshals it as one frame (C, ~0.1 µs a record) and writes
it (``journal_files.py``); the CRC and the write release the GIL, so the loop runs on.

What a crash of the SMSC loses: the records not yet written, i.e. at most the last
``flush_interval`` of traffic (and the batch being written at that instant; rarely
one interval more, when a hook was mid-record as its buffer was taken). A crash of
the machine also loses what was written but not yet forced to disk: with the default
``fsync = "interval"``, at most the last ``fsync_interval`` (1 s); none with ``batch``.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
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
    count_records,
    frame_head,
    marshalled,
)
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
    """One operator's hooks: called on the loop, each extends the journal's flat buffer
    with one record's values (kind first) and returns.

    Deliveries are matched by the PDU object itself (held until its response), so a
    receipt or MO part counts as delivered once, whatever the redeliveries before.
    A message costs two records: its accept (with the outcome planned for it) and its
    receipt's delivery.
    """

    __slots__ = ("_buf", "_mo_ids", "_op", "_parts", "_receipts", "route")

    def __init__(self, name: str, buffer: list[Any], mo_ids: Iterator[str]) -> None:
        self._op = name
        #: The journal's current buffer: its thread puts a new one here when it takes
        #: this one (``Journal._take``).
        self._buf = buffer
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
        self._buf.extend(
            (
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
                +msg.planned_state,  # a plain int: marshal refuses enum members
                msg.planned_err,
                msg.planned_time,
            )
        )

    def replanned(self, msg: Message) -> None:
        """A new plan for an accepted message: replace_sm's text and registered_delivery,
        or a recovery that planned it again."""
        self._buf.extend(
            (
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
        )

    def finished(self, msg: Message) -> None:
        """A message that ended with no receipt to come (cancel_sm): not lost, nothing
        to recover."""
        stat = RECEIPT_STAT_TEXT[msg.state]
        self._buf.extend((FINISHED, self._op, msg.message_id, msg.destination_addr, stat, _now()))

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
        self._buf.extend(
            (MO_INJECTED, self._op, mo, source, destination, len(pdus), _now(), account, parts)
        )
        return mo

    def delivered(self, pdu: Pdu) -> None:
        """The client answered a deliver_sm/data_sm with status 0."""
        key = id(pdu)
        item = self._receipts.pop(key, None)
        if item is not None:
            if item[0] is pdu:
                self._buf.extend((RECEIPT_DELIVERED, self._op, item[1], item[2], item[3], _now()))
            return
        part = self._parts.pop(key, None)
        if part is not None and part[0] is pdu:
            self._buf.extend((MO_DELIVERED, self._op, part[1], part[2], _now()))

    def receipt_recovered(self, message_id: str, destination: str, stat: str, pdu: Pdu) -> None:
        """A receipt an earlier run did not deliver, queued again as ``pdu``."""
        self._receipts[id(pdu)] = (pdu, message_id, destination, stat)
        self._buf.extend((RECEIPT_RECOVERED, self._op, message_id, destination, _now()))

    def mo_recovered(self, mo: str, parts: Mapping[int, Pdu]) -> None:
        """An earlier run's MO whose ``parts`` (index -> deliver_sm) were not delivered."""
        for i, pdu in parts.items():
            self._parts[id(pdu)] = (pdu, mo, i)
        self._buf.extend((MO_RECOVERED, self._op, mo, tuple(parts), _now()))

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
        #: Records' values, flat (``journal_files.frame``): the loop's hooks extend it;
        #: the thread takes it whole and gives the hooks a new one (``_take``).
        self._buffer: list[Any] = []
        #: Buffers taken, oldest first, not yet written.
        self._taken: list[list[Any]] = []
        self._hooks: list[OperatorJournal] = []
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
        hooks = OperatorJournal(name, self._buffer, self._mo_ids)
        self._hooks.append(hooks)
        return hooks

    def pending(self) -> int:
        """Records buffered, not yet written (no copy needed: the thread never changes a
        buffer in place, it takes one whole)."""
        return sum(count_records(b) for b in (*self._taken, self._buffer))

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
        """Write every buffered record as one batch; returns how many (counted here, not
        on the thread's path)."""
        return self._write_batch(count=True)

    def _take(self) -> list[list[Any]]:
        """The buffers whose records can be written now, oldest first.

        The hooks get a new buffer instead of the thread copying and cutting the old
        one: no pass over its values to copy them and one fewer to release them, and
        no realloc of a list the loop keeps growing. A hook that the GIL left between
        reading its buffer and extending it still holds the old one: such a buffer
        (one more reference than the thread's own) and the ones after it wait for the
        next batch, so records are written once, in order."""
        new: list[Any] = []
        self._taken.append(self._buffer)
        self._buffer = new
        for hooks in self._hooks:
            hooks._buf = new
        ready = 0
        for buf in self._taken:
            # References: the list _taken, getrefcount's argument, the loop's variable.
            if sys.getrefcount(buf) > 3:
                break
            ready += 1
        out, self._taken = self._taken[:ready], self._taken[ready:]
        return out

    def _write_batch(self, count: bool = False) -> int:
        """Take the buffered records and write them as one batch; returns how many with
        ``count``, else 0.

        The values are marshalled and their lists dropped while this thread holds the
        GIL: alive during the CRC and the write (which release it), a batch of
        thousands of values would be one more young container for every collection the
        loop started meanwhile to traverse."""
        with self._lock:
            if self._files is None:
                return 0
            taken = self._take()
            if not any(taken):
                return 0
            batch = taken[0] if len(taken) == 1 else [v for b in taken for v in b]
            del taken
            records = count_records(batch) if count else 0
            payload = marshalled(batch)
            del batch
            head = frame_head(payload)
            self._files.write_frame(head, payload)
            self.batches_sent += 1
            self.bytes_sent += len(head) + len(payload)
            return records
