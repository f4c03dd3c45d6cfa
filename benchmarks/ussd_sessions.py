"""Concurrent USSD sessions and session steps/s: the session model alone, then over SMPP.

    python benchmarks/ussd_sessions.py                        # 50,000 sessions, 10 s think
    python benchmarks/ussd_sessions.py --sessions 100000 --think 20 --duration 30
    python benchmarks/ussd_sessions.py --quick                # a smoke run of a few seconds

1. Model: ``UssdSessions`` alone (sans-IO): sessions opened per second, steps (screen +
   input) per second with all of them open, memory per open session.
2. SMPP: the fake SMSC in one process holds every session open (each subscriber answers
   each screen after ``--think`` seconds, jittered 0.5x-1.5x); the platform in another
   process is a pipelined ESME on the project's sans-IO core that answers every
   indication and input with the next screen (USSR request, its_session_info echoed), so
   sessions never end. Figures over ``--duration`` seconds once all are dialled: steps/s
   (a step is deliver_sm + submit_sm and their responses), the fewest open sessions, the
   platform's per-screen latency as the network measured it, and releases (none should
   happen: the timers are the defaults, 10 s for the platform to answer).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

ROOT_DIR = Path(__file__).resolve().parent.parent
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

from simulator.config import OperatorConfig, SmscConfig, UssdConfig  # noqa: E402
from simulator.smpp.constants import CommandId, Tag, UssdServiceOp  # noqa: E402
from simulator.smpp.pdu import BindTransceiver, DeliverSm, SubmitSm  # noqa: E402
from simulator.smpp.session import PduReceived, ResponseReceived, Role, Session  # noqa: E402
from simulator.ussd.session import UssdSession, UssdSessions  # noqa: E402

MENU = "1 حالتي\n2 موعد الصرف\n3 المشروطية\n4 تطوع\n5 كلمنا"


def msisdn(i: int) -> str:
    return f"2010{i:08d}"


# --- 1. the model alone ----------------------------------------------------------------------


def bench_model(n: int, rounds: int) -> dict[str, float]:
    cfg = UssdConfig(session_timeout=1e9, app_timeout=1e9, screen_timeout=1e9)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    s = UssdSessions(cfg)
    numbers = [msisdn(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, m in enumerate(numbers):
        s.dial(m, "*1442#", float(i))
    t1 = time.perf_counter()
    per_session = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    now = float(n)
    steps = 0
    t2 = time.perf_counter()
    for _ in range(rounds):
        for m in numbers:
            s.screen(m, MENU, False, now)
            s.answer(m, "2", now)
            steps += 1
        now += 1.0
        s.expire(now)
    t3 = time.perf_counter()
    assert len(s) == n
    return {
        "opened_per_s": n / (t1 - t0),
        "steps_per_s": steps / (t3 - t2),
        "bytes_per_session": per_session,
    }


# --- 2. over SMPP: the SMSC process -----------------------------------------------------------


class _AutoAnswer:
    """Answers every screen "1" after the think time, jittered."""

    def __init__(self, schedule: Any, loop_time: Any, think: float) -> None:
        self.schedule = schedule
        self.loop_time = loop_time
        self.think = think
        self.rng = random.Random(1442)
        self.stopped = False

    def on_screen(self, network: Any, session: UssdSession, final: bool) -> None:
        if not final and not self.stopped:
            due = self.loop_time() + self.think * (0.5 + self.rng.random())
            self.schedule(due, self._answer, (network, session.msisdn))

    def on_release(self, network: Any, session: UssdSession) -> None:
        pass

    def _answer(self, item: tuple[Any, str]) -> None:
        network, number = item
        if not self.stopped:
            network.answer(number, "1")


def smsc_main(port_q: Any, result_q: Any, n: int, think: float, duration: float) -> None:
    from simulator.smsc.server import SmscServer, new_event_loop
    from simulator.smsc.stats import LatencyHistogram

    async def run() -> None:
        cfg = SmscConfig(
            operators=[
                OperatorConfig(port=0, deliver_window=200, ussd=UssdConfig(session_timeout=3600.0))
            ]
        )
        server = SmscServer(cfg)
        await server.start()
        loop = asyncio.get_running_loop()
        net = server.ussd()
        handset = _AutoAnswer(server.schedule, loop.time, think)
        net.handset = handset
        port_q.put(server.port)
        await asyncio.to_thread(result_q.get)  # the platform is bound: go
        batch = max(1, int(n / max(think, 0.1) / 100))  # dial over ~one think time
        for i in range(0, n, batch):
            for j in range(i, min(n, i + batch)):
                net.dial(msisdn(j))
            await asyncio.sleep(0.01)
        counters = net.sessions.counters
        while len(net.sessions) < n and counters.open_total < n:
            await asyncio.sleep(0.05)
        await asyncio.sleep(think)  # one think time to reach the steady state
        net.screen_latency = LatencyHistogram()  # the steady state only, not the ramp
        steps0, t0 = counters.steps, time.perf_counter()
        cpu0 = time.process_time()
        fewest = len(net.sessions)
        deadline = t0 + duration
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            fewest = min(fewest, len(net.sessions))
        elapsed = time.perf_counter() - t0
        result_q.put(
            {
                "steps_per_s": (counters.steps - steps0) / elapsed,
                "fewest_open": fewest,
                "dialled": counters.dialled,
                "released": dict(counters.released),
                "p50": net.screen_latency.quantile(0.5),
                "p99": net.screen_latency.quantile(0.99),
                "smsc_cpu": (time.process_time() - cpu0) / elapsed,
            }
        )
        handset.stopped = True  # let the last steps settle before unbinding
        await asyncio.sleep(min(1.0, think))
        await server.stop(drain_timeout=0.5)

    loop = new_event_loop()
    loop.run_until_complete(run())


# --- 2. over SMPP: the platform process ------------------------------------------------------


class _Platform(asyncio.Protocol):
    """Answers each USSD deliver_sm with the next screen, pipelined up to the window."""

    def __init__(self, window: int) -> None:
        loop = asyncio.get_running_loop()
        self.session = Session(Role.ESME, window=window, clock=loop.time)
        self.transport: asyncio.Transport | None = None
        self.pending: list[SubmitSm] = []
        self.bound = loop.create_future()
        self.screen = MENU.encode("utf-16-be")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.session.send(BindTransceiver(system_id="rapidpro", password="secret"))
        self._flush()

    def data_received(self, data: bytes) -> None:
        for ev in self.session.receive_data(data):
            if type(ev) is PduReceived:
                pdu = ev.pdu
                if pdu.response_class is not None:
                    self.session.send(pdu.response())
                if pdu.command_id == CommandId.DELIVER_SM:
                    assert isinstance(pdu, DeliverSm)
                    self._answer(pdu)
            elif (
                type(ev) is ResponseReceived
                and ev.pdu.command_id == CommandId.BIND_TRANSCEIVER_RESP
            ):
                self.bound.set_result(True)
        while self.pending and self.session.window_free > 0:
            self.session.send(self.pending.pop())
        self._flush()

    def _answer(self, pdu: DeliverSm) -> None:
        info = pdu.tlv_bytes(Tag.ITS_SESSION_INFO) or b"\0\0"
        if info[1] & 1:
            return  # released
        self.pending.append(
            SubmitSm(
                tlvs={
                    Tag.USSD_SERVICE_OP: UssdServiceOp.USSR_REQUEST,
                    Tag.ITS_SESSION_INFO: bytes((info[0], (info[1] + 2) & 0xFE)),
                },
                source_addr="1442",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=pdu.source_addr,
                data_coding=8,
                short_message=self.screen,
            )
        )

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)


def platform_main(port: int, binds: int, ready_q: Any, stop_q: Any) -> None:
    from simulator.smsc.server import new_event_loop

    async def run() -> None:
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(binds):
            _, proto = await loop.create_connection(lambda: _Platform(100), "127.0.0.1", port)
            await proto.bound
            clients.append(proto)
        ready_q.put("bound")
        await asyncio.to_thread(stop_q.get)

    loop = new_event_loop()
    loop.run_until_complete(run())


def bench_smpp(n: int, think: float, duration: float, binds: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    port_q, result_q, stop_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
    smsc = ctx.Process(target=smsc_main, args=(port_q, result_q, n, think, duration))
    smsc.start()
    port = port_q.get(timeout=30)
    ready_q = ctx.Queue()
    platform = ctx.Process(target=platform_main, args=(port, binds, ready_q, stop_q))
    platform.start()
    ready_q.get(timeout=30)
    result_q.put("go")
    time.sleep(0.5)  # let the SMSC take "go" before waiting for its result
    result: dict[str, Any] = result_q.get(timeout=duration + think * 4 + n / 1000 + 120)
    stop_q.put("stop")
    smsc.join(30)
    platform.join(30)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50_000)
    ap.add_argument("--think", type=float, default=10.0, help="seconds per screen (real)")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--binds", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sessions, args.think, args.duration = 5_000, 2.0, 3.0
    console = Console()
    console.print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")

    model = bench_model(args.sessions, 3 if args.quick else 5)
    t = Table(title=f"USSD session model (sans-IO), {args.sessions:,} sessions open")
    for col in ("opened/s", "steps/s", "bytes/session"):
        t.add_column(col, justify="right")
    t.add_row(
        f"{model['opened_per_s']:,.0f}",
        f"{model['steps_per_s']:,.0f}",
        f"{model['bytes_per_session']:,.0f}",
    )
    console.print(t)

    r = bench_smpp(args.sessions, args.think, args.duration, args.binds)
    offered = args.sessions / args.think
    t = Table(
        title=(
            f"USSD over SMPP: {args.sessions:,} sessions, think {args.think:g} s "
            f"(offered {offered:,.0f} steps/s), {args.binds} binds, {args.duration:g} s"
        )
    )
    for col in ("steps/s", "fewest open", "screen p50", "screen p99", "SMSC CPU", "released"):
        t.add_column(col, justify="right")
    released = {k: v for k, v in r["released"].items() if v}
    t.add_row(
        f"{r['steps_per_s']:,.0f}",
        f"{r['fewest_open']:,}",
        f"{(r['p50'] or 0) * 1000:.1f} ms",
        f"{(r['p99'] or 0) * 1000:.1f} ms",
        f"{r['smsc_cpu'] * 100:.0f} %",
        str(released or 0),
    )
    console.print(t)


if __name__ == "__main__":
    main()
