"""Outbind (SMPP 3.4 2.2.1, 4.1.7): the SMSC connects to an ESME that listens, sends
outbind, and serves the bind_receiver that follows; deliveries waiting for the account
then flow on that bind. The wire test uses literal bytes, not our codec, as reference.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
from pydantic import ValidationError

from simulator.config import AccountConfig, OperatorConfig, ReceiptConfig, SmscConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import Tag
from simulator.smpp.pdu import SubmitSm
from simulator.smsc.server import SmscServer
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(30)


def config(outbind: str, **acct: object) -> SmscConfig:
    return SmscConfig(
        operators=[
            OperatorConfig(
                port=0,
                receipt=ReceiptConfig(delay=0.01),
                accounts=[AccountConfig(outbind=outbind, **acct)],  # type: ignore[arg-type]
            )
        ]
    )


async def until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_outbind_on_the_wire_then_bind_receiver_gets_the_waiting_mo() -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put((r, w))

    esme = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = esme.sockets[0].getsockname()[1]
    async with SmscServer(config(f"127.0.0.1:{port}")) as smsc:
        smsc.inject_mo("201001234567", "hi")  # nobody bound: this triggers the outbind
        reader, writer = await asyncio.wait_for(accepted.get(), 5)
        body = b"smsim\0secret\0"
        head = await reader.readexactly(16)
        length, cid, status, seq = struct.unpack(">IIII", head)
        assert (length, cid, status) == (16 + len(body), 0x0000000B, 0) and seq > 0
        assert await reader.readexactly(len(body)) == body
        bind_body = b"rapidpro\0secret\0\0\x34\x00\x00\0"
        writer.write(struct.pack(">IIII", 16 + len(bind_body), 0x00000001, 0, 1) + bind_body)
        length, cid, status, seq = struct.unpack(">IIII", await reader.readexactly(16))
        assert (cid, status, seq) == (0x80000001, 0, 1)
        await reader.readexactly(length - 16)
        length, cid, status, seq = struct.unpack(">IIII", await reader.readexactly(16))
        assert cid == 0x00000005  # deliver_sm: the MO that was waiting
        pdu = await reader.readexactly(length - 16)
        assert pdu.endswith(b"\x02hi") and b"201001234567\0" in pdu
        writer.write(struct.pack(">IIII", 17, 0x80000005, 0, seq) + b"\0")
        await until(lambda: smsc.stats().mo_delivered == 1)
        assert smsc.stats().binds == 1
        writer.close()
    esme.close()


async def test_receipts_for_a_transmitter_only_account_arrive_over_outbind() -> None:
    port = free_port()
    listener = await EsmeClient.listen_for_outbind("127.0.0.1", port)
    async with SmscServer(config(f"127.0.0.1:{port}")) as smsc:
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx")
        ids = []
        for i in range(3):
            resp = await tx.request(
                SubmitSm(
                    source_addr="1442",
                    destination_addr=f"20100123456{i}",
                    registered_delivery=1,
                    short_message=b"x",
                )
            )
            ids.append(resp.message_id)  # type: ignore[attr-defined]
        rx = await listener.accept()
        assert rx.session.can_receive and not rx.session.can_transmit
        await until(lambda: len(rx.delivered) == 3)
        assert [d.tlvs[Tag.RECEIPTED_MESSAGE_ID] for d in rx.delivered] == ids
        assert tx.delivered == []
        # Bound now: more receipts go to this bind, no second outbind.
        await tx.request(
            SubmitSm(source_addr="1442", destination_addr="2010", registered_delivery=1)
        )
        await until(lambda: len(rx.delivered) == 4)
        assert listener.clients.empty() and smsc.stats().binds == 2
        await tx.unbind()
        await rx.unbind()
    listener.close()


async def test_unreachable_esme_is_retried_until_it_listens() -> None:
    port = free_port()
    async with SmscServer(config(f"127.0.0.1:{port}", outbind_retry=0.2)) as smsc:
        smsc.inject_mo("201001234567", "first")
        await asyncio.sleep(0.5)  # two or three refused connects
        smsc.inject_mo("201001234567", "second")
        listener = await EsmeClient.listen_for_outbind("127.0.0.1", port)
        rx = await listener.accept()
        await until(lambda: len(rx.delivered) == 2)
        assert [d.short_message for d in rx.delivered] == [b"first", b"second"]
        await rx.unbind()
        listener.close()


async def test_esme_with_the_wrong_password_never_binds_and_the_smsc_tries_again() -> None:
    port = free_port()
    wrong = await EsmeClient.listen_for_outbind("127.0.0.1", port, password="other")
    async with SmscServer(config(f"127.0.0.1:{port}", outbind_retry=0.1)) as smsc:
        smsc.inject_mo("201001234567", "hi")
        await until(lambda: wrong.refused >= 2)
        assert smsc.stats().binds == 0 and smsc.pending_deliveries() == 1
    wrong.close()


def test_outbind_address_must_be_host_and_port() -> None:
    assert AccountConfig(outbind="10.0.0.5:2776").outbind_address == ("10.0.0.5", 2776)
    assert AccountConfig().outbind_address is None
    for bad in ("10.0.0.5", ":2775", "host:port", "host:70000"):
        with pytest.raises(ValidationError):
            AccountConfig(outbind=bad)


async def test_an_esme_that_answers_outbind_as_a_transmitter_is_asked_again() -> None:
    port = free_port()
    tx_only = await EsmeClient.listen_for_outbind("127.0.0.1", port, mode="tx")
    async with SmscServer(config(f"127.0.0.1:{port}", outbind_retry=0.1)) as smsc:
        smsc.inject_mo("201001234567", "hi")
        first = await tx_only.accept()
        second = await tx_only.accept()  # the MO still waits: the SMSC outbinds again
        assert first.delivered == second.delivered == []
        assert smsc.pending_deliveries() == 1
        tx_only.close()
        for c in (first, second):
            await c.unbind()
