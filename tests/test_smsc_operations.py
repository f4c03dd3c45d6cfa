"""submit_multi, data_sm, query/cancel/replace and TON/NPI expectations, end to end.

What each test pins: the ids an ESME gets are the ids its receipts carry (one per
submit_multi request, whatever the number of destinations), refusals come with the
status the spec names (per destination where submit_multi_resp has room for it), and
cancel/replace change what the handset and the receipts see.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.config import AddressingConfig, ReceiptConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass, MessageState, Status, Tag
from simulator.smpp.pdu import (
    CancelSm,
    DataSm,
    DeliverSm,
    MultiDest,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    SubmitSm,
)
from simulator.smsc.handsets import MtRecorder
from simulator.smsc.server import SmscServer
from simulator.smsc.store import Message
from tests.support.smsc import config, sm, until

pytestmark = pytest.mark.timeout(30)


def multi(*dests: MultiDest, **kw: object) -> SubmitMulti:
    kw.setdefault("registered_delivery", 1)
    kw.setdefault("short_message", b"multi")
    return SubmitMulti(source_addr="1442", source_addr_ton=3, dests=list(dests), **kw)  # type: ignore[arg-type]


async def test_submit_multi_receipts_all_carry_the_one_id_of_the_response() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        numbers = ["201001234567", "201201234567", "201501234567"]
        resp = await client.request(multi(*(MultiDest(n, 1, 1) for n in numbers)))
        assert resp.command_status == 0 and resp.unsuccess_smes == []  # type: ignore[attr-defined]
        mid = resp.message_id  # type: ignore[attr-defined]
        await until(lambda: len(client.delivered) == 3)
        assert {r.tlvs[Tag.RECEIPTED_MESSAGE_ID] for r in client.delivered} == {mid}
        assert sorted(r.source_addr for r in client.delivered) == sorted(numbers)
        assert all(r.short_message.startswith(f"id:{mid} ".encode()) for r in client.delivered)
        # Once every destination is final, query_sm still answers for the request's id.
        q = await client.request(QuerySm(message_id=mid, source_addr="1442"))
        assert q.command_status == 0 and q.message_state == MessageState.DELIVERED  # type: ignore[attr-defined]
        await client.unbind()


async def test_submit_multi_names_each_unsuccessful_destination() -> None:
    cfg = config(addressing=AddressingConfig(submit_dest_ton=[1], submit_dest_npi=[1]))
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(
            multi(
                MultiDest("201001234567", 1, 1),
                MultiDest(dl_name="all_families"),
                MultiDest("", 1, 1),
                MultiDest("01001234567", 2, 1),  # national TON where international is expected
                MultiDest("201201234567", 1, 9),
            )
        )
        assert resp.command_status == 0
        got = [(u.addr, u.ton, u.npi, u.error_status) for u in resp.unsuccess_smes]  # type: ignore[attr-defined]
        assert got == [
            ("all_families", 0, 0, Status.ESME_RINVDLNAME),
            ("", 1, 1, Status.ESME_RINVDSTADR),
            ("01001234567", 2, 1, Status.ESME_RINVDSTTON),
            ("201201234567", 1, 9, Status.ESME_RINVDSTNPI),
        ]
        await until(lambda: len(client.delivered) == 1)
        assert client.delivered[0].source_addr == "201001234567"
        assert client.delivered[0].tlvs[Tag.RECEIPTED_MESSAGE_ID] == resp.message_id  # type: ignore[attr-defined]
        # Every destination refused: the request fails and still lists them all.
        bad = await client.request(multi(MultiDest("", 1, 1), MultiDest(dl_name="x")))
        assert bad.command_status == Status.ESME_RINVDSTADR
        assert [u.error_status for u in bad.unsuccess_smes] == [  # type: ignore[attr-defined]
            Status.ESME_RINVDSTADR,
            Status.ESME_RINVDLNAME,
        ]
        none = await client.request(multi())
        assert none.command_status == Status.ESME_RINVNUMDESTS
        await asyncio.sleep(0.05)
        assert len(client.delivered) == 1
        assert smsc.stats().accepted == 1
        await client.unbind()


async def test_cancel_submit_multi_one_destination_then_the_rest() -> None:
    async with SmscServer(config(receipt=ReceiptConfig(delay=30))) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        resp = await client.request(
            multi(MultiDest("201001234567", 1, 1), MultiDest("201201234567", 1, 1))
        )
        mid = resp.message_id  # type: ignore[attr-defined]
        one = await client.request(
            CancelSm(message_id=mid, source_addr="1442", destination_addr="201201234567")
        )
        assert one.command_status == 0
        group = smsc.operator().store.get(mid).group  # type: ignore[union-attr]
        assert group is not None
        assert [m.state for m in group] == [MessageState.ENROUTE, MessageState.DELETED]
        again = await client.request(
            CancelSm(message_id=mid, source_addr="1442", destination_addr="201201234567")
        )
        assert again.command_status == Status.ESME_RCANCELFAIL
        rest = await client.request(CancelSm(message_id=mid, source_addr="1442"))
        assert rest.command_status == 0
        assert [m.state for m in group] == [MessageState.DELETED, MessageState.DELETED]
        assert smsc.operator().store.pending(mid) is None
        await client.unbind()


async def test_cancel_by_source_and_destination_without_message_id() -> None:
    async with SmscServer(config(receipt=ReceiptConfig(delay=0.3))) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        a = (await client.request(sm("201001234567"))).message_id  # type: ignore[attr-defined]
        b = (await client.request(sm("201001234567"))).message_id  # type: ignore[attr-defined]
        c = (await client.request(sm("201201234567"))).message_id  # type: ignore[attr-defined]
        r = await client.request(CancelSm(source_addr="1442", destination_addr="201001234567"))
        assert r.command_status == 0
        store = smsc.operator().store
        assert store.get(a).state == store.get(b).state == MessageState.DELETED  # type: ignore[union-attr]
        assert store.get(c).state == MessageState.ENROUTE  # type: ignore[union-attr]
        # Neither a message_id nor a destination: nothing to go by.
        vague = await client.request(CancelSm(source_addr="1442"))
        assert vague.command_status == Status.ESME_RCANCELFAIL
        # The cancelled ones never get a receipt; the other one does.
        await until(lambda: len(client.delivered) == 1)
        await asyncio.sleep(0.4)
        assert [d.tlvs[Tag.RECEIPTED_MESSAGE_ID] for d in client.delivered] == [c]
        await client.unbind()


async def test_replace_changes_the_receipt_text_and_can_withdraw_the_receipt() -> None:
    async with SmscServer(config(receipt=ReceiptConfig(delay=0.3))) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        a = (await client.request(sm(short_message=b"old text"))).message_id  # type: ignore[attr-defined]
        b = (await client.request(sm(short_message=b"keep me"))).message_id  # type: ignore[attr-defined]
        r = await client.request(
            ReplaceSm(
                message_id=a, source_addr="1442", short_message=b"new text", registered_delivery=1
            )
        )
        assert r.command_status == 0
        r = await client.request(
            ReplaceSm(message_id=b, source_addr="1442", short_message=b"quiet")
        )
        assert r.command_status == 0
        bad = await client.request(
            ReplaceSm(message_id=a, source_addr="1442", registered_delivery=0x80)
        )
        assert bad.command_status == Status.ESME_RINVREGDLVFLG
        wrong_source = await client.request(ReplaceSm(message_id=a, source_addr="9999"))
        assert wrong_source.command_status == Status.ESME_RREPLACEFAIL
        await until(lambda: len(client.delivered) == 1)
        await asyncio.sleep(0.4)
        (receipt,) = client.delivered
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == a
        assert receipt.short_message.endswith(b"text:new text")
        # Delivered means final: too late to replace or cancel.
        late = await client.request(ReplaceSm(message_id=a, source_addr="1442"))
        assert late.command_status == Status.ESME_RREPLACEFAIL
        late = await client.request(CancelSm(message_id=b, source_addr="1442"))
        assert late.command_status == Status.ESME_RCANCELFAIL
        await client.unbind()


class _HookedSink(MtRecorder):
    """The default sink plus the optional cancel/replace hooks the SMSC calls."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled: list[str] = []
        self.replaced: list[bytes] = []

    def on_cancel(self, msg: Message) -> None:
        self.cancelled.append(msg.message_id)

    def on_replace(self, msg: Message) -> None:
        self.replaced.append(msg.short_message)


async def test_cancel_and_replace_reach_the_handset_sides_hooks() -> None:
    sink = _HookedSink()
    async with SmscServer(config(receipt=ReceiptConfig(delay=30)), sink=sink) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        a = (await client.request(sm())).message_id  # type: ignore[attr-defined]
        b = (await client.request(sm())).message_id  # type: ignore[attr-defined]
        await client.request(ReplaceSm(message_id=a, source_addr="1442", short_message=b"v2"))
        await client.request(CancelSm(message_id=b, source_addr="1442"))
        assert sink.replaced == [b"v2"] and sink.cancelled == [b]
        await client.unbind()


async def test_data_sm_receipt_matches_its_id_and_quotes_the_payload() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        d = await client.request(
            DataSm(
                source_addr="1442",
                source_addr_ton=3,
                destination_addr="201101234567",
                dest_addr_ton=1,
                dest_addr_npi=1,
                registered_delivery=1,
                tlvs={Tag.MESSAGE_PAYLOAD: b"payload text"},
            )
        )
        assert d.command_status == 0
        await until(lambda: client.delivered)
        (receipt,) = client.delivered
        assert isinstance(receipt, DeliverSm) and receipt.esm_class & EsmClass.DELIVERY_RECEIPT
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == d.message_id  # type: ignore[attr-defined]
        assert receipt.short_message.endswith(b"stat:DELIVRD err:000 text:payload text")
        for changes, status in (
            ({"registered_delivery": 0x40}, Status.ESME_RINVREGDLVFLG),
            ({"esm_class": 0x04}, Status.ESME_RINVESMCLASS),
            ({"destination_addr": ""}, Status.ESME_RINVDSTADR),
        ):
            fields: dict[str, object] = {"source_addr": "1442", "destination_addr": "2011012345"}
            fields.update(changes)
            bad = DataSm(**fields)  # type: ignore[arg-type]
            assert (await client.request(bad)).command_status == status
        await client.unbind()


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"source_addr_ton": 1}, Status.ESME_RINVSRCTON),
        ({"source_addr_npi": 1}, Status.ESME_RINVSRCNPI),
        ({"dest_addr_ton": 2}, Status.ESME_RINVDSTTON),
        ({"dest_addr_npi": 0}, Status.ESME_RINVDSTNPI),
        ({}, 0),
    ],
)
async def test_operator_ton_npi_expectations(changes: dict, status: int) -> None:  # type: ignore[type-arg]
    addressing = AddressingConfig(
        submit_source_ton=[3, 0, 6],
        submit_source_npi=[0],
        submit_dest_ton=[1],
        submit_dest_npi=[1],
    )
    async with SmscServer(config(addressing=addressing)) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        assert (await client.request(sm(**changes))).command_status == status
        data = DataSm(
            source_addr="1442",
            source_addr_ton=3,
            destination_addr="201101234567",
            dest_addr_ton=1,
            dest_addr_npi=1,
        )
        for k, v in changes.items():
            setattr(data, k, v)
        assert (await client.request(data)).command_status == status
        await client.unbind()


async def test_no_ton_npi_expectations_by_default() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        odd = sm(source_addr_ton=5, source_addr_npi=9, dest_addr_ton=0, dest_addr_npi=0)
        assert (await client.request(odd)).command_status == 0
        await client.unbind()


async def test_alert_notification_only_for_failed_set_dpf_messages_and_queued_until_bound() -> None:
    cfg = config(receipt=ReceiptConfig(delay=0.01, stat="UNDELIV", err=27))
    async with SmscServer(cfg) as smsc:
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx")
        for dest, tlvs in (
            ("201001234567", {Tag.SET_DPF: 1}),
            ("201201234567", {Tag.SET_DPF: 0}),
            ("201501234567", {}),
        ):
            data = DataSm(
                source_addr="1442",
                source_addr_ton=3,
                destination_addr=dest,
                dest_addr_ton=1,
                dest_addr_npi=1,
                tlvs={**tlvs, Tag.MESSAGE_PAYLOAD: b"x"},
            )
            assert (await tx.request(data)).command_status == 0
        await until(lambda: smsc.stats().accepted == 3 and len(smsc.operator().store) == 0)
        assert smsc.operator().delivery_pending_flags() == {"201001234567": ["rapidpro"]}
        # Back while nobody receives: the alert waits in the account's queue.
        assert smsc.handset_available("201201234567") == 0
        assert smsc.handset_available("201001234567", availability=0) == 1
        rx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        await until(lambda: rx.alerts)
        (alert,) = rx.alerts
        assert (alert.source_addr, alert.source_addr_ton, alert.source_addr_npi) == (
            "201001234567",
            1,
            1,
        )
        assert (alert.esme_addr, alert.esme_addr_ton) == ("1442", 3)
        assert alert.tlvs == {Tag.MS_AVAILABILITY_STATUS: 0}
        assert smsc.stats().alerts == 1 and smsc.operator().delivery_pending_flags() == {}
        await tx.unbind()
        await rx.unbind()


async def test_no_alert_for_a_delivered_message() -> None:
    async with SmscServer(config()) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        await client.request(sm(tlvs={Tag.SET_DPF: 1}))
        await until(lambda: client.delivered)
        assert smsc.handset_available("201001234567") == 0 and client.alerts == []
        await client.unbind()


async def test_receipts_in_flight_on_a_dropped_receiver_go_to_the_other_bind_once() -> None:
    """Two receivers; one takes its window of receipts, answers a few, then drops. The
    unanswered ones move to the other bind: every receipt arrives, none twice."""
    async with SmscServer(config(deliver_window=10)) as smsc:
        host, port = smsc.address()
        from simulator.smpp.pdu import BindReceiver, decode_pdu

        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            BindReceiver(sequence_number=1, system_id="rapidpro", password="secret").encode()
        )
        head = await reader.readexactly(16)
        await reader.readexactly(int.from_bytes(head[:4], "big") - 16)  # bind_receiver_resp
        steady = await EsmeClient.connect(host, port, mode="rx")
        tx = await EsmeClient.connect(host, port, mode="tx")
        ids = [(await tx.request(sm(f"2010777000{i:02d}"))).message_id for i in range(40)]  # type: ignore[attr-defined]
        # The flaky receiver reads what it was given and answers only the first three.
        got: list[DeliverSm] = []
        buf = b""
        while len(got) < 10:
            buf += await reader.read(65536)
            while len(buf) >= 16 and len(buf) >= int.from_bytes(buf[:4], "big"):
                n = int.from_bytes(buf[:4], "big")
                pdu = decode_pdu(buf[:n])
                buf = buf[n:]
                assert isinstance(pdu, DeliverSm)
                got.append(pdu)
        for pdu in got[:3]:
            writer.write(pdu.response().encode())
        await writer.drain()
        await until(lambda: smsc.stats().receipts_delivered >= 3)
        writer.close()
        await until(lambda: smsc.stats().receipts_delivered == 40)
        on_flaky = [p.tlvs[Tag.RECEIPTED_MESSAGE_ID] for p in got[:3]]
        on_steady = [p.tlvs[Tag.RECEIPTED_MESSAGE_ID] for p in steady.delivered]
        assert sorted(on_flaky + on_steady) == sorted(ids)  # all there, none twice
        assert smsc.pending_deliveries() == 0
        await tx.unbind()
        await steady.unbind()


async def test_each_bad_input_gets_its_answer_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import struct

    caplog.set_level(logging.INFO, logger="smsim.smsc")
    async with SmscServer(config(max_pdu_size=4096)) as smsc:
        good = await EsmeClient.connect("127.0.0.1", smsc.port)
        host, port = smsc.address()
        reader, writer = await asyncio.open_connection(host, port)
        bind = b"rapidpro\0secret\0\0\x34\x00\x00\0"
        writer.write(struct.pack(">IIII", 16 + len(bind), 0x09, 0, 1) + bind)
        head = await reader.readexactly(16)
        await reader.readexactly(int.from_bytes(head[:4], "big") - 16)
        caplog.clear()
        cases = [
            # source_addr of 25 digits with no NUL within its 21 octets
            (0x04, b"\0\x03\x00" + b"1" * 25 + b"\0\x01\x01" + b"2010\0" + bytes(12), 0x8000_0004,
             Status.ESME_RINVSRCADR),
            # sm_length says 200 octets, 3 follow
            (0x04, b"\0\x03\x001442\0\x01\x012010\0\0\0\0\0\0\x01\0\0\0\xc8abc", 0x8000_0004,
             Status.ESME_RINVMSGLEN),
            # a TLV that runs past the end of the PDU
            (0x04, b"\0\x03\x001442\0\x01\x012010\0\0\0\0\0\0\x01\0\0\0\0\x04\x24\x00\x09ab",
             0x8000_0004, Status.ESME_RINVOPTPARSTREAM),
            # query_sm whose message_id has no NUL at all
            (0x03, b"9" * 40, 0x8000_0003, Status.ESME_RINVCMDLEN),
            (0x0000_0999, b"", 0x8000_0000, Status.ESME_RINVCMDID),
        ]  # fmt: skip
        for seq, (cid, body, answer_id, status) in enumerate(cases, start=10):
            writer.write(struct.pack(">IIII", 16 + len(body), cid, 0, seq) + body)
            head = await reader.readexactly(16)
            length, got_id, got_status, got_seq = struct.unpack(">IIII", head)
            await reader.readexactly(length - 16)
            assert (got_id, got_status, got_seq) == (answer_id, status, seq)
        lines = [r.getMessage() for r in caplog.records if "protocol_error" in r.getMessage()]
        assert len(lines) == len(cases)
        for line, (_, _, _, status) in zip(lines, cases, strict=True):
            assert f"status={Status(status).name}" in line and "fatal=False" in line
        # Still bound and served after all that; the other bind never noticed.
        writer.write(struct.pack(">IIII", 16, 0x15, 0, 99))
        assert struct.unpack(">IIII", await reader.readexactly(16))[1:] == (0x8000_0015, 0, 99)
        assert (await good.request(sm())).command_status == 0
        writer.close()
        await good.unbind()


def _part(ref: int, total: int, seq: int, text: str) -> SubmitSm:
    udh = bytes((5, 0, 3, ref, total, seq))
    return sm(
        "201001234567",
        esm_class=0x40,
        data_coding=8,
        registered_delivery=1 if seq == 1 else 0,
        short_message=udh + text.encode("utf-16-be"),
    )


async def test_mt_parts_out_of_order_are_joined_and_incomplete_ones_dropped_after_timeout() -> None:
    cfg = config()
    cfg = cfg.model_copy(update={"reassembly_timeout": 0.2})
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        for seq in (3, 1, 2):
            await client.request(_part(7, 3, seq, ["أ", "ب", "ت"][seq - 1]))
        (whole,) = smsc.recorder.messages()
        assert whole.text == "أبت" and whole.parts == 3 and len(whole.message_ids) == 3
        # Part 1 of 2 of ref 8 and then nothing for longer than the timeout.
        await client.request(_part(8, 2, 1, "س"))
        await asyncio.sleep(0.3)
        await client.request(sm(short_message=b"later"))  # any MT runs the expiry
        assert smsc.recorder.incomplete_dropped == 1
        await client.request(_part(8, 2, 2, "ص"))  # too late: its first part is gone
        assert [m.text for m in smsc.recorder.messages()] == ["أبت", "later"]
        assert smsc.recorder.completed == 2
        # With no MT at all after them, the SMSC's once-a-second tick drops the late
        # part 2 of ref 8 and a new part 1 of ref 9.
        await client.request(_part(9, 2, 1, "ض"))
        await until(lambda: smsc.recorder.incomplete_dropped == 3, timeout=3)
        assert smsc.recorder.completed == 2
        assert smsc.recorder._parts == {}  # the dropped parts are forgotten too
        await client.unbind()


async def test_receipts_are_shared_round_robin_between_receivers() -> None:
    async with SmscServer(config()) as smsc:
        rx1 = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        rx2 = await EsmeClient.connect("127.0.0.1", smsc.port, mode="rx")
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx")
        for i in range(40):
            await tx.request(sm(f"2010888000{i:02d}"))  # one at a time: receipts trickle
        await until(lambda: len(rx1.delivered) + len(rx2.delivered) == 40)
        assert 12 <= len(rx1.delivered) <= 28 and 12 <= len(rx2.delivered) <= 28
        assert tx.delivered == []
        for c in (tx, rx1, rx2):
            await c.unbind()


async def test_response_latency_holds_each_answer_but_not_the_bind() -> None:
    async with SmscServer(config(response_latency=0.25)) as smsc:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        bind_time = loop.time() - t0
        t0 = loop.time()
        futs = [client.send_nowait(sm(registered_delivery=0)) for _ in range(5)]
        resps = await asyncio.gather(*futs)
        took = loop.time() - t0
        assert bind_time < 0.2
        assert all(r.command_status == 0 for r in resps)
        assert 0.25 <= took < 0.6  # held together, not one after another
        await client.unbind()


async def test_ip_allowlist_admits_a_listed_address() -> None:
    from simulator.config import AccountConfig

    cfg = config(accounts=[AccountConfig(allowed_ips=["10.0.0.0/8", "127.0.0.1"])])
    async with SmscServer(cfg) as smsc:
        client = await EsmeClient.connect("127.0.0.1", smsc.port)
        assert client.session.is_bound
        await client.unbind()
