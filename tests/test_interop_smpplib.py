"""The fake SMSC against smpplib 2.2.4, a blocking SMPP client nobody here wrote.

The SMSC runs in its own thread and loop (``SmscThread``); smpplib drives plain sockets
with a 3 s timeout, so a missing PDU fails the test instead of hanging it. Messages are
encoded and split by smpplib itself (``smpplib.gsm.make_parts``: GSM 7-bit or UCS-2 with
a 6-octet UDH) and what it receives is decoded here from its raw fields, so nothing is
checked with our own codec.

Client quirks worked around:
- ``Client.unbind()`` returns whatever PDU comes next, not necessarily unbind_resp: every
  test waits for all it expects before unbinding, then asserts the reply is unbind_resp.
- smpplib has no receipt parser: the id is read from ``receipted_message_id`` and from
  the Appendix B text; no reassembly either: MO parts are joined here by UDH or SAR.
- ``allow_unknown_opt_params=True`` (the SMPP 3.4 rule: ignore unknown TLVs) silences
  its deprecation warning; every TLV the SMSC sends is one smpplib knows anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from simulator.smsc.server import SmscThread
from tests.support.peers import (
    GSM_TEXT,
    HANDSET,
    MO_ARABIC_ONE,
    MO_FEEDBACK,
    MO_FRANCO,
    MO_YES,
    OTHER_HANDSET,
    PASSWORD,
    QUIZ_QUESTION,
    SHORT_CODE,
    SYSTEM_ID,
    smsc_config,
    wait_until,
)
from tests.support.smpplib_peer import (
    SOCKET_TIMEOUT,
    Peer,
    assert_clean,
    binds,
    bound,
    srv,
)

pytestmark = pytest.mark.timeout(60)

MODES = ("transmitter", "receiver", "transceiver")
BOUND_STATE = {
    "transmitter": c.SMPP_CLIENT_STATE_BOUND_TX,
    "receiver": c.SMPP_CLIENT_STATE_BOUND_RX,
    "transceiver": c.SMPP_CLIENT_STATE_BOUND_TRX,
}


@pytest.fixture
def smsc() -> Iterator[SmscThread]:
    with SmscThread(smsc_config()) as thread:
        yield thread


def udh_concat(short_message: bytes) -> tuple[int, int, int, bytes]:
    """(ref, total, seq, body) from a concatenation UDH: 8-bit (IE 00) or 16-bit ref (IE 08)."""
    udhl = short_message[0]
    ie = short_message[1:3]
    if ie == b"\x00\x03":
        ref, total, seq = short_message[3:6]
    else:
        assert ie == b"\x08\x04", short_message[: udhl + 1].hex()
        ref = int.from_bytes(short_message[3:5], "big")
        total, seq = short_message[5:7]
    return ref, total, seq, short_message[1 + udhl :]


# --- 1. binds ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_bind_in_each_mode_and_wrong_password_is_rinvpaswd(smsc: SmscThread, mode: str) -> None:
    with bound(smsc, mode) as peer:
        assert peer.client.state == BOUND_STATE[mode]
        assert binds(smsc) == 1
    wrong = Peer(smsc.port)
    wrong.client.connect()
    try:
        with pytest.raises(smpplib.exceptions.PDUError) as err:
            getattr(wrong.client, f"bind_{mode}")(system_id=SYSTEM_ID, password="wrong")
        assert err.value.args[1] == c.SMPP_ESME_RINVPASWD == 0x0E
        assert wrong.client.state == c.SMPP_CLIENT_STATE_OPEN  # not bound
    finally:
        wrong.client.disconnect()
    wait_until(lambda: binds(smsc) == 0)
    stats = smsc.call(srv(smsc).stats)
    assert (stats.binds, stats.bind_failures) == (1, 1)
    assert_clean(smsc)


# --- 2. GSM 7-bit submit and its receipt -------------------------------------------------


def check_receipt(receipt: Any, message_id: str, handset: str = HANDSET) -> None:
    assert receipt.receipted_message_id.decode() == message_id
    assert receipt.message_state == c.SMPP_MESSAGE_STATE_DELIVERED
    text = receipt.short_message.decode("ascii")
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:"), text
    assert " stat:DELIVRD err:000 text:" in text
    assert receipt.source_addr.decode() == handset
    assert receipt.destination_addr.decode() == SHORT_CODE


def test_gsm_submit_on_transceiver_gets_id_and_matching_receipt(smsc: SmscThread) -> None:
    parts, coding, esm_class = smpplib.gsm.make_parts(GSM_TEXT)
    assert (len(parts), coding, esm_class) == (1, c.SMPP_ENCODING_DEFAULT, 0)
    with bound(smsc, "transceiver") as peer:
        request = peer.submit(parts[0], data_coding=coding, esm_class=esm_class)
        peer.read_until(lambda: peer.responses and peer.receipts())
        resp = peer.response_to(request)
        assert resp.status == c.SMPP_ESME_ROK and resp.message_id
        message_id = resp.message_id.decode()
        (receipt,) = peer.receipts()
        check_receipt(receipt, message_id)
    (mt,) = smsc.call(srv(smsc).recorder.messages)
    assert mt.text == GSM_TEXT
    assert (mt.data_coding, mt.parts, mt.message_ids) == (0, 1, (message_id,))
    assert mt.destination_addr == HANDSET
    assert_clean(smsc)


def test_submit_on_transmitter_receipt_on_separate_receiver(smsc: SmscThread) -> None:
    texts = {HANDSET: GSM_TEXT, OTHER_HANDSET: "Wa'y health tip 4: wash hands"}
    with bound(smsc, "receiver") as rx, bound(smsc, "transmitter") as tx:
        requests = {}
        for handset, text in texts.items():
            (part,), coding, esm_class = smpplib.gsm.make_parts(text)
            requests[handset] = tx.submit(
                part, data_coding=coding, esm_class=esm_class, destination_addr=handset
            )
        tx.read_until(lambda: len(tx.responses) == 2)
        ids = {h: tx.response_to(r).message_id.decode() for h, r in requests.items()}
        assert len(set(ids.values())) == 2
        rx.read_until(lambda: len(rx.receipts()) == 2)
        for receipt in rx.receipts():
            handset = receipt.source_addr.decode()
            check_receipt(receipt, ids[handset], handset)
        tx.quiet_for(0.1)
        assert tx.delivered == []  # nothing goes to a transmitter
    assert_clean(smsc)


# --- 3. a 3-part Arabic quiz question, segmented by smpplib -------------------------------


def test_three_part_arabic_udh_submit_is_reassembled_exactly(smsc: SmscThread) -> None:
    parts, coding, esm_class = smpplib.gsm.make_parts(QUIZ_QUESTION)
    assert (len(parts), coding, esm_class) == (3, c.SMPP_ENCODING_ISO10646, c.SMPP_GSMFEAT_UDHI)
    with bound(smsc, "transceiver") as peer:
        # Like Kannel: a receipt for the first part only.
        requests = [
            peer.submit(
                part, data_coding=coding, esm_class=esm_class, registered_delivery=int(i == 0)
            )
            for i, part in enumerate(parts)
        ]
        peer.read_until(lambda: len(peer.responses) == 3 and peer.receipts())
        ids = tuple(peer.response_to(r).message_id.decode() for r in requests)
        assert len(set(ids)) == 3
        (receipt,) = peer.receipts()
        assert receipt.receipted_message_id.decode() == ids[0]
        peer.quiet_for(0.2)
        assert len(peer.receipts()) == 1  # parts 2 and 3 asked for none
    (mt,) = smsc.call(srv(smsc).recorder.messages)
    assert mt.text == QUIZ_QUESTION
    assert (mt.parts, mt.data_coding, mt.message_ids) == (3, 8, ids)
    assert mt.destination_addr == HANDSET
    assert_clean(smsc)


# --- 4. MO: Arabic replies to 1442 ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["receiver", "transceiver"])
def test_short_arabic_mo_arabic_indic_digit_and_franco(smsc: SmscThread, mode: str) -> None:
    with bound(smsc, mode) as peer:
        smsc.call(srv(smsc).inject_mo, HANDSET, MO_YES)
        smsc.call(srv(smsc).inject_mo, OTHER_HANDSET, MO_ARABIC_ONE)
        smsc.call(srv(smsc).inject_mo, HANDSET, MO_FRANCO)
        peer.read_until(lambda: len(peer.mo()) == 3)
        yes, one, franco = peer.mo()
        got = [
            (p.source_addr.decode(), p.data_coding, p.short_message.decode("utf-16-be"))
            for p in (yes, one)
        ]
        assert got == [(HANDSET, 8, MO_YES), (OTHER_HANDSET, 8, MO_ARABIC_ONE)]
        # GSM 7-bit: the septets smpplib's own GSM table gives for the original text.
        assert franco.data_coding == c.SMPP_ENCODING_DEFAULT
        assert franco.short_message == smpplib.gsm.gsm_encode(MO_FRANCO)
        for p in peer.mo():
            assert p.destination_addr.decode() == SHORT_CODE
            assert (p.source_addr_ton, p.source_addr_npi) == (c.SMPP_TON_INTL, c.SMPP_NPI_ISDN)
        wait_until(lambda: smsc.call(srv(smsc).stats).mo_delivered == 3)
    assert_clean(smsc)


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_long_arabic_mo_is_reassembled_from_its_parts(smsc: SmscThread, concat: str) -> None:
    with bound(smsc, "receiver") as peer:
        queued = smsc.call(srv(smsc).inject_mo, HANDSET, MO_FEEDBACK, concat=concat)
        assert len(queued) == 3
        peer.read_until(lambda: len(peer.mo()) == 3)
    segments = {}
    for p in peer.mo():
        assert p.data_coding == 8 and p.source_addr.decode() == HANDSET
        if concat.startswith("udh"):
            assert p.esm_class & c.SMPP_GSMFEAT_UDHI
            ref, total, seq, body = udh_concat(p.short_message)
        else:
            assert not p.esm_class & c.SMPP_GSMFEAT_UDHI
            ref, total, seq = p.sar_msg_ref_num, p.sar_total_segments, p.sar_segment_seqnum
            body = p.short_message
        assert total == 3
        segments[seq] = (ref, body)
    assert sorted(segments) == [1, 2, 3]
    assert len({ref for ref, _ in segments.values()}) == 1
    whole = b"".join(segments[s][1] for s in (1, 2, 3))
    assert whole.decode("utf-16-be") == MO_FEEDBACK
    assert_clean(smsc)


# --- 5. enquire_link and unbind ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_enquire_link_is_answered_and_unbind_is_clean(smsc: SmscThread, mode: str) -> None:
    with bound(smsc, mode) as peer:
        for _ in range(2):
            request = smpplib.smpp.make_pdu("enquire_link", client=peer.client)
            peer.client.send_pdu(request)
            resp = peer.client.read_pdu()
            assert (resp.command, resp.status) == ("enquire_link_resp", c.SMPP_ESME_ROK)
            assert resp.sequence == request.sequence
    # bound() checked unbind_resp; the SMSC forgets the bind.
    wait_until(lambda: binds(smsc) == 0)
    assert_clean(smsc)


def test_smsc_closes_the_connection_after_unbind(smsc: SmscThread) -> None:
    peer = Peer(smsc.port)
    peer.client.connect()
    try:
        peer.client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        resp = peer.client.unbind()
        assert (resp.command, resp.status) == ("unbind_resp", c.SMPP_ESME_ROK)
        sock = peer.client._socket
        assert sock is not None
        sock.settimeout(SOCKET_TIMEOUT)
        try:
            assert sock.recv(1) == b""  # orderly close by the SMSC, no stray PDU
        except TimeoutError:
            pytest.fail("the SMSC kept the connection open after unbind_resp")
    finally:
        peer.client.disconnect()
    assert_clean(smsc)


def test_smsc_enquire_link_is_answered_by_the_client() -> None:
    # The SMSC pings an idle bind (ticks are 1 s apart) and drops it if unanswered in 1 s.
    cfg = smsc_config(enquire_link_interval=0.5, response_timeout=1.0)
    with SmscThread(cfg) as smsc, bound(smsc, "receiver") as peer:
        seen: list[int] = []
        answer = peer.client._enquire_link_received  # smpplib's own answer, observed

        def observe(pdu: Any) -> None:
            seen.append(pdu.sequence)
            answer(pdu)

        peer.client._enquire_link_received = observe  # type: ignore[method-assign]
        peer.read_until(lambda: len(seen) >= 2, timeout=6)
        assert len(set(seen)) == len(seen)
        stats = smsc.call(srv(smsc).stats)
        assert stats.connections == 1 and binds(smsc) == 1  # never dropped as dead
        assert_clean(smsc)


# --- 6. alert_notification -----------------------------------------------------------------


def _raw_data_sm_with_set_dpf(port: int, destination: str) -> int:
    """Bind a transmitter and send data_sm with set_dpf=1 from literal bytes (smpplib's
    DataSM has no set_dpf parameter); returns the data_sm_resp status."""
    import socket
    import struct

    def pdu(command_id: int, seq: int, body: bytes) -> bytes:
        return struct.pack(">IIII", 16 + len(body), command_id, 0, seq) + body

    def read(sock: socket.socket) -> tuple[int, int, bytes]:
        head = b""
        while len(head) < 16:
            head += sock.recv(16 - len(head))
        length, command_id, status, _seq = struct.unpack(">IIII", head)
        body = b""
        while len(body) < length - 16:
            body += sock.recv(length - 16 - len(body))
        return command_id, status, body

    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(pdu(0x00000002, 1, b"rapidpro\0secret\0\0\x34\x00\x00\0"))
        assert read(sock)[:2] == (0x80000002, 0)
        body = (
            b"\0"  # service_type
            + b"\x03\x00"
            + SHORT_CODE.encode()
            + b"\0"
            + b"\x01\x01"
            + destination.encode()
            + b"\0"
            + b"\x00\x01\x00"  # esm_class, registered_delivery=1, data_coding
            + b"\x04\x21\x00\x01\x01"  # set_dpf = 1
            + b"\x04\x24\x00\x05hello"  # message_payload
        )
        sock.sendall(pdu(0x00000103, 2, body))
        command_id, status, _ = read(sock)
        assert command_id == 0x80000103
        sock.sendall(pdu(0x00000006, 3, b""))
        read(sock)
        return status


def test_alert_notification_after_an_expired_set_dpf_message_reaches_smpplib() -> None:
    with SmscThread(smsc_config(receipt={"delay": 0.01, "stat": "EXPIRED"})) as smsc:
        with bound(smsc, "receiver") as peer:
            assert _raw_data_sm_with_set_dpf(smsc.port, HANDSET) == c.SMPP_ESME_ROK
            peer.read_until(lambda: len(peer.receipts()) == 1)
            assert b"stat:EXPIRED" in peer.receipts()[0].short_message
            # The handset comes back: one alert_notification, decoded by smpplib.
            assert smsc.call(srv(smsc).handset_available, HANDSET) == 1
            peer.read_until(lambda: len(peer.delivered) == 2)
            alert = peer.delivered[1]
            assert alert.command == "alert_notification"
            assert (alert.source_addr_ton, alert.source_addr_npi) == (1, 1)
            assert alert.source_addr == HANDSET.encode()
            assert (alert.esme_addr_ton, alert.esme_addr_npi) == (3, 0)
            assert alert.esme_addr == SHORT_CODE.encode()
            assert alert.ms_availability_status == 0
            # The flag is cleared by the alert: a second "back" sends nothing.
            assert smsc.call(srv(smsc).handset_available, HANDSET) == 0
        assert_clean(smsc)
