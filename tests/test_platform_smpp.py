"""The SMPP channel against an SMSC that sends what aiosmpplib 0.7.4 can't parse.

A scripted SMSC (our sans-IO codec on a bare asyncio server) answers the first submit
with a vendor command_status (0x400), sends a vendor command, an alert_notification, a
data_sm MO, an empty MO and a receipt carrying only TLVs. Unguarded, aiosmpplib drops
the session on the first two, answers the next two with a status-0 generic_nack and
generic_nacks the last two (../shared/FINDINGS.md 3 and 5); the platform's bind must
stay up, re-send the refused message and take the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.config import PlatformConfig, SmppBindConfig
from simulator.platform.campaigns import CAMPAIGNS_DIR, load_flows
from simulator.platform.runtime import PlatformRuntime
from simulator.smpp.constants import Tag
from simulator.smpp.pdu import (
    AlertNotification,
    BindTransceiver,
    DataSm,
    DeliverSm,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    decode_pdu,
    encode_pdu,
)

pytestmark = pytest.mark.timeout(30)


class ScriptedSmsc:
    def __init__(self) -> None:
        self.received: list[Pdu] = []
        self.connections = 0
        self.writer: asyncio.StreamWriter | None = None
        self.submits = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def send(self, pdu: Pdu) -> None:
        assert self.writer is not None
        self.writer.write(encode_pdu(pdu))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writer = writer
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(4)
                data = head + await reader.readexactly(int.from_bytes(head, "big") - 4)
                pdu = decode_pdu(data)
                self.received.append(pdu)
                if isinstance(pdu, BindTransceiver):
                    self.send(pdu.response(system_id="scripted"))
                elif isinstance(pdu, SubmitSm):
                    self.submits += 1
                    if self.submits == 1:  # a vendor status, outside the SMPP 3.4 table
                        self.send(
                            SubmitSmResp(sequence_number=pdu.sequence_number, command_status=0x400)
                        )
                    else:
                        self.send(pdu.response(message_id=f"m{self.submits}"))
                elif not pdu.is_response and pdu.response_class is not None:
                    self.send(pdu.response())


async def until(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def flows_without_the_catch_all(tmp_path: Path) -> str:
    """The shipped flows but the catch-all: the MO sent here must draw no reply (it
    would be the first submit, which the script refuses)."""
    folder = tmp_path / "flows"
    folder.mkdir()
    catch_all = {flow.source for flow in load_flows() if flow.catch_all}
    for path in CAMPAIGNS_DIR.glob("*.yaml"):
        if path.name not in catch_all:
            shutil.copy(path, folder)
    return str(folder)


async def test_the_bind_survives_what_aiosmpplib_cannot_parse(tmp_path: Path) -> None:
    smsc = ScriptedSmsc()
    port = await smsc.start()
    cfg = PlatformConfig(
        api_port=0,
        tps=0,
        retry_delay=0.05,
        binds=[SmppBindConfig(port=port, window=2)],
        flows_dir=flows_without_the_catch_all(tmp_path),
    )
    rt = PlatformRuntime(cfg, "t", reset=True, database=tmp_path / "p")
    await rt.start()
    try:
        bind = rt.binds[0]
        # alert_notification: no answer; data_sm (an MO here): data_sm_resp; a vendor
        # command: generic_nack ESME_RINVCMDID. The session stays.
        smsc.send(
            AlertNotification(sequence_number=900, source_addr="201001234567", esme_addr="1442")
        )
        smsc.send(
            DataSm(
                sequence_number=901,
                source_addr="201001234567",
                destination_addr="1442",
                tlvs={Tag.MESSAGE_PAYLOAD: b"data_sm hello"},
            )
        )
        assert smsc.writer is not None
        smsc.writer.write(struct.pack("!IIII", 16, 0x00010200, 0, 904))
        await until(lambda: any(isinstance(p, GenericNack) for p in smsc.received), 5, "nack")
        [nack] = [p for p in smsc.received if isinstance(p, GenericNack)]
        assert nack.sequence_number == 904 and nack.command_status == 0x03  # RINVCMDID
        [data_resp] = [p for p in smsc.received if p.name == "data_sm_resp"]
        assert data_resp.sequence_number == 901 and data_resp.command_status == 0
        assert rt.store.contact_by_urn("tel:+201001234567") is not None  # the data_sm MO

        # A message refused with a vendor status goes again and is accepted.
        contact, _ = rt.store.get_or_create_contact("tel:+201001234567", time.time())
        msg = rt.service.queue_msg(contact, "hello")
        await until(lambda: msg.external_id == "m2", 5, "the second attempt")
        assert msg.attempts == 2 and bind.stats.refused == 1
        assert bind.stats.unknown_statuses == 1 and bind.stats.unknown_commands == 1

        # An empty MO and a receipt with only TLVs (no text) are taken, not nacked.
        smsc.send(
            DeliverSm(
                sequence_number=902,
                source_addr="201001234567",
                destination_addr="1442",
                short_message=b"",
            )
        )
        smsc.send(
            DeliverSm(
                sequence_number=903,
                source_addr="201001234567",
                destination_addr="1442",
                esm_class=0x04,
                short_message=b"",
                tlvs={Tag.RECEIPTED_MESSAGE_ID: b"m2\x00", Tag.MESSAGE_STATE: b"\x02"},
            )
        )
        await until(lambda: msg.status.value == "delivered", 5, "the receipt")
        assert rt.service.stats.mo == 2  # the data_sm and the empty one
        resps = [p.sequence_number for p in smsc.received if p.name == "deliver_sm_resp"]
        assert resps == [902, 903]
        assert smsc.connections == 1 and bind.bound  # never dropped
    finally:
        await rt.stop()
        await smsc.stop()


async def test_the_bind_comes_back_when_aiosmpplibs_connect_loop_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error aiosmpplib does not expect (here a RuntimeError while reading) escapes its
    connect loop, which then ends for good: the platform starts it again and rebinds."""
    smsc = ScriptedSmsc()
    port = await smsc.start()
    cfg = PlatformConfig(api_port=0, tps=0, binds=[SmppBindConfig(port=port, window=2)])
    rt = PlatformRuntime(cfg, "t", reset=True, database=tmp_path / "p")
    await rt.start()
    try:
        bind = rt.binds[0]
        original = type(bind.esme)._get_pdu
        failed = False

        async def get_pdu_once_broken(self: Any) -> Any:
            nonlocal failed
            if not failed:
                failed = True
                raise RuntimeError("not an error aiosmpplib expects")
            return await original(self)

        monkeypatch.setattr(type(bind.esme), "_get_pdu", get_pdu_once_broken)
        smsc.send(
            DeliverSm(sequence_number=950, source_addr="201001234567", destination_addr="1442")
        )
        await until(lambda: smsc.connections == 2 and bind.bound, 20, "the second bind")
        assert bind.stats.restarts == 1
    finally:
        await rt.stop()
        await smsc.stop()
