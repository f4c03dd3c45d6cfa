"""An "instant reply platform": a trivial ESME on our sans-IO Session (asyncio + uvloop).

Binds as transceiver to one or more SMSCs and answers every MO deliver_sm with a
deliver_sm_resp and a submit_sm from 1442 back to the sender. With ``--reply-rate`` it
is a slow platform: MO are still acknowledged at once, but replies leave at most at
that rate (a backlog builds, as in a platform whose flow engine lags).

    python benchmarks/locust_channel/instant_platform.py --smsc 127.0.0.1:2775 --duration 30

Bounded: exits after ``--duration`` seconds. Prints one JSON line of counters at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from simulator.smpp.constants import EsmClass
from simulator.smpp.pdu import BindTransceiver, DeliverSm, SubmitSm
from simulator.smpp.session import (
    PduReceived,
    ResponseReceived,
    Role,
    Session,
    Unbound,
)

REPLY = b"Takaful 1442: thank you, your answer is recorded."


class Stats:
    def __init__(self) -> None:
        self.mo = 0
        self.receipts = 0
        self.replies_sent = 0
        self.replies_ok = 0
        self.replies_failed = 0
        self.binds = 0
        self.max_backlog = 0


class Bind(asyncio.Protocol):
    def __init__(self, app: Platform) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.session = Session(Role.ESME, window=app.window, enquire_link_interval=None)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[SubmitSm] = collections.deque()
        self._flush_pending = False
        self.bound = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.session.send(
            BindTransceiver(system_id="rapidpro", password="secret", interface_version=0x34)
        )
        self.flush()

    def data_received(self, data: bytes) -> None:
        app = self.app
        st = app.stats
        session = self.session
        for ev in session.receive_data(data):
            if type(ev) is PduReceived:
                pdu = ev.pdu
                if type(pdu) is DeliverSm:
                    session.send(pdu.response())
                    if pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
                        st.receipts += 1
                        continue
                    st.mo += 1
                    reply = SubmitSm(
                        source_addr_ton=3,
                        source_addr="1442",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=pdu.source_addr,
                        registered_delivery=app.receipts,
                        short_message=REPLY,
                    )
                    if app.limiter is None:
                        self.submit(reply)
                    else:
                        app.limiter.append((self, reply))
                elif pdu.response_class is not None:
                    session.send(pdu.response())
            elif type(ev) is ResponseReceived:
                if type(ev.request) is SubmitSm:
                    if ev.pdu.command_status == 0:
                        st.replies_ok += 1
                    else:
                        st.replies_failed += 1
                    self.drain()
                elif type(ev.request) is BindTransceiver:
                    self.bound = ev.pdu.command_status == 0
                    st.binds += self.bound
            elif isinstance(ev, Unbound):
                self.flush()
                if self.transport is not None:
                    self.transport.close()
        self.flush()

    def submit(self, pdu: SubmitSm) -> None:
        if self.pending or self.session.window_free <= 0:
            self.pending.append(pdu)
            return
        self.session.send(pdu)
        self.app.stats.replies_sent += 1
        self._schedule_flush()

    def drain(self) -> None:
        session = self.session
        pending = self.pending
        while pending and session.window_free > 0:
            session.send(pending.popleft())
            self.app.stats.replies_sent += 1
        if len(pending) > self.app.stats.max_backlog:
            self.app.stats.max_backlog = len(pending)

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close()
        self.app.binds.discard(self)


class Platform:
    def __init__(self, window: int, receipts: int, reply_rate: float) -> None:
        self.window = window
        self.receipts = receipts
        self.stats = Stats()
        self.binds: set[Bind] = set()
        self.reply_rate = reply_rate
        self.limiter: collections.deque[tuple[Bind, SubmitSm]] | None = (
            collections.deque() if reply_rate > 0 else None
        )

    async def connect(self, host: str, port: int, n: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        made = 0
        while made < n and time.monotonic() < deadline:
            try:
                _, proto = await loop.create_connection(lambda: Bind(self), host, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            self.binds.add(proto)
            made += 1

    async def pace(self) -> None:
        """Slow-platform mode: release queued replies at reply_rate per second."""
        assert self.limiter is not None
        q = self.limiter
        step = 0.005
        credit = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            credit = min(credit + (now - last) * self.reply_rate, self.reply_rate * 0.05 + 1)
            last = now
            while q and credit >= 1:
                bind, pdu = q.popleft()
                credit -= 1
                if not bind.session.closed:
                    bind.submit(pdu)
            if len(q) > self.stats.max_backlog:
                self.stats.max_backlog = len(q)


async def main(args: argparse.Namespace) -> dict[str, object]:
    app = Platform(args.window, args.receipts, args.reply_rate)
    t0 = time.monotonic()
    deadline = t0 + args.duration
    smscs = []
    for spec in args.smsc:
        host, port = spec.rsplit(":", 1)
        smscs.append((host, int(port)))
    await asyncio.gather(
        *(app.connect(h, p, args.binds, t0 + args.connect_timeout) for h, p in smscs)
    )
    pacer = asyncio.create_task(app.pace()) if app.limiter is not None else None
    print(json.dumps({"ready": True, "binds": len(app.binds)}), flush=True)
    stopping: list[bool] = []
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stopping.append, True)
    while not stopping and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if pacer is not None:
        pacer.cancel()
    for b in list(app.binds):
        if b.transport is not None:
            b.transport.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    st = app.stats
    return {
        "pid": os.getpid(),
        "mo": st.mo,
        "receipts": st.receipts,
        "replies_sent": st.replies_sent,
        "replies_ok": st.replies_ok,
        "replies_failed": st.replies_failed,
        "binds": st.binds,
        "max_backlog": st.max_backlog,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "wall_s": time.monotonic() - t0,
    }


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smsc", action="append", required=True, help="host:port (repeatable)")
    ap.add_argument("--binds", type=int, default=2, help="transceiver binds per SMSC")
    ap.add_argument("--window", type=int, default=50, help="submit_sm in flight per bind")
    ap.add_argument("--receipts", type=int, default=0, help="registered_delivery of replies")
    ap.add_argument("--reply-rate", type=float, default=0, help="max replies/s (0: instant)")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--connect-timeout", type=float, default=20)
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
