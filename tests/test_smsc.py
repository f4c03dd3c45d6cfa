"""The fake SMSC end to end over loopback, driven by the project's own asyncio ESME.

Interoperability with clients nobody here wrote is in test_interop_*.py; these tests
pin the SMSC's behaviour: auth, receipts, MO queuing, throttling, windows, query/cancel/
replace, bad input, and that nothing accepted is lost when a receiver drops.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from simulator.config import AccountConfig, ReceiptConfig, SmscConfig
from simulator.esme.client import EsmeClient, SmppClientError
from simulator.smpp.constants import CommandId, EsmClass, MessageState, Status, Tag
from simulator.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    CancelSm,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    MultiDest,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    Unbind,
    decode_pdu,
    encode_pdu,
)
from simulator.smsc.server import SmscServer
from tests.support.smsc import config, sm, until

pytestmark = pytest.mark.timeout(30)


async def test_wrong_password_and_unknown_system_id() -> None:
    async with SmscServer(config()) as smsc:
        with pytest.raises(SmppClientError) as err:
            await EsmeClient.connect("127.0.0.1", smsc.port, "rapidpro", "wrong")
        assert err.value.status == Status.ESME_RINVPASWD
        with pytest.raises(SmppClientError) as err:
            await EsmeClient.connect("127.0.0.1", smsc.port, "nobody", "secret")
        assert err.value.status == Status.ESME_RINVSYSID
        assert smsc.stats().bind_failures == 2


async def test_max_binds_and_ip_allowlist() -> None:
    cfg = config(
        accounts=[
            AccountConfig(max_binds=1),
            AccountConfig(system_id="far", allowed_ips=["10.0.0.0/8"]),
        ]
    )
    async with SmscServer(cfg) as smsc:
        first = await EsmeClient.connect("127.0.0.1", smsc.port)
        with pytest.raises(SmppClientError) as err:
            await EsmeClient.connect("127.0.0.1", smsc.port)
        assert err.value.status == Status.ESME_RBINDFAIL
        with pytest.raises(SmppClientError) as err:
            await EsmeClient.connect("127.0.0.1", smsc.port, "far", "secret")
        assert err.value.status == Status.ESME_RBINDFAIL
        await first.unbind()


async def test_submit_gets_id_and_matching_receipt_with_tlvs() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(sm())
        assert resp.command_status == 0 and resp.message_id.isdigit()  # type: ignore[attr-defined]
        await until(lambda: client.delivered)
        (receipt,) = client.delivered
        assert receipt.esm_class & EsmClass.DELIVERY_RECEIPT
        assert receipt.source_addr == "201001234567" and receipt.destination_addr == "1442"
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == resp.message_id  # type: ignore[attr-defined]
        assert receipt.tlvs[Tag.MESSAGE_STATE] == MessageState.DELIVERED
        text = receipt.short_message.decode()
        assert text.startswith(f"id:{resp.message_id} sub:001 dlvrd:001 submit date:")  # type: ignore[attr-defined]
        assert " stat:DELIVRD err:000 text:hello" in text
        await until(lambda: smsc.stats().receipts_delivered == 1)
        await client.unbind()


async def test_receipt_only_when_asked() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        await client.request(sm(registered_delivery=0))
        await client.request(sm(registered_delivery=2))  # failure only: delivered -> none
        await client.request(sm(registered_delivery=1))
        await until(lambda: len(client.delivered) == 1)
        await asyncio.sleep(0.1)
        assert len(client.delivered) == 1
        await client.unbind()


async def test_failure_receipt_for_failure_only_request() -> None:
    cfg = config(receipt=ReceiptConfig(delay=0.01, stat="UNDELIV", err=1))
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        await client.request(sm(registered_delivery=2))
        await until(lambda: client.delivered)
        receipt = client.delivered[0]
        assert b"stat:UNDELIV err:001" in receipt.short_message
        assert receipt.tlvs[Tag.MESSAGE_STATE] == MessageState.UNDELIVERABLE
        assert receipt.tlvs[Tag.NETWORK_ERROR_CODE] == b"\x03\x00\x01"
        await client.unbind()


@pytest.mark.parametrize(("fmt", "check"), [("hex", str.isalnum), ("uuid", lambda s: len(s) == 36)])
async def test_message_id_formats(fmt: str, check) -> None:  # type: ignore[no-untyped-def]
    async with SmscServer(config(message_id_format=fmt)) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(sm())
        assert check(resp.message_id)  # type: ignore[attr-defined]
        await until(lambda: client.delivered)
        assert client.delivered[0].tlvs[Tag.RECEIPTED_MESSAGE_ID] == resp.message_id  # type: ignore[attr-defined]
        await client.unbind()


async def test_hex_response_decimal_receipt() -> None:
    async with SmscServer(config(message_id_format="hex", receipt_id_format="decimal")) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(sm())
        await until(lambda: client.delivered)
        rid = client.delivered[0].tlvs[Tag.RECEIPTED_MESSAGE_ID]
        assert rid == str(int(resp.message_id, 16))  # type: ignore[attr-defined]
        await client.unbind()


async def test_receipts_go_to_a_receiver_bind_of_the_same_account() -> None:
    async with SmscServer(config()) as smsc:
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx")
        rx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        for i in range(20):
            await tx.request(sm(f"2010000000{i:02d}"))
        await until(lambda: len(rx.delivered) == 20)
        assert tx.delivered == []
        await tx.unbind()
        await rx.unbind()


async def test_receipts_and_mo_wait_for_a_receiver_in_order() -> None:
    async with SmscServer(config()) as smsc:
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx")
        ids = [(await tx.request(sm(f"2010000001{i:02d}"))).message_id for i in range(5)]  # type: ignore[attr-defined]
        await until(lambda: smsc.stats().receipts_due == 5)
        smsc.inject_mo("201001112223", "١")
        await asyncio.sleep(0.05)
        rx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        await until(lambda: len(rx.delivered) == 6)
        got = [p.tlvs.get(Tag.RECEIPTED_MESSAGE_ID) for p in rx.delivered[:5]]
        assert got == ids
        mo = rx.delivered[5]
        assert mo.data_coding == 8 and mo.short_message.decode("utf-16-be") == "١"
        await tx.unbind()
        await rx.unbind()


async def test_receiver_dropping_mid_window_loses_nothing() -> None:
    """A receiver that never answers deliver_sm and then drops: all go to the next bind."""
    async with SmscServer(config(deliver_window=10)) as smsc:
        host, port = smsc.address()
        reader, writer = await asyncio.open_connection(host, port)
        from simulator.smpp.pdu import BindReceiver

        writer.write(
            BindReceiver(sequence_number=1, system_id="rapidpro", password="secret").encode()
        )
        await reader.readexactly(16 + 6)  # bind_receiver_resp with system_id "smsim"
        for i in range(30):
            smsc.inject_mo(f"2010555000{i:02d}", f"reply {i}")
        # The silent receiver takes a window of 10 and answers none of them.
        got = b""
        while got.count(struct.pack(">I", CommandId.DELIVER_SM)) < 10:
            got += await reader.read(65536)
        writer.close()
        client = await EsmeClient.connect(host, port, mode="rx")
        await until(lambda: len(client.delivered) == 30)
        texts = [p.short_message.decode() for p in client.delivered]
        assert sorted(texts) == sorted(f"reply {i}" for i in range(30))
        assert texts[:10] == [f"reply {i}" for i in range(10)]
        assert smsc.stats().mo_delivered == 30
        await client.unbind()


async def test_delivery_queued_between_unbind_and_close_waits_for_the_next_bind() -> None:
    """The platform unbinds; before the connection is gone a receipt or MO is queued: it
    is not handed to the unbound session (that raised SessionStateError in the timer
    callback), and the next bind gets it."""
    async with SmscServer(config()) as smsc:
        host, port = smsc.address()
        trx = await EsmeClient.connect(host, port, mode="trx")
        (conn,) = smsc.operator().connections
        # The unbind arrives and is answered; connection_lost has not run yet.
        conn.data_received(Unbind(sequence_number=77).encode())
        assert conn.session.state.value == "unbound"
        smsc.inject_mo("201001234500", "مسابقة")  # pumps at once, in the same iteration
        await trx.wait_closed()
        rx = await EsmeClient.connect(host, port, mode="rx")
        await until(lambda: len(rx.delivered) == 1)
        assert rx.delivered[0].short_message.decode("utf-16-be") == "مسابقة"
        assert trx.delivered == []
        await rx.unbind()


async def test_temporary_refusal_is_redelivered() -> None:
    refusals = [Status.ESME_RX_T_APPN]

    def on_deliver(pdu: DeliverSm) -> int:
        return refusals.pop() if refusals else 0

    async with SmscServer(config(redelivery_delay=0.05)) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port, on_deliver=on_deliver)
        smsc.inject_mo("201001234567", "STOP")
        await until(lambda: len(client.delivered) == 2)
        assert smsc.stats().mo_delivered == 1 and smsc.stats().deliver_retries == 1
        await client.unbind()


async def test_tps_limit_throttles() -> None:
    async with SmscServer(config(accounts=[AccountConfig(tps=5)])) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        statuses = [
            (await client.request(sm(registered_delivery=0))).command_status for _ in range(12)
        ]
        assert statuses.count(0) in range(5, 8)
        assert statuses.count(Status.ESME_RTHROTTLED) >= 5
        await client.unbind()


async def test_window_overflow_is_msgqful() -> None:
    cfg = config(accounts=[AccountConfig(window=3)], response_latency=0.2)
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port, window=10)
        futs = [client.send_nowait(sm(registered_delivery=0)) for _ in range(6)]
        statuses = sorted(r.command_status for r in await asyncio.gather(*futs))
        assert statuses == [0, 0, 0] + [Status.ESME_RMSGQFUL] * 3
        await client.unbind()


async def test_query_cancel_replace_on_pending_messages() -> None:
    async with SmscServer(config(receipt=ReceiptConfig(delay=30))) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        a = (await client.request(sm())).message_id  # type: ignore[attr-defined]
        b = (await client.request(sm())).message_id  # type: ignore[attr-defined]
        q = await client.request(QuerySm(message_id=a, source_addr="1442"))
        assert q.command_status == 0 and q.message_state == MessageState.ENROUTE  # type: ignore[attr-defined]
        c = await client.request(CancelSm(message_id=a, source_addr="1442"))
        assert c.command_status == 0
        q = await client.request(QuerySm(message_id=a, source_addr="1442"))
        assert q.message_state == MessageState.DELETED and q.final_date  # type: ignore[attr-defined]
        again = await client.request(CancelSm(message_id=a, source_addr="1442"))
        assert again.command_status == Status.ESME_RCANCELFAIL
        r = await client.request(ReplaceSm(message_id=b, source_addr="1442", short_message=b"new"))
        assert r.command_status == 0
        assert smsc.operator().store.get(b).short_message == b"new"  # type: ignore[union-attr]
        bad = await client.request(ReplaceSm(message_id="nope", short_message=b"x"))
        assert bad.command_status == Status.ESME_RREPLACEFAIL
        unknown = await client.request(QuerySm(message_id="nope"))
        assert unknown.command_status == Status.ESME_RQUERYFAIL
        await client.unbind()


async def test_submit_multi_and_data_sm() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(
            SubmitMulti(
                source_addr="1442",
                dests=[
                    MultiDest("201001234567", 1, 1),
                    MultiDest("201201234567", 1, 1),
                    MultiDest(dl_name="all"),
                ],
                registered_delivery=1,
                short_message=b"multi",
            )
        )
        assert resp.command_status == 0
        assert [u.error_status for u in resp.unsuccess_smes] == [Status.ESME_RINVDLNAME]  # type: ignore[attr-defined]
        d = await client.request(
            DataSm(
                source_addr="1442",
                destination_addr="201101234567",
                registered_delivery=1,
                tlvs={Tag.MESSAGE_PAYLOAD: "طويل".encode("utf-16-be")},
                data_coding=8,
            )
        )
        assert d.command_status == 0
        await until(lambda: len(client.delivered) == 3)
        texts = {m.text for m in smsc.recorder.messages()}
        assert texts == {"multi", "طويل"}
        await client.unbind()


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"destination_addr": ""}, Status.ESME_RINVDSTADR),
        ({"esm_class": 0x04}, Status.ESME_RINVESMCLASS),
        ({"validity_period": "2612011200"}, Status.ESME_RINVEXPIRY),
        ({"schedule_delivery_time": "261201120000000X"}, Status.ESME_RINVSCHED),
        ({"registered_delivery": 0x80}, Status.ESME_RINVREGDLVFLG),
        ({"tlvs": {Tag.MESSAGE_PAYLOAD: b"x"}}, Status.ESME_RINVMSGLEN),
    ],
)
async def test_invalid_submits_are_refused_with_their_status(changes: dict, status: int) -> None:  # type: ignore[type-arg]
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        pdu = sm()
        for k, v in changes.items():
            setattr(pdu, k, v)
        assert (await client.request(pdu)).command_status == status
        await client.unbind()


async def test_garbage_connection_does_not_disturb_a_good_bind() -> None:
    async with SmscServer(config(max_pdu_size=4096)) as smsc:
        good = await EsmeClient.connect("127.0.0.1", smsc.port)
        host, port = smsc.address()
        # 1. oversized command_length: generic_nack ESME_RINVCMDLEN, then closed.
        r1, w1 = await asyncio.open_connection(host, port)
        w1.write(struct.pack(">IIII", 1_000_000, CommandId.SUBMIT_SM, 0, 7))
        nack = decode_pdu(await r1.readexactly(16))
        assert (nack.command_id, nack.command_status, nack.sequence_number) == (
            CommandId.GENERIC_NACK,
            Status.ESME_RINVCMDLEN,
            7,
        )
        assert await r1.read() == b""
        # 2. unknown command id: generic_nack ESME_RINVCMDID, connection kept.
        r2, w2 = await asyncio.open_connection(host, port)
        w2.write(struct.pack(">IIII", 16, 0x0000ABCD, 0, 9))
        nack = decode_pdu(await r2.readexactly(16))
        assert (nack.command_status, nack.sequence_number) == (Status.ESME_RINVCMDID, 9)
        w2.write(struct.pack(">IIII", 16, CommandId.ENQUIRE_LINK, 0, 10))
        assert decode_pdu(await r2.readexactly(16)).command_id == CommandId.ENQUIRE_LINK_RESP
        # 3. random bytes, then a hang-up.
        _r3, w3 = await asyncio.open_connection(host, port)
        w3.write(bytes(range(256)) * 4)
        await asyncio.sleep(0.05)
        w3.close()
        for w in (w1, w2):
            w.close()
        # The good bind never noticed.
        resp = await good.request(sm())
        assert resp.command_status == 0
        await until(lambda: good.delivered)
        assert smsc.stats().protocol_errors >= 2
        await good.unbind()


async def test_inject_long_arabic_mo_is_segmented_with_udh() -> None:
    text = (
        "أرغب في معرفة موعد صرف الدعم النقدي لبرنامج تكافل وكرامة لهذا الشهر من فضلكم وشكرا جزيلا"
    )
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        parts = smsc.inject_mo("201001234567", text)
        assert len(parts) == 2
        await until(lambda: len(client.delivered) == 2)
        bodies = b""
        for p in client.delivered:
            assert p.esm_class & EsmClass.UDHI and p.data_coding == 8
            assert p.source_addr_ton == 1 and p.dest_addr_ton == 3 and p.destination_addr == "1442"
            assert p.short_message[:3] == b"\x05\x00\x03"
            bodies += p.short_message[6:]
        assert bodies.decode("utf-16-be") == text
        await client.unbind()


async def test_graceful_stop_unbinds_clients() -> None:
    smsc = SmscServer(config())
    await smsc.start()
    client = await EsmeClient.connect("127.0.0.1", smsc.port)
    await smsc.stop()
    await asyncio.wait_for(client.wait_closed(), 3)


def test_default_config_is_the_documented_one() -> None:
    cfg = SmscConfig()
    (op,) = cfg.operators
    assert (op.host, op.port) == ("127.0.0.1", 2775)
    assert (op.accounts[0].system_id, op.accounts[0].password) == ("rapidpro", "secret")


def test_port_in_use_is_a_clear_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]

    async def main() -> None:
        with pytest.raises(OSError):
            await SmscServer(config(port=port)).start()

    try:
        asyncio.run(main())
    finally:
        sock.close()


async def test_an_answer_and_an_unbind_in_one_read_leave_the_queue_for_the_next_bind() -> None:
    """A client answers its last deliver_sm and unbinds in one TCP read (Kannel does,
    under load): the answer frees a window slot after the session is already unbound,
    and the next queued MO must not be handed to it (that raised SessionStateError out of
    data_received, and the MO sat in a dead bind's queue)."""
    async with SmscServer(config(deliver_window=1)) as smsc:
        host, port = smsc.address()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            BindReceiver(sequence_number=1, system_id="rapidpro", password="secret").encode()
        )
        await reader.readexactly(16 + 6)  # bind_receiver_resp; then it reads, never answers
        (conn,) = smsc.operator().connections
        smsc.inject_mo("201001234500", "one")
        smsc.inject_mo("201001234501", "two")
        await until(lambda: len(conn.session.outstanding) == 1)
        (first,) = conn.session.outstanding
        answer = DeliverSmResp(sequence_number=first.sequence_number).encode()
        conn.data_received(answer + Unbind(sequence_number=78).encode())
        assert conn.session.state.value == "unbound"
        assert smsc.stats().mo_delivered == 1
        writer.close()
        again = await EsmeClient.connect(host, port, mode="rx")
        await until(lambda: len(again.delivered) == 1)
        assert again.delivered[0].short_message == b"two"
        await again.unbind()


async def test_operators_of_one_smsc_never_hand_out_the_same_message_id() -> None:
    """Each operator counted from the clock on its own, a few ms apart: after ~10^4
    messages one operator's ids ran into the next one's. They share one sequence now,
    each in its own format."""
    from simulator.config import MessageIdFormat, OperatorConfig

    cfg = SmscConfig(
        operators=[
            OperatorConfig(name="vodafone", port=0),
            OperatorConfig(name="orange", port=0, message_id_format=MessageIdFormat.HEX),
        ]
    )
    async with SmscServer(cfg) as smsc:
        ids: list[int] = []
        for name, base in (("vodafone", 10), ("orange", 16), ("vodafone", 10)):
            host, port = smsc.address(name)
            client = await EsmeClient.connect(host, port)
            for _ in range(3):
                resp = await client.request(sm(registered_delivery=0))
                ids.append(int(resp.message_id, base))
            await client.unbind()
        assert len(set(ids)) == len(ids) == 9
        assert ids == sorted(ids)  # one sequence, in the order the submits came


class _BrokenObserver:
    """An observer with a bug: it raises on the second MT it sees."""

    def __init__(self) -> None:
        self.seen = 0

    def on_mo(self, source: str) -> None:
        pass

    def on_mt(self, msg: object) -> None:
        self.seen += 1
        if self.seen == 2:
            raise RuntimeError("observer bug")


async def test_a_handler_that_raises_costs_one_log_line_not_the_bind_or_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three submit_sm in one write, the second's hand-over raising: all three answered
    and receipted, the bind still serving, one clear line logged."""
    broken = _BrokenObserver()
    async with SmscServer(config(), observers=[broken]) as smsc:
        reader, writer = await asyncio.open_connection("127.0.0.1", smsc.port)

        async def read_pdu() -> Pdu:
            head = await asyncio.wait_for(reader.readexactly(4), 5)
            return decode_pdu(head + await reader.readexactly(int.from_bytes(head, "big") - 4))

        writer.write(
            encode_pdu(BindTransceiver(sequence_number=1, system_id="rapidpro", password="secret"))
        )
        assert (await read_pdu()).command_status == 0
        writer.write(
            b"".join(
                encode_pdu(sm(sequence_number=2 + i, short_message=b"m%d" % i)) for i in range(3)
            )
        )
        await writer.drain()
        got: list[Pdu] = []
        while sum(1 for p in got if isinstance(p, DeliverSm)) < 3:
            pdu = await read_pdu()
            got.append(pdu)
            if isinstance(pdu, DeliverSm):
                writer.write(encode_pdu(pdu.response()))
        resps = [p for p in got if p.command_id == CommandId.SUBMIT_SM_RESP]
        assert [p.command_status for p in resps] == [0, 0, 0]
        assert smsc.stats().handler_errors == 1
        (line,) = [r.getMessage() for r in caplog.records if "handler_error" in r.getMessage()]
        assert "command=submit_sm" in line and "error=RuntimeError('observer bug')" in line
        assert "at=test_smsc.py:" in line
        # The bind goes on serving.
        writer.write(encode_pdu(sm(sequence_number=9, short_message=b"after")))
        while True:
            pdu = await read_pdu()
            if pdu.command_id == CommandId.SUBMIT_SM_RESP:
                assert pdu.command_status == 0
                break
        writer.close()
