"""Design A without Locust: the same open-loop schedule and reply matching as
``lc_common.Crowd``, on asyncio + uvloop, over the same channel. Shows what the SMSC,
channel and platform do when the Locust side costs (almost) nothing.

    python benchmarks/locust_channel/direct.py --target 127.0.0.1:2776 --rate 5000 -t 15

Writes one result file in the format of the Locust workers' (``--results`` dir).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from channel import (
    T_MT,
    FrameReader,
    LatencyHistogram,
    NumberSpace,
    decode_mt_items,
    encode_hello,
    encode_mo_batch,
)

MO_TEXTS = [b"1", b"2", b"YES", b"STOP", b"\xd9\x86\xd8\xb9\xd9\x85"]
monotonic = time.monotonic


class Driver(asyncio.Protocol):
    def __init__(self, w0: float, w1: float, slot: int) -> None:
        self.reader = FrameReader()
        self.numbers = NumberSpace(slots=64)
        self.slot = slot
        self.j = 0
        self.inflight: dict[int, float] = {}
        self.w0, self.w1 = w0, w1
        self.e2e = LatencyHistogram()
        self.at_smsc = LatencyHistogram()
        self.notify = LatencyHistogram()
        self.lag = LatencyHistogram()
        self.offered = self.replied_in_window = self.matched = 0
        self.sent_total = self.replies_total = self.unsolicited = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, n: int, due: float) -> None:
        items = []
        for i in range(self.j, self.j + n):
            number = self.numbers.slot_number(self.slot, i)
            self.inflight[number] = due
            items.append((number, MO_TEXTS[i % 5]))
        self.j += n
        self.sent_total += n
        if self.w0 <= due < self.w1:
            self.offered += n
            self.lag.add(max(monotonic() - due, 1e-7))
        assert self.transport is not None
        self.transport.write(encode_mo_batch(items))

    def data_received(self, data: bytes) -> None:
        t_recv = monotonic()
        for ftype, count, buf, pos in self.reader.feed(data):
            if ftype != T_MT:
                continue
            for number, t_mt, _dcs, _p in decode_mt_items(buf, pos, count):
                self.replies_total += 1
                due = self.inflight.pop(number, None)
                if due is None:
                    self.unsolicited += 1
                    continue
                if self.w0 <= t_recv < self.w1:
                    self.replied_in_window += 1
                if self.w0 <= due < self.w1:
                    self.matched += 1
                    self.e2e.add(t_recv - due)
                    self.at_smsc.add(max(t_mt - due, 1e-7))
                    self.notify.add(max(t_recv - t_mt, 1e-7))

    def result(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "slot": self.slot,
            "window": [self.w0, self.w1],
            "offered": self.offered,
            "replied_in_window": self.replied_in_window,
            "matched": self.matched,
            "unanswered": sum(1 for d in self.inflight.values() if self.w0 <= d < self.w1),
            "timeouts": 0,
            "unsolicited": self.unsolicited,
            "sent_total": self.sent_total,
            "replies_total": self.replies_total,
            "e2e": self.e2e.to_json(),
            "at_smsc": self.at_smsc.to_json(),
            "notify": self.notify.to_json(),
            "lag": self.lag.to_json(),
        }


async def crowd(d: Driver, rate: float, tick: float, stop: float) -> None:
    t0 = monotonic()
    k = done = 0
    while True:
        due = t0 + k * tick
        if due >= stop:
            return
        delay = due - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        k += 1
        target = int(k * tick * rate)
        if target > done:
            d.send(target - done, due)
            done = target


async def main(args: argparse.Namespace) -> None:
    w0 = float(os.environ.get("LC_WINDOW_START", "0"))
    w1 = float(os.environ.get("LC_WINDOW_END", "inf"))
    host, port = args.target.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, d = await loop.create_connection(lambda: Driver(w0, w1, 0), host, int(port))
    assert d.transport is not None
    d.transport.write(encode_hello(0, 64, 0))
    stop = monotonic() + args.t
    await asyncio.gather(
        *(crowd(d, args.rate / args.users, args.tick, stop) for _ in range(args.users))
    )
    await asyncio.sleep(1.0)
    if args.results:
        out = Path(args.results)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"worker-{os.getpid()}.json").write_text(json.dumps(d.result()))


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="127.0.0.1:2776")
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--users", type=int, default=2)
    ap.add_argument("--tick", type=float, default=0.005)
    ap.add_argument("-t", type=float, default=15)
    ap.add_argument("--results", default="")
    args = ap.parse_args()
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main(args))
    finally:
        loop.close()


if __name__ == "__main__":
    cli()
