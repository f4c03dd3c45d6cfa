"""Design A, SMSC side: the unchanged asyncio SmscServer plus a channel server next to it.

Locust workers connect to the channel port, say HELLO (their worker index), and send MO
batches; each MO is injected with ``SmscServer.inject_mo`` exactly as the subscriber
simulation does. MT arrive through the ``sink`` seam (an ``MtRecorder`` whose
``on_complete`` forwards each whole message): the owner worker of the destination number
gets ``(msisdn, t_mt)`` in the next MT frame (writes coalesced per loop iteration).

    python benchmarks/locust_channel/smsc_channel.py --port 2775 --channel-port 2776

Composes SmscServer (no change to simulator/). Bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from channel import (
    FLAG_MT_TEXT,
    HELLO,
    T_HELLO,
    T_MO,
    FrameReader,
    NumberSpace,
    decode_mo_items,
    encode_mt_item,
    mt_frame,
)

from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig
from simulator.smsc.handsets import MtRecorder, ReceivedMt
from simulator.smsc.server import SmscServer
from simulator.smsc.store import Message

_now = time.monotonic


class ChannelHub:
    """Routes MT notifications to the Locust worker that owns the number."""

    def __init__(self, numbers: NumberSpace) -> None:
        self.numbers = numbers
        self.by_slot: dict[int, ChannelConn] = {}
        self.conns: set[ChannelConn] = set()
        self.smsc: SmscServer | None = None
        self.mo_in = 0
        self.mt_out = 0
        self.mt_unrouted = 0
        self.frames_in = 0
        self.frames_out = 0

    def on_complete(self, mt: ReceivedMt, msg: Message, *_: object) -> None:
        t = _now()
        try:
            number = int(mt.destination_addr)
            slot = self.numbers.owner(number)
        except ValueError:
            self.mt_unrouted += 1
            return
        conn = self.by_slot.get(slot)
        if conn is None:
            self.mt_unrouted += 1
            return
        self.mt_out += 1
        conn.queue_mt(number, t, mt.data_coding, mt.payload)


class ChannelConn(asyncio.Protocol):
    def __init__(self, hub: ChannelHub) -> None:
        self.hub = hub
        self.loop = asyncio.get_running_loop()
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.slot: int | None = None
        self.want_text = False
        self.out: list[bytes] = []
        self._flush_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.hub.conns.add(self)

    def data_received(self, data: bytes) -> None:
        hub = self.hub
        smsc = hub.smsc
        assert smsc is not None
        op = smsc.operator()
        for ftype, count, buf, pos in self.reader.feed(data):
            hub.frames_in += 1
            if ftype == T_MO:
                items = decode_mo_items(buf, pos, count)
                hub.mo_in += len(items)
                for number, text in items:
                    op.inject_mo(str(number), text.decode())
            elif ftype == T_HELLO:
                slot, _slots, flags = HELLO.unpack_from(buf, pos)
                self.slot = slot
                self.want_text = bool(flags & FLAG_MT_TEXT)
                hub.by_slot[slot] = self

    def queue_mt(self, number: int, t: float, dcs: int, payload: bytes) -> None:
        self.out.append(encode_mt_item(number, t, dcs, payload if self.want_text else b""))
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        out = self.out
        if not out or self.transport is None or self.transport.is_closing():
            out.clear()
            return
        for i in range(0, len(out), 65535):
            self.transport.write(mt_frame(out[i : i + 65535]))
            self.hub.frames_out += 1
        out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.conns.discard(self)
        if self.slot is not None and self.hub.by_slot.get(self.slot) is self:
            del self.hub.by_slot[self.slot]


def smsc_config(port: int, receipt_delay: float, deliver_window: int = 10) -> SmscConfig:
    return SmscConfig(
        operators=[
            OperatorConfig(
                port=port,
                receipt=ReceiptConfig(delay=receipt_delay),
                enquire_link_interval=None,
                deliver_window=deliver_window,
            )
        ],
        mt_log_size=1000,
    )


async def main(args: argparse.Namespace) -> dict[str, object]:
    hub = ChannelHub(NumberSpace(slots=args.slots))
    recorder = MtRecorder(size=1000, on_complete=hub.on_complete)
    smsc = SmscServer(
        smsc_config(args.port, args.receipt_delay, args.deliver_window), sink=recorder
    )
    hub.smsc = smsc
    await smsc.start()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ChannelConn(hub), "127.0.0.1", args.channel_port, reuse_address=True
    )
    import socket

    for s in server.sockets:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(json.dumps({"ready": True, "smpp": smsc.port, "channel": args.channel_port}), flush=True)
    t0 = time.monotonic()
    stopping: list[bool] = []
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stopping.append, True)
    while not stopping and time.monotonic() - t0 < args.duration:
        await asyncio.sleep(0.1)
    server.close()
    stats = smsc.stats()
    await smsc.stop(drain_timeout=0.5)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "pid": os.getpid(),
        "mo_in": hub.mo_in,
        "mt_out": hub.mt_out,
        "mt_unrouted": hub.mt_unrouted,
        "frames_in": hub.frames_in,
        "frames_out": hub.frames_out,
        "mo_delivered": stats.mo_delivered,
        "accepted": stats.accepted,
        "cpu_s": ru.ru_utime + ru.ru_stime,
    }


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=2775)
    ap.add_argument("--channel-port", type=int, default=2776)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--deliver-window", type=int, default=10, help="deliver_sm in flight per bind")
    ap.add_argument("--receipt-delay", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=30)
    args = ap.parse_args()
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        result = loop.run_until_complete(main(args))
    finally:
        loop.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    cli()
