"""The sans-IO session: bind states, windows, answers to bad input, keep-alive."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.smpp.constants import CommandId, Status
from simulator.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    GenericNack,
    SubmitSm,
    Unbind,
    decode_pdu,
)
from simulator.smpp.session import (
    BindState,
    LinkDead,
    PduReceived,
    ProtocolError,
    RequestRejected,
    ResponseReceived,
    ResponseTimeout,
    Role,
    Session,
    SessionStateError,
    Unbound,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pair(**kw: object) -> tuple[Session, Session, FakeClock]:
    clock = FakeClock()
    return Session(Role.SMSC, clock=clock, **kw), Session(Role.ESME, clock=clock), clock  # type: ignore[arg-type]


def bind(smsc: Session, esme: Session, cls: type = BindTransceiver) -> None:
    esme.send(cls(system_id="rapidpro", password="secret"))
    (ev,) = smsc.receive_data(esme.data_to_send())
    assert isinstance(ev, PduReceived)
    smsc.send(ev.pdu.response(system_id="smsim"))
    (resp,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(resp, ResponseReceived)


def answers(session: Session) -> list:
    data = session.data_to_send()
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append(decode_pdu(data[pos : pos + length]))
        pos += length
    return out


@pytest.mark.parametrize(
    ("cls", "state"),
    [
        (BindTransmitter, BindState.BOUND_TX),
        (BindReceiver, BindState.BOUND_RX),
        (BindTransceiver, BindState.BOUND_TRX),
    ],
)
def test_bind_moves_both_sides(cls: type, state: BindState) -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme, cls)
    assert smsc.state is state and esme.state is state


def test_submit_before_bind_is_invbndsts() -> None:
    smsc, _esme, _ = pair()
    raw = SubmitSm(sequence_number=5, destination_addr="2010").encode()
    (ev,) = smsc.receive_data(raw)
    assert isinstance(ev, RequestRejected) and ev.status == Status.ESME_RINVBNDSTS
    (resp,) = answers(smsc)
    assert resp.command_id == CommandId.SUBMIT_SM_RESP and resp.sequence_number == 5
    assert resp.command_status == Status.ESME_RINVBNDSTS


def test_receiver_may_not_submit() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme, BindReceiver)
    (ev,) = smsc.receive_data(SubmitSm(sequence_number=9).encode())
    assert isinstance(ev, RequestRejected) and ev.status == Status.ESME_RINVBNDSTS
    with pytest.raises(SessionStateError):
        esme.send(SubmitSm())


def test_second_bind_is_alybnd() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    (ev,) = smsc.receive_data(BindTransmitter(sequence_number=77).encode())
    assert isinstance(ev, RequestRejected) and ev.status == Status.ESME_RALYBND


def test_transmitter_never_gets_deliver_sm() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme, BindTransmitter)
    with pytest.raises(SessionStateError):
        smsc.send(DeliverSm())


def test_pipelined_pdus_split_anywhere_are_framed() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    for i in range(5):
        esme.send(SubmitSm(destination_addr=f"20100000000{i}", short_message=b"x" * i))
    data = esme.data_to_send()
    events = []
    for i in range(0, len(data), 7):
        events += smsc.receive_data(data[i : i + 7])
    assert [e.pdu.destination_addr for e in events] == [f"20100000000{i}" for i in range(5)]


def test_window_blocks_the_eleventh_request_and_frees_on_response() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    for _ in range(10):
        esme.send(SubmitSm(destination_addr="2010"))
    assert esme.window_free == 0
    with pytest.raises(SessionStateError):
        esme.send(SubmitSm(destination_addr="2010"))
    events = smsc.receive_data(esme.data_to_send())
    smsc.send(events[0].pdu.response(message_id="1"))
    (got,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(got, ResponseReceived) and esme.window_free == 1


def test_inbound_window_overflow_is_msgqful() -> None:
    smsc, esme, _ = pair(inbound_window=2)
    bind(smsc, esme)
    data = b"".join(
        SubmitSm(sequence_number=i, destination_addr="2010").encode() for i in (11, 12, 13)
    )
    events = smsc.receive_data(data)
    assert [type(e) for e in events] == [PduReceived, PduReceived, RequestRejected]
    (resp,) = answers(smsc)
    assert (resp.sequence_number, resp.command_status) == (13, Status.ESME_RMSGQFUL)
    smsc.send(events[0].pdu.response(message_id="1"))
    assert smsc.pending_inbound == 1


def test_oversized_length_nacks_and_closes_without_reading_body() -> None:
    smsc, _, _ = pair(max_pdu_size=1024)
    (ev,) = smsc.receive_data(struct.pack(">IIII", 5000, 4, 0, 1))
    assert isinstance(ev, ProtocolError) and ev.fatal
    (nack,) = answers(smsc)
    assert isinstance(nack, GenericNack) and nack.command_status == Status.ESME_RINVCMDLEN
    assert smsc.closed
    assert smsc.receive_data(b"more") == []


def test_undersized_length_is_fatal_too() -> None:
    smsc, _, _ = pair()
    (ev,) = smsc.receive_data(struct.pack(">IIII", 8, 4, 0, 1))
    assert isinstance(ev, ProtocolError) and ev.fatal


def test_unknown_command_nacks_and_keeps_going() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    data = (
        struct.pack(">IIII", 20, 0x0000BEEF, 0, 3)
        + b"abcd"
        + EnquireLink(sequence_number=4).encode()
    )
    (ev,) = smsc.receive_data(data)
    assert isinstance(ev, ProtocolError) and not ev.fatal
    nack, link = answers(smsc)
    assert (nack.command_status, nack.sequence_number) == (Status.ESME_RINVCMDID, 3)
    assert link.command_id == CommandId.ENQUIRE_LINK_RESP and link.sequence_number == 4


def test_malformed_body_gets_the_commands_own_response() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    bad = bytearray(SubmitSm(sequence_number=8, short_message=b"hello").encode())
    bad[-6] = 250
    (ev,) = smsc.receive_data(bytes(bad))
    assert isinstance(ev, ProtocolError)
    (resp,) = answers(smsc)
    assert resp.command_id == CommandId.SUBMIT_SM_RESP
    assert (resp.sequence_number, resp.command_status) == (8, Status.ESME_RINVMSGLEN)


def test_unbind_from_peer() -> None:
    smsc, esme, _ = pair()
    bind(smsc, esme)
    esme.send(Unbind())
    (ev,) = smsc.receive_data(esme.data_to_send())
    assert isinstance(ev, Unbound) and smsc.state is BindState.UNBOUND
    resp_ev = esme.receive_data(smsc.data_to_send())
    assert isinstance(resp_ev[0], ResponseReceived) and isinstance(resp_ev[1], Unbound)


def test_enquire_link_sent_when_idle_and_link_dead_when_unanswered() -> None:
    smsc, esme, clock = pair(enquire_link_interval=30.0, response_timeout=10.0)
    bind(smsc, esme)
    clock.t += 31
    assert smsc.tick() == []
    (link,) = answers(smsc)
    assert isinstance(link, EnquireLink)
    clock.t += 11
    events = smsc.tick()
    assert any(isinstance(e, LinkDead) for e in events)


def test_enquire_link_answered_keeps_link() -> None:
    smsc, esme, clock = pair(enquire_link_interval=30.0, response_timeout=10.0)
    bind(smsc, esme)
    clock.t += 31
    smsc.tick()
    esme.receive_data(smsc.data_to_send())
    smsc.receive_data(esme.data_to_send())
    clock.t += 11
    assert smsc.tick() == []


def test_unanswered_deliver_times_out() -> None:
    smsc, esme, clock = pair(response_timeout=5.0, enquire_link_interval=None)
    bind(smsc, esme)
    smsc.send(DeliverSm(source_addr="2010", destination_addr="1442"))
    clock.t += 6
    (ev,) = smsc.tick()
    assert isinstance(ev, ResponseTimeout) and isinstance(ev.request, DeliverSm)
    assert smsc.window_free == smsc.window


def test_inactivity_timeout() -> None:
    smsc, esme, clock = pair(inactivity_timeout=60.0, enquire_link_interval=None)
    bind(smsc, esme)
    clock.t += 61
    assert any(isinstance(e, LinkDead) for e in smsc.tick())


def test_sequence_numbers_wrap() -> None:
    _, esme, _ = pair()
    esme._next_seq = 0x7FFFFFFF
    assert esme.next_sequence() == 0x7FFFFFFF
    assert esme.next_sequence() == 1


_EVENTS = (
    PduReceived,
    ResponseReceived,
    ProtocolError,
    RequestRejected,
    ResponseTimeout,
    LinkDead,
    Unbound,
)


def _chunk() -> st.SearchStrategy[bytes]:
    """Raw noise, whole PDUs of every type, and PDUs with a byte changed past the length."""
    from tests.test_pdu import _pdus

    whole = _pdus().map(lambda p: p.encode())
    hit = st.tuples(whole, st.integers(4, 400), st.integers(0, 255)).map(
        lambda t: t[0][: t[1] % len(t[0])] + bytes((t[2],)) + t[0][t[1] % len(t[0]) + 1 :]
    )
    return st.one_of(st.binary(max_size=120), whole, hit)


@settings(max_examples=400, deadline=None)
@given(st.lists(_chunk(), max_size=8), st.booleans())
def test_session_fed_arbitrary_bytes_never_raises(chunks: list[bytes], bound: bool) -> None:
    """Whatever the peer sends, receive_data returns events (never raises), and every
    answer the session queues is itself a well-formed PDU."""
    smsc, esme, _ = pair(max_pdu_size=4096)
    if bound:
        bind(smsc, esme)
    for chunk in chunks:
        events = smsc.receive_data(chunk)
        assert all(isinstance(ev, _EVENTS) for ev in events)
        for answer in answers(smsc):
            assert answer.sequence_number >= 0
        if smsc.closed:
            assert smsc.receive_data(b"\0" * 32) == []
            break
