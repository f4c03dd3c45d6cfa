"""Soak: hours of paced submit_sm with receipts through ``smsim smsc --journal``, its memory
sampled, then ``smsim audit`` must reconcile to nothing lost.

    python benchmarks/soak.py                         # 1 hour at 5,000 submit_sm/s
    python benchmarks/soak.py --duration 120          # a 2-minute check of the whole path
    python benchmarks/soak.py --duration 60 --rate 2000 --out /tmp/soak.csv
    python benchmarks/soak.py --tracemalloc 50000    # what a receipt waiting for a receiver costs

The SMSC runs as ``smsim smsc --config FILE --journal DIR`` (a subprocess on free
loopback ports, subscribers off: the fixed receipt policy, DELIVRD after
``--receipt-delay`` s, so every message gets its receipt within the run; the control API
on, /metrics scraped at every sample as Prometheus would). The driver, in its own
process, is the throughput benchmark's ESME on the project's sans-IO ``Session``
(transceiver binds, uvloop, every deliver_sm answered), paced **open loop**: a clock
decides how many submit_sm are due, independently of how fast the SMSC answers; what
the windows cannot take waits in a backlog (its peak is reported), so a slow SMSC shows
as a growing backlog and a lower achieved rate, never as a quietly lower offer.

Every ``--sample`` s: the SMSC's VmRSS (and its journal writer's) from /proc, its CPU,
the driver's counters. At the end: the driver waits for every receipt, unbinds, the SMSC
is stopped with SIGTERM (the journal hands over its last batch), and ``smsim audit``
runs on the journal. The curve goes to ``--out`` (CSV; a JSON summary beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.smsc_throughput import _wait_port, cpu_seconds, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Shared counters between the driver process and the sampler (index → name).
COUNTERS = ("submitted", "accepted", "refused", "receipts", "backlog", "backlog_peak", "errors")


# --- the driver (its own process) ------------------------------------------------------------


@dataclass
class SoakResult:
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    receipts: int = 0
    other_deliver: int = 0
    backlog_peak: int = 0
    #: Accepted when the pacer's clock reached the duration (the rest was backlog).
    accepted_in_time: int = 0
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    unbound: int = 0
    rtt_sample: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _driver_main(
    port: int,
    binds: int,
    window: int,
    rate: float,
    duration: float,
    drain: float,
    counters: Any,
    q: mp.Queue,  # type: ignore[type-arg]
) -> None:
    from simulator.smsc.server import new_event_loop

    loop = new_event_loop(True)
    try:
        q.put(loop.run_until_complete(_drive(port, binds, window, rate, duration, drain, counters)))
    except Exception as exc:
        q.put(SoakResult(errors=[repr(exc)]))


async def _drive(
    port: int,
    binds: int,
    window: int,
    rate: float,
    duration: float,
    drain: float,
    counters: Any,
) -> SoakResult:
    """Submit ``rate``/s for ``duration`` s over ``binds`` transceiver binds, open loop."""
    from simulator.smpp.constants import CommandId
    from simulator.smpp.pdu import BindTransceiver, SubmitSm, Unbind
    from simulator.smpp.session import PduReceived, ResponseReceived, Role, Session

    loop = asyncio.get_running_loop()
    res = SoakResult()
    body = b"Takaful & Karama: school attendance reminder for this month. Reply 1 to confirm."
    state = {"backlog": 0, "n": 0}
    rtt_every = max(1, int(rate) // 20)  # about 20 RTTs kept per second

    class Bind(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.session = Session(Role.ESME, window=window, enquire_link_interval=None)
            self.index = index
            self.bound = loop.create_future()
            self.unbound = loop.create_future()
            self.closed = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.session.send(BindTransceiver(system_id="rapidpro", password="secret"))
            self.transport.write(self.session.data_to_send())

        def fill(self) -> None:
            """Send from the shared backlog while this bind's window has room."""
            session = self.session
            while state["backlog"] > 0 and session.window_free > 0:
                state["backlog"] -= 1
                state["n"] += 1
                n = state["n"]
                session.send(
                    SubmitSm(
                        source_addr_ton=3,
                        source_addr="1442",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"2010{n % 100_000_000:08d}",
                        registered_delivery=1,
                        short_message=body,
                    )
                )
                res.submitted += 1
            out = session.data_to_send()
            if out:
                self.transport.write(out)

        def data_received(self, data: bytes) -> None:
            session = self.session
            for ev in session.receive_data(data):
                if type(ev) is ResponseReceived:
                    cid = ev.pdu.command_id
                    if cid == CommandId.SUBMIT_SM_RESP:
                        if ev.pdu.command_status == 0:
                            res.accepted += 1
                            if res.accepted % rtt_every == 0:
                                res.rtt_sample.append(ev.rtt)
                        else:
                            res.refused += 1
                    elif cid == CommandId.BIND_TRANSCEIVER_RESP and not self.bound.done():
                        self.bound.set_result(ev.pdu.command_status)
                    elif cid == CommandId.UNBIND_RESP and not self.unbound.done():
                        self.unbound.set_result(ev.pdu.command_status)
                    elif cid == CommandId.GENERIC_NACK:
                        res.errors.append(f"generic_nack {ev.pdu.command_status:#x}")
                elif type(ev) is PduReceived:
                    pdu = ev.pdu
                    if pdu.command_id == CommandId.DELIVER_SM:
                        if getattr(pdu, "esm_class", 0) & 0x04:
                            res.receipts += 1
                        else:
                            res.other_deliver += 1
                    if pdu.response_class is not None:
                        session.send(pdu.response())
            if session.is_bound:
                self.fill()
            else:
                out = session.data_to_send()
                if out:
                    self.transport.write(out)

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed = True
            if not self.unbound.done():
                res.errors.append(f"bind {self.index} lost: {exc}")

    protocols: list[Bind] = []
    for i in range(binds):
        _, proto = await loop.create_connection(functools.partial(Bind, i), "127.0.0.1", port)
        protocols.append(proto)
    for proto in protocols:
        status = await asyncio.wait_for(proto.bound, 10)
        if status:
            raise RuntimeError(f"bind refused: {status:#x}")

    def publish() -> None:
        counters[0] = res.submitted
        counters[1] = res.accepted
        counters[2] = res.refused
        counters[3] = res.receipts
        counters[4] = state["backlog"]
        counters[5] = res.backlog_peak
        counters[6] = len(res.errors)

    # The pacer: every tick, what the clock says is due joins the backlog, whatever the
    # SMSC did with the previous ones; the binds take from it as their windows allow.
    tick = 0.005
    t0 = loop.time()
    scheduled = 0
    total = int(rate * duration)
    last_publish = 0.0
    turn = 0
    while scheduled < total:
        await asyncio.sleep(tick)
        now = loop.time()
        due = min(total, int(rate * (now - t0))) - scheduled
        if due > 0:
            scheduled += due
            state["backlog"] += due
            if state["backlog"] > res.backlog_peak:
                res.backlog_peak = state["backlog"]
            for k in range(binds):  # start with a different bind each tick
                p = protocols[(turn + k) % binds]
                if p.session.is_bound and not p.closed:
                    p.fill()
            turn += 1
        if now - last_publish >= 0.5:
            publish()
            last_publish = now
        if all(p.closed for p in protocols):
            res.errors.append("every bind closed")
            break
    res.accepted_in_time = res.accepted
    while state["backlog"] > 0 and not all(p.closed for p in protocols):
        await asyncio.sleep(tick)
    res.send_seconds = loop.time() - t0
    publish()
    # Drain: every accepted message asked for a receipt; wait for them (acknowledged
    # as they come), then unbind each bind.
    t1 = loop.time()
    while res.receipts < res.accepted and loop.time() - t1 < drain:
        await asyncio.sleep(0.1)
        publish()
    res.drain_seconds = loop.time() - t1
    await asyncio.sleep(0.3)  # the last deliver_sm_resp on the wire before the unbind
    for p in protocols:
        if not p.closed:
            p.session.send(Unbind())
            p.transport.write(p.session.data_to_send())
    for p in protocols:
        try:
            if await asyncio.wait_for(p.unbound, 10) == 0:
                res.unbound += 1
        except TimeoutError:
            res.errors.append(f"bind {p.index}: no unbind_resp")
        p.transport.close()
    publish()
    return res


# --- the SMSC and its sampling ---------------------------------------------------------------


def smsc_config(port: int, control_port: int, receipt_delay: float, deliver_window: int) -> str:
    return (
        "[population]\nenabled = false\n"
        f"[control]\nenabled = true\nport = {control_port}\n"
        "[[operators]]\n"
        f"port = {port}\n"
        f"deliver_window = {deliver_window}\n"
        f"[operators.receipt]\ndelay = {receipt_delay}\n"
        "[[operators.accounts]]\nsystem_id = 'rapidpro'\npassword = 'secret'\n"
        "max_binds = 16\nwindow = 100\n"
    )


def rss_kb(pid: int) -> int:
    """VmRSS of one process, kB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def scrape(control_port: int) -> int:
    """Read /metrics once (as Prometheus would); its size in bytes, -1 on failure."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{control_port}/metrics", timeout=5) as r:
            return len(r.read())
    except OSError:
        return -1


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    if len(points) < 3:
        return float("nan")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return statistics.linear_regression(xs, ys).slope * 3600


def parse_audit(text: str) -> dict[str, int]:
    """The counts of ``smsim audit``'s table (its rich output)."""
    found: dict[str, int] = {}
    for name in (
        "accepted",
        "receipts expected",
        "receipts queued",
        "receipts delivered",
        "receipts lost",
        "MO lost",
        "torn lines",
    ):
        m = re.search(rf"│\s*{re.escape(name)}\s*│\s*(\d+)\s*│", text)
        if m:
            found[name] = int(m.group(1))
    return found


async def _tracemalloc_run(n: int, console: Console) -> None:
    """The SMSC in this process under tracemalloc: ``n`` submit_sm with receipts from a
    transmitter bind, so every receipt waits for a receiver (as when the ESME acknowledges
    slower than it submits); snapshot; a receiver binds and takes them all; snapshot."""
    import gc
    import tracemalloc

    from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig
    from simulator.esme.client import EsmeClient
    from simulator.smpp.pdu import SubmitSm
    from simulator.smsc.server import SmscServer

    cfg = SmscConfig(operators=[OperatorConfig(port=0, receipt=ReceiptConfig(delay=0.0))])
    body = b"Takaful & Karama: school attendance reminder for this month. Reply 1 to confirm."
    async with SmscServer(cfg) as smsc:
        tx = await EsmeClient.connect("127.0.0.1", smsc.port, mode="tx", window=50)

        def submit(to: str) -> asyncio.Future[Any]:
            return tx.send_nowait(
                SubmitSm(
                    source_addr="1442",
                    source_addr_ton=3,
                    destination_addr=to,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    registered_delivery=1,
                    short_message=body,
                )
            )

        await asyncio.gather(*(submit(f"2010{i:08d}") for i in range(50)))
        gc.collect()
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
        sent = 0
        while sent < n:
            batch = [submit(f"2011{sent + i:08d}") for i in range(min(50, n - sent))]
            await asyncio.gather(*batch)
            sent += len(batch)
        while smsc.stats().receipts_due < n + 50:
            await asyncio.sleep(0.05)
        gc.collect()
        queued = tracemalloc.take_snapshot()
        got = 0

        def on_deliver(_pdu: object) -> int:
            nonlocal got
            got += 1
            return 0

        rx = await EsmeClient.connect(
            "127.0.0.1", smsc.port, mode="rx", window=50, on_deliver=on_deliver
        )
        while got < n + 50:
            await asyncio.sleep(0.05)
        rx.delivered.clear()  # the client's own copies: not the SMSC's memory
        await rx.unbind()
        await tx.unbind()
        gc.collect()
        drained = tracemalloc.take_snapshot()
        tracemalloc.stop()
    for title, snap, base in (
        (f"{n:,} receipts waiting for a receiver (vs before)", queued, before),
        (
            "after a receiver took them all (vs before; the store keeps the last "
            f"{smsc.operator().store.history:,} final messages for query_sm)",
            drained,
            before,
        ),
    ):
        stats = snap.compare_to(base, "lineno")
        total = sum(st.size_diff for st in stats)
        table = Table(title=f"{title}: {total / 1e6:+.1f} MB, {total / n:+,.0f} B/message")
        for col in ("size diff", "count diff", "where"):
            table.add_column(col, justify="right" if col != "where" else "left")
        for st in stats[:12]:
            frame = st.traceback[0]
            table.add_row(
                f"{st.size_diff / 1e6:+.2f} MB",
                f"{st.count_diff:+,}",
                f"{Path(frame.filename).name}:{frame.lineno}",
            )
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tracemalloc",
        type=int,
        metavar="N",
        help="instead of the soak: the memory of N receipts waiting for a receiver",
    )
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of load (3600)")
    p.add_argument("--rate", type=float, default=5000.0, help="submit_sm/s offered (5000)")
    p.add_argument("--binds", type=int, default=4, help="transceiver binds (4)")
    p.add_argument("--window", type=int, default=50, help="unanswered submits per bind (50)")
    p.add_argument("--sample", type=float, default=10.0, help="s between RSS samples (10)")
    p.add_argument("--receipt-delay", type=float, default=0.2, help="s to each receipt (0.2)")
    p.add_argument(
        "--deliver-window",
        type=int,
        default=50,
        help="the SMSC's deliver_sm in flight per bind (50: as many receipts as submits in "
        "flight; the default 10 caps receipts at a fifth of the submits when the box is slow)",
    )
    p.add_argument("--drain", type=float, default=600.0, help="s to wait for the last receipts")
    p.add_argument("--journal", type=Path, help="journal directory (default: a temporary one)")
    p.add_argument("--keep-journal", action="store_true", help="do not delete the journal")
    p.add_argument(
        "--out",
        type=Path,
        help="the curve's CSV (default benchmarks/results/soak-<UTC date>-<duration>s.csv)",
    )
    args = p.parse_args(argv)
    if args.tracemalloc:
        asyncio.run(_tracemalloc_run(args.tracemalloc, Console(width=140)))
        return 0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # nohup: a log
    console = Console(width=140)
    started = datetime.now(UTC)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"soak-{started:%Y-%m-%d}-{int(args.duration)}s.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="smsim-soak-"))
    journal = args.journal or tmp / "journal"
    port, cport = free_port(), free_port()
    conf = tmp / "soak.toml"
    conf.write_text(smsc_config(port, cport, args.receipt_delay, args.deliver_window))
    smsim = [sys.executable, "-m", "simulator.cli"]
    cmd = [*smsim, "smsc", "--config", str(conf), "--journal", str(journal)]
    console.print(
        f"[bold]soak[/] {started:%Y-%m-%d %H:%M:%S} UTC: {args.rate:,.0f} submit_sm/s "
        f"(registered_delivery=1) for {args.duration:,.0f} s, {args.binds} trx binds × "
        f"window {args.window} (SMSC deliver window {args.deliver_window}), subscribers off, "
        f"receipts after {args.receipt_delay:g} s; "
        f"journal {journal}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    console.print(f"[dim]$ {' '.join(cmd)}[/]")
    log = open(tmp / "smsc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    samples: list[dict[str, float]] = []
    result: SoakResult | None = None
    audit_rc, audit_text = -1, ""
    try:
        _wait_port(port, proc, timeout=60)
        ctx = mp.get_context("spawn")
        counters = ctx.Array("q", len(COUNTERS), lock=False)
        q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        driver = ctx.Process(
            target=_driver_main,
            args=(port, args.binds, args.window, args.rate, args.duration, args.drain, counters, q),
        )
        t0 = time.monotonic()
        cpu_prev, t_prev = cpu_seconds(proc.pid), t0
        driver.start()
        next_sample = t0
        while True:
            if driver.exitcode is not None or not q.empty():
                break
            now = time.monotonic()
            if now >= next_sample:
                cpu = cpu_seconds(proc.pid)
                writer = children(proc.pid)
                row = {
                    "t": round(now - t0, 1),
                    "rss_mb": rss_kb(proc.pid) / 1024,
                    "writer_rss_mb": sum(rss_kb(c) for c in writer) / 1024,
                    "cpu_pct": 100 * (cpu - cpu_prev) / max(now - t_prev, 1e-9),
                    "metrics_bytes": scrape(cport),
                    "load1": os.getloadavg()[0],
                    **{name: int(counters[i]) for i, name in enumerate(COUNTERS)},
                }
                samples.append(row)
                cpu_prev, t_prev = cpu, now
                next_sample += args.sample
                if int(row["t"]) % 300 < args.sample:
                    console.print(
                        f"[dim]t={row['t']:>7.0f}s rss={row['rss_mb']:.1f} MB "
                        f"writer={row['writer_rss_mb']:.1f} MB cpu={row['cpu_pct']:.0f}% "
                        f"accepted={row['accepted']:,} receipts={row['receipts']:,} "
                        f"awaiting receipt={row['accepted'] - row['receipts']:,} "
                        f"backlog={row['backlog']:,} load={os.getloadavg()[0]:.1f}[/]"
                    )
            time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
        result = q.get(timeout=args.drain + 120)
        driver.join(30)
        if proc.poll() is not None:
            raise RuntimeError(f"smsim smsc died during the run (exit {proc.returncode})")
        final_rss = rss_kb(proc.pid) / 1024
        samples.append(
            {
                "t": round(time.monotonic() - t0, 1),
                "rss_mb": final_rss,
                "writer_rss_mb": sum(rss_kb(c) for c in children(proc.pid)) / 1024,
                "cpu_pct": float("nan"),
                "metrics_bytes": scrape(cport),
                "load1": os.getloadavg()[0],
                **{name: int(counters[i]) for i, name in enumerate(COUNTERS)},
            }
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    smsc_rc = proc.returncode
    # The journal: smsim audit, as an operator would run it after a load test.
    t_audit = time.monotonic()
    with console.status("smsim audit"):
        done = subprocess.run(
            [*smsim, "audit", str(journal)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "100"},
        )
    audit_rc, audit_text = done.returncode, done.stdout + done.stderr
    audit_seconds = time.monotonic() - t_audit
    journal_bytes = sum(f.stat().st_size for f in journal.glob("journal-*"))
    counts = parse_audit(audit_text)
    if not args.keep_journal and args.journal is None:
        shutil.rmtree(journal, ignore_errors=True)
    smsc_log_tail = (tmp / "smsc.log").read_text(errors="replace")[-2000:]
    shutil.rmtree(tmp, ignore_errors=True) if not args.keep_journal else None
    assert result is not None

    # --- report ---
    curve = Table(title="SMSC RSS (VmRSS), every 5 minutes")
    for col in (
        "t",
        "RSS MB",
        "writer RSS MB",
        "SMSC CPU %",
        "accepted",
        "receipts",
        "awaiting receipt",
        "backlog",
        "load 1 min",
    ):
        curve.add_column(col, justify="right")
    shown = [s for s in samples if int(s["t"]) % 300 < args.sample] + samples[-1:]
    for s in shown:
        curve.add_row(
            f"{s['t']:.0f} s",
            f"{s['rss_mb']:.1f}",
            f"{s['writer_rss_mb']:.1f}",
            f"{s['cpu_pct']:.0f}" if s["cpu_pct"] == s["cpu_pct"] else "-",
            f"{int(s['accepted']):,}",
            f"{int(s['receipts']):,}",
            f"{int(s['accepted'] - s['receipts']):,}",
            f"{int(s['backlog']):,}",
            f"{s['load1']:.1f}",
        )
    console.print(curve)
    loaded = [s for s in samples if s["t"] <= result.send_seconds]
    second_half = [(s["t"], s["rss_mb"]) for s in loaded if s["t"] >= result.send_seconds / 2]
    rss = [s["rss_mb"] for s in loaded] or [0.0]
    slope = slope_mb_per_hour(second_half)
    slope_all = slope_mb_per_hour([(s["t"], s["rss_mb"]) for s in loaded])
    # On the pacer's clock: accepted while the offer ran (the backlog sent after it is
    # not the offered rate).
    achieved = result.accepted_in_time / args.duration
    overall = result.accepted / max(result.send_seconds, 1e-9)
    rtts = sorted(result.rtt_sample)
    p50 = rtts[len(rtts) // 2] * 1000 if rtts else float("nan")
    p99 = rtts[int(0.99 * (len(rtts) - 1))] * 1000 if rtts else float("nan")
    lost = counts.get("receipts lost", -1) + counts.get("MO lost", 0)
    reconciled = (
        audit_rc == 0
        and lost == 0
        and counts.get("accepted") == result.accepted
        and counts.get("receipts delivered") == result.receipts
    )
    summary = {
        "started_utc": started.isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "offered_rate": args.rate,
        "achieved_rate": achieved,
        "accepted_per_s_until_backlog_sent": overall,
        "binds": args.binds,
        "window": args.window,
        "deliver_window": args.deliver_window,
        "population": "off",
        "receipt_delay_s": args.receipt_delay,
        "rss_min_mb": min(rss),
        "rss_max_mb": max(rss),
        "rss_slope_mb_per_hour_second_half": slope,
        "rss_slope_mb_per_hour_all": slope_all,
        "resp_p50_ms_sampled": p50,
        "resp_p99_ms_sampled": p99,
        "driver": {k: v for k, v in asdict(result).items() if k != "rtt_sample"},
        "smsc_exit": smsc_rc,
        "journal_bytes": journal_bytes,
        "audit_exit": audit_rc,
        "audit": counts,
        "audit_seconds": audit_seconds,
        "reconciled": reconciled,
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "curve_csv": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
    }
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(samples[0]))
        w.writeheader()
        for s in samples:
            w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in s.items()})
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")

    figures = Table(title="soak")
    figures.add_column("what")
    figures.add_column("value", justify="right")
    for name, value in (
        ("offered submit_sm/s", f"{args.rate:,.0f}"),
        ("achieved submit_sm/s within the duration", f"{achieved:,.1f}"),
        (
            "accepted ÷ seconds until the backlog was sent",
            f"{overall:,.1f} over {result.send_seconds:,.0f} s",
        ),
        (
            "submitted / accepted / refused",
            f"{result.submitted:,} / {result.accepted:,} / {result.refused:,}",
        ),
        ("receipts received and acknowledged", f"{result.receipts:,}"),
        ("backlog peak (submits due, not yet sent)", f"{result.backlog_peak:,}"),
        ("submit_sm_resp p50 / p99 ms (sampled)", f"{p50:.2f} / {p99:.2f}"),
        ("drain (last receipts)", f"{result.drain_seconds:.1f} s"),
        ("binds unbound cleanly", f"{result.unbound} of {args.binds}"),
        ("RSS min / max MB", f"{min(rss):.1f} / {max(rss):.1f}"),
        ("RSS slope, second half (MB/hour)", f"{slope:+.2f}"),
        ("RSS slope, whole run (MB/hour)", f"{slope_all:+.2f}"),
        ("journal on disk", f"{journal_bytes / 1e9:.2f} GB"),
        ("smsim audit (exit, seconds)", f"{audit_rc}, {audit_seconds:.0f} s"),
        (
            "audit: accepted / receipted / lost",
            f"{counts.get('accepted', '?'):,} / "
            f"{counts.get('receipts delivered', '?'):,} / {lost:,}",
        ),
        ("driver errors", "; ".join(result.errors[:3]) or "none"),
    ):
        figures.add_row(name, value)
    console.print(figures)
    if reconciled:
        console.print(
            "[green]RECONCILED[/]: every accepted message's receipt was delivered and "
            "acknowledged; the journal agrees with the driver"
        )
    else:
        console.print("[red]NOT RECONCILED[/]")
        console.print(audit_text[-3000:])
        console.print(f"[dim]SMSC log tail:\n{smsc_log_tail}[/]")
    console.print(f"curve: {out}  summary: {out.with_suffix('.json')}")
    return 0 if reconciled and not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
