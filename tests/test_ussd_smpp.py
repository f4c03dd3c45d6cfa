"""USSD over SMPP at the fake SMSC, with smpplib 2.2.4 as the platform's ESME.

smpplib encodes ussd_service_op / its_session_info in its submit_sm and decodes them in
our deliver_sm, so the TLVs are checked by a codec nobody here wrote. Quirk worked
around: smpplib's deliver_sm table lacks ussd_service_op (it knows the tag but raises
KeyError parsing it), so the test adds the entry the spec gives it (1 octet).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.command
import smpplib.consts as c

from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig, UssdConfig
from simulator.smsc.server import SmscServer, SmscThread
from simulator.ussd.network import UssdNetwork, UssdRecorder

pytestmark = pytest.mark.timeout(60)

A = "201001234567"
B = "201201234567"
USSR_REQUEST, PSSR_RESPONSE, PSSR_INDICATION, USSR_CONFIRM = 2, 17, 1, 18


@pytest.fixture(autouse=True)
def _smpplib_knows_ussd_in_deliver_sm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        smpplib.command.DeliverSM.params,
        "ussd_service_op",
        smpplib.command.Param(type=int, size=1),
    )


def config(**ussd: Any) -> SmscConfig:
    return SmscConfig(
        operators=[
            OperatorConfig(port=0, receipt=ReceiptConfig(delay=0.01), ussd=UssdConfig(**ussd))
        ]
    )


class Platform:
    """smpplib bound as a transceiver: what it received and the answers to its submits."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client(
            "127.0.0.1", port, timeout=3.0, allow_unknown_opt_params=True
        )
        self.delivered: list[Any] = []
        self.responses: list[Any] = []
        self.client.set_message_received_handler(lambda pdu, **kw: self.delivered.append(pdu))
        self.client.set_message_sent_handler(lambda pdu, **kw: self.responses.append(pdu))
        self.client.set_error_pdu_handler(lambda pdu: self.responses.append(pdu))

    def read_until(self, pred: Callable[[], object], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            self.client.read_once(auto_send_enquire_link=False)

    def screen(self, to: str, text: str, op: int, session_info: int | None) -> int:
        """Submit a screen; returns the submit_sm_resp command_status."""
        before = len(self.responses)
        kw: dict[str, Any] = {}
        if session_info is not None:
            kw["its_session_info"] = session_info
        self.client.send_message(
            source_addr_ton=c.SMPP_TON_SBSCR,
            source_addr="1442",
            dest_addr_ton=c.SMPP_TON_INTL,
            destination_addr=to,
            short_message=text.encode(),
            ussd_service_op=op,
            **kw,
        )
        self.read_until(lambda: len(self.responses) > before)
        return int(self.responses[-1].status)


@contextlib.contextmanager
def platform(smsc: SmscThread) -> Iterator[Platform]:
    p = Platform(smsc.port)
    p.client.connect()
    p.client.bind_transceiver(system_id="rapidpro", password="secret")
    try:
        yield p
    finally:
        with contextlib.suppress(Exception):
            p.client.unbind()
        p.client.disconnect()


def network(smsc: SmscThread) -> UssdNetwork:
    assert smsc.server is not None
    return smsc.server.ussd()


def recorder(smsc: SmscThread) -> UssdRecorder:
    handset = network(smsc).handset
    assert isinstance(handset, UssdRecorder)
    return handset


def test_a_dialogue_end_to_end_with_smpplib_as_the_platform() -> None:
    with SmscThread(config()) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        assert session is not None
        p.read_until(lambda: p.delivered)
        dial = p.delivered[0]
        assert int(dial.ussd_service_op) == PSSR_INDICATION
        assert dial.source_addr == A.encode() and dial.destination_addr == b"1442"
        assert dial.short_message == b"*1442#" and dial.service_type == b"USSD"
        number = session.number
        assert int(dial.its_session_info) == number << 8  # sequence 0, not the end

        assert p.screen(A, "1 status\n2 payment date", USSR_REQUEST, number << 8) == 0
        wait = time.monotonic() + 2
        while not recorder(smsc).of(A) and time.monotonic() < wait:
            time.sleep(0.01)
        (shown,) = recorder(smsc).of(A)
        assert shown.text == "1 status\n2 payment date" and not shown.final

        assert smsc.call(network(smsc).answer, A, "2")
        p.read_until(lambda: len(p.delivered) == 2)
        reply = p.delivered[1]
        assert int(reply.ussd_service_op) == USSR_CONFIRM and reply.short_message == b"2"
        assert int(reply.its_session_info) == number << 8 | 1 << 1  # sequence 1

        assert p.screen(A, "Next payment: 15 Jan", PSSR_RESPONSE, number << 8 | 1) == 0
        wait = time.monotonic() + 2
        while len(recorder(smsc).of(A)) < 2 and time.monotonic() < wait:
            time.sleep(0.01)
        last = recorder(smsc).of(A)[-1]
        assert last.final and last.release == "completed" and last.text == "Next payment: 15 Jan"
        assert smsc.call(lambda: len(network(smsc).sessions)) == 0
        # USSD screens are not SMS: nothing reached the SMS handset side or got a receipt
        assert server.recorder.completed == 0


def test_bad_ussd_submits_are_answered_with_the_right_status() -> None:
    with SmscThread(config()) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        p.read_until(lambda: p.delivered)
        n = session.number
        assert p.screen(B, "no session here", USSR_REQUEST, 0) == c.SMPP_ESME_RSUBMITFAIL
        assert p.screen(A, "wrong session", USSR_REQUEST, (n + 1) % 256 << 8) == 0xC4
        assert p.screen(A, "an indication", PSSR_INDICATION, n << 8) == 0xC4  # not for submits
        assert p.screen(A, "no session info", USSR_REQUEST, None) == 0xC3  # RMISSINGOPTPARAM
        assert p.screen(A, "x" * 183, USSR_REQUEST, n << 8) == c.SMPP_ESME_RINVMSGLEN
        assert p.screen(A, "x" * 182, USSR_REQUEST, n << 8) == 0  # the limit itself is fine
        assert p.screen(A, "out of turn", USSR_REQUEST, n << 8) == c.SMPP_ESME_RSUBMITFAIL


def test_ussd_service_op_of_wrong_length_is_rinvparlen_on_the_wire() -> None:
    """A TLV smpplib would never send: written as raw bytes on its bound socket."""
    with SmscThread(config()) as smsc, platform(smsc) as p:
        body = (
            b"\0\x01\x011442\0\x01\x01" + A.encode() + b"\0"
            b"\0\0\0\0\0\0\0\0\0\x02hi"
            b"\x05\x01\x00\x02\x00\x02"  # ussd_service_op with two octets
            b"\x13\x83\x00\x02\x00\x00"
        )
        pdu = struct.pack(">IIII", 16 + len(body), 0x00000004, 0, 4242) + body
        sock: socket.socket = p.client._socket  # smpplib has no raw-send API
        sock.sendall(pdu)
        resp = p.client.read_pdu()
        assert resp.command == "submit_sm_resp" and resp.sequence == 4242
        assert int(resp.status) == 0xC2  # ESME_RINVPARLEN


def test_one_session_per_subscriber() -> None:
    with SmscThread(config()) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        assert smsc.call(server.ussd_dial, A) is not None
        assert smsc.call(server.ussd_dial, A) is None
        assert smsc.call(server.ussd_dial, B) is not None
        p.read_until(lambda: len(p.delivered) == 2)
        assert {d.source_addr for d in p.delivered} == {A.encode(), B.encode()}


def test_slow_platform_released_by_the_network_and_told() -> None:
    with SmscThread(config(app_timeout=0.2)) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        started = time.monotonic()
        p.read_until(lambda: len(p.delivered) == 2)
        elapsed = time.monotonic() - started
        release = p.delivered[1]
        assert 0.15 <= elapsed < 1.5
        assert int(release.its_session_info) & 1 == 1 and release.short_message == b""
        assert recorder(smsc).of(A)[-1].release == "app_timeout"
        # the platform's late screen finds the session gone
        assert p.screen(A, "too late", USSR_REQUEST, session.number << 8) == 0x45


def test_silent_subscriber_released_at_screen_timeout() -> None:
    with SmscThread(config(screen_timeout=0.2)) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        p.read_until(lambda: p.delivered)
        assert p.screen(A, "1 status", USSR_REQUEST, session.number << 8) == 0
        shown = time.monotonic()
        p.read_until(lambda: len(p.delivered) == 2)
        assert 0.15 <= time.monotonic() - shown < 1.5
        assert int(p.delivered[1].its_session_info) & 1 == 1
        assert recorder(smsc).of(A)[-1].release == "screen_timeout"
        assert not smsc.call(network(smsc).answer, A, "1")


def test_another_operators_convention_end_bit_destination_dial_pssr_replies() -> None:
    """An SMSC that puts the dialled code in destination_addr, sends every input as a
    PSSR indication, and reads the end of a session from its_session_info only."""
    cfg = config(dial_in="destination", reply_op=1, end_by="session_info", service_type="")
    with SmscThread(cfg) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        p.read_until(lambda: p.delivered)
        dial = p.delivered[0]
        assert dial.destination_addr == b"*1442#" and dial.short_message in (b"", None)
        assert dial.service_type in (b"", None)
        n = session.number
        # PSSR response without the end bit continues under this convention
        assert p.screen(A, "1 status", PSSR_RESPONSE, n << 8) == 0
        assert smsc.call(network(smsc).answer, A, "1")
        p.read_until(lambda: len(p.delivered) == 2)
        assert int(p.delivered[1].ussd_service_op) == PSSR_INDICATION
        # USSR request with the end bit ends it
        assert p.screen(A, "bye", USSR_REQUEST, n << 8 | 1 << 1 | 1) == 0
        wait = time.monotonic() + 2
        while len(recorder(smsc).of(A)) < 2 and time.monotonic() < wait:
            time.sleep(0.01)
        assert recorder(smsc).of(A)[-1].release == "completed"


def test_ussn_notification_is_acknowledged_by_the_handset() -> None:
    with SmscThread(config()) as smsc, platform(smsc) as p:
        server: SmscServer = smsc.server  # type: ignore[assignment]
        session = smsc.call(server.ussd_dial, A)
        p.read_until(lambda: p.delivered)
        assert p.screen(A, "Payment sent today", 3, session.number << 8) == 0  # USSN request
        p.read_until(lambda: len(p.delivered) == 2)
        ack = p.delivered[1]
        assert int(ack.ussd_service_op) == 19 and ack.short_message in (b"", None)  # confirm
        # the platform's turn again: it may end the session
        assert p.screen(A, "Bye", PSSR_RESPONSE, session.number << 8 | 1 << 1) == 0
