"""Fuzzing a live SMSC (issue 8): mutated PDUs on raw sockets, before and after a bind.

One real ``SmscServer`` (its own thread and loop, a free loopback port) serves the whole
module. Each example opens a raw connection, optionally binds (transceiver, transmitter
or receiver), sends a stream of valid, mutated and noise frames (tests/fuzz/pdus.py),
completes any frame left partial, and ends with an enquire_link sentinel. Then:

- either the sentinel came back, and every request frame got exactly one answer: the
  codec's status for what it cannot decode, generic_nack ESME_RINVCMDID for an unknown
  command, a documented status for the rest; no response frame got one;
- or the server closed the connection, with a log line saying why (unbind, framing
  error, errors before bind), and every answer it did send was due;
- every PDU the server wrote parses; at most one log line per frame sent (and one for
  the bind and one for the close);
- no traceback, no ERROR and no unhandled exception anywhere in the log;
- a well-behaved client still binds, gets submit_sm_resp and its receipt.

CI runs a fixed number of derandomized examples; SMSIM_FUZZ_EXAMPLES=N for long runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from simulator.config import SecurityConfig
from simulator.smpp.constants import CommandId, Status, Tag
from simulator.smpp.pdu import (
    BIND_CLASSES,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Pdu,
    Unbind,
)
from simulator.smsc.server import SmscServer, SmscThread
from tests.fuzz import TIMEOUT, fuzz_settings
from tests.fuzz.client import ENQUIRE_LINK_RESP, BlockingEsme, RawConnection
from tests.fuzz.model import expectation, match_answers, whole_stream
from tests.fuzz.pdus import esme_stream
from tests.support.smsc import config, sm

pytestmark = pytest.mark.timeout(TIMEOUT)

MAX_PDU = 65536
_STATUSES = frozenset(int(s) for s in Status)
_SENTINEL = 0x7FFFFFF0


class LogTrap(logging.Handler):
    """Every record from the SMSC thread (smsim.* and asyncio), formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lock_ = threading.Lock()
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self.lock_:
            self.lines.append((record.levelno, text))

    def since(self, mark: int) -> list[tuple[int, str]]:
        with self.lock_:
            return self.lines[mark:]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[SmscServer, LogTrap]]:
    trap = LogTrap()
    loggers = [logging.getLogger(n) for n in ("smsim", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(trap)
        lg.setLevel(logging.INFO)
    # No bind lock-out: the fuzzer's wrong passwords come from 127.0.0.1 too, and the
    # well-behaved client must still bind. Everything else is the shipped default
    # (errors_before_bind 3, max_pdu_size 65536).
    cfg = config(security=SecurityConfig(lockout=0))
    thread = SmscThread(cfg)
    thread.start()
    assert thread.server is not None
    try:
        yield thread.server, trap
    finally:
        thread.stop()
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(trap)
            lg.setLevel(level)
    _assert_clean(trap.since(0))


def _assert_clean(lines: list[tuple[int, str]]) -> None:
    bad = [
        text
        for level, text in lines
        if level >= logging.ERROR or "Traceback" in text or "exception" in text.lower()
    ]
    assert not bad, "\n".join(bad)


def _probe(port: int) -> None:
    """A well-behaved client: bind, submit, submit_sm_resp, receipt, unbind."""
    esme = BlockingEsme(port)
    try:
        resp = esme.bind()
        assert resp.command_status == 0, resp
        resp = esme.request(sm())
        assert resp.command_status == 0, resp
        esme.receipt_for(resp.message_id)  # type: ignore[attr-defined]
        assert not esme.errors, esme.errors
    finally:
        esme.close()


_stream = esme_stream(max_size=10, max_seq=0x7FFFFFEF)  # the sentinel's number stays free


@fuzz_settings(80)
@given(
    bind=st.sampled_from([None, *BIND_CLASSES]),
    sent=_stream,
    split=st.booleans(),
)
def test_live_smsc_answers_mutated_pdus_and_keeps_serving(
    live: tuple[SmscServer, LogTrap], bind: type[Pdu] | None, sent: list[bytes], split: bool
) -> None:
    server, trap = live
    note(f"bind={bind} split={split} sent={sent!r}")
    mark = len(trap.lines)
    conn = RawConnection(server.port)
    try:
        if bind is not None:
            conn.send(bind(sequence_number=1, system_id="rapidpro", password="secret").encode())
            resp = conn.read_until(1, bind.command_id | 0x80000000)[-1]
            assert resp.command_status == 0, resp
        stream, whole, fatal = whole_stream(sent, MAX_PDU)
        if split:  # as separate writes, so that the server reads them apart too
            for frame in whole:
                conn.send(frame.data)
            if fatal is not None:
                conn.send(stream[sum(len(f.data) for f in whole) :])
        else:
            conn.send(stream)
        conn.send(conn.sentinel(_SENTINEL).encode())
        got = conn.read_until(_SENTINEL, ENQUIRE_LINK_RESP)
        closed = conn.closed_by_server
    finally:
        conn.close()
    answers = [p for p in got if p.is_response and p.sequence_number != _SENTINEL]
    if fatal is not None:
        # The framing error's answer, unless the server closed before reading that far.
        nack = GenericNack(fatal.seq, Status.ESME_RINVCMDLEN)
        if nack in answers:
            answers.remove(nack)
    for a in answers:
        assert a.command_status in _STATUSES, f"undocumented status in {a!r}"
    expected = [expectation(f) for f in whole]
    problems = match_answers(expected, answers, require_all=not closed, any_refusal=True)
    lines = trap.since(mark)
    mine = [text for _, text in lines if f"peer=127.0.0.1:{conn.local_port}" in text]
    if fatal is not None:
        assert closed, "a framing error must close the connection"
    if closed:
        assert any(
            word in text
            for text in mine
            for word in ("connection_closed", "unbind ", "fatal=True", "protocol_error")
        ), f"closed without saying why: {mine}"
    assert not problems, problems
    assert len(mine) <= len(whole) + 3, "more than one log line per frame:\n" + "\n".join(mine)
    _assert_clean(lines)
    _probe(server.port)
    _assert_clean(trap.since(mark))


def _receiver_and_sender(port: int) -> tuple[RawConnection, BlockingEsme]:
    """A raw receiver bind (it answers receipts as the test says) and a transmitter."""
    conn = RawConnection(port)
    rx = BIND_CLASSES[1](sequence_number=1, system_id="rapidpro", password="secret")
    conn.send(rx.encode())
    assert conn.read_until(1, CommandId.BIND_RECEIVER_RESP)[-1].command_status == 0
    sender = BlockingEsme(port)
    assert sender.bind(BIND_CLASSES[0]).command_status == 0
    return conn, sender


# --- findings, pinned -----------------------------------------------------------------------


def test_finding_bind_in_the_read_of_a_framing_error_is_closed(
    live: tuple[SmscServer, LogTrap],
) -> None:
    """A bind and a command_length of 0 in one write: the SMSC answers both and closes
    (it kept the connection open, bound as a receiver, on a stream it could no longer
    frame: the session's fix in test_fuzz_codec.py)."""
    server, trap = live
    mark = len(trap.lines)
    conn = RawConnection(server.port)
    try:
        bind = BIND_CLASSES[1](sequence_number=1, system_id="rapidpro", password="secret")
        conn.send(bind.encode() + bytes(16))
        got = conn.read_until(_SENTINEL, ENQUIRE_LINK_RESP)
        assert conn.closed_by_server
    finally:
        conn.close()
    assert GenericNack(0, Status.ESME_RINVCMDLEN) in got
    _assert_clean(trap.since(mark))
    _probe(server.port)


def test_finding_wrong_response_to_a_receipt_does_not_rebind_or_lose_it(
    live: tuple[SmscServer, LogTrap],
) -> None:
    """A receiver answers a receipt with bind_transmitter_resp (its sequence number,
    status 0): the SMSC logs a protocol error, keeps the bind a receiver, and the next
    receipt still reaches it. (It used to take that as the answer, count the receipt
    delivered and turn the bind into a transmitter: the next deliver_sm raised
    SessionStateError inside the server and that receipt was lost.)"""
    server, trap = live
    _probe(server.port)  # the account's queue drained of earlier examples' receipts
    mark = len(trap.lines)
    conn, sender = _receiver_and_sender(server.port)
    try:
        first = sender.request(sm())
        receipt = conn.read_pdus(lambda p: isinstance(p, DeliverSm))[-1]
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == first.message_id  # type: ignore[attr-defined]
        wrong = BIND_CLASSES[0].response_class(sequence_number=receipt.sequence_number)  # type: ignore[misc]
        conn.send(wrong.encode())
        second = sender.request(sm())
        again = conn.read_pdus(lambda p: isinstance(p, DeliverSm))[-1]
        assert again.tlvs[Tag.RECEIPTED_MESSAGE_ID] == second.message_id  # type: ignore[attr-defined]
        conn.send(receipt.response().encode() + again.response().encode())
        conn.send(EnquireLink(sequence_number=_SENTINEL).encode())
        conn.read_until(_SENTINEL, ENQUIRE_LINK_RESP)
        assert not conn.closed_by_server
    finally:
        conn.close()
        sender.close()
    lines = trap.since(mark)
    _assert_clean(lines)
    assert any(
        "bind_transmitter_resp" in text and "answers our deliver_sm" in text for _, text in lines
    )
    _probe(server.port)


def test_finding_submit_behind_an_unbind_is_not_accepted(
    live: tuple[SmscServer, LogTrap],
) -> None:
    """unbind and submit_sm in one write: the SMSC unbinds and refuses the submit
    (ESME_RINVBNDSTS). It used to accept the message (receipt and all) while the
    submit_sm_resp went nowhere: the client could only think it unsent."""
    server, trap = live
    mark = len(trap.lines)
    conn = RawConnection(server.port)
    try:
        trx = BIND_CLASSES[2](sequence_number=1, system_id="rapidpro", password="secret")
        conn.send(trx.encode())
        assert conn.read_until(1, CommandId.BIND_TRANSCEIVER_RESP)[-1].command_status == 0
        accepted = server.stats().accepted
        conn.send(Unbind(sequence_number=2).encode() + sm(sequence_number=3).encode())
        got = conn.read_until(3, CommandId.SUBMIT_SM_RESP)
    finally:
        conn.close()
    answers = {p.sequence_number: p for p in got if p.is_response}
    assert answers[2].command_id == CommandId.UNBIND_RESP
    assert answers[3].command_status == Status.ESME_RINVBNDSTS
    assert server.stats().accepted == accepted
    _assert_clean(trap.since(mark))
    _probe(server.port)


def test_finding_receipt_for_a_data_sm_with_a_long_address_is_well_formed(
    live: tuple[SmscServer, LogTrap],
) -> None:
    """Found by the live fuzzer: a data_sm to a 30-digit destination_addr is accepted and
    its receipt goes out as a deliver_sm whose source_addr has no NUL within 21 octets;
    the ESME's session refuses it (ESME_RINVSRCADR) and the receipt is lost. Either
    refusing such a data_sm (ESME_RINVDSTADR) or receipting it in a form that fits
    would pass."""
    server, _ = live
    _probe(server.port)  # the account's queue drained of earlier examples' receipts
    esme = BlockingEsme(server.port, tolerant=False)
    try:
        assert esme.bind().command_status == 0
        long = DataSm(
            source_addr="1442",
            source_addr_ton=3,
            destination_addr="2" * 30,
            dest_addr_ton=1,
            dest_addr_npi=1,
            registered_delivery=1,
        )
        resp = esme.request(long)
        if resp.command_status == 0:
            esme.wait(lambda: esme.delivered or esme.errors, "receipt")
        assert not esme.errors, esme.errors
    finally:
        esme.close()


def test_finding_generic_nack_with_status_0_does_not_count_a_receipt_delivered(
    live: tuple[SmscServer, LogTrap],
) -> None:
    """A receiver that answers a receipt with generic_nack (ESME_ROK, a contradiction:
    generic_nack says the PDU could not be processed) has not taken it: the SMSC should
    deliver it again (as for any other generic_nack), not count it delivered."""
    server, _ = live
    _probe(server.port)
    conn, sender = _receiver_and_sender(server.port)
    try:
        delivered = server.stats().receipts_delivered
        sender.request(sm())
        receipt = conn.read_pdus(lambda p: isinstance(p, DeliverSm))[-1]
        conn.send(GenericNack(receipt.sequence_number, 0).encode())
        conn.send(EnquireLink(sequence_number=_SENTINEL).encode())
        conn.read_until(_SENTINEL, ENQUIRE_LINK_RESP)
        assert server.stats().receipts_delivered == delivered
    finally:
        conn.close()
        sender.close()
