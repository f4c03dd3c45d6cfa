"""The reference platform's own ceiling, TPS unthrottled: MO->reply/s over SMPP and
broadcast msg/s through the REST API.

Two processes, so the platform has a core to itself: this one runs the platform
(``PlatformRuntime``, the same object ``smsim platform`` runs, on uvloop), a child runs
the fake SMSC (fixed receipts, no subscriber model) and the driver.

- MO->reply: N numbers text ``help`` (a keyword: the platform creates the contact and
  answers with the services menu) and then ``1`` (a reply to the waiting run: the
  platform answers with the pensions text). The figure is 2N MO over the seconds from
  the first MO queued at the SMSC to the last reply accepted there. Every reply is also
  receipted back to the platform, as in production.
- Broadcast: M recipients posted to ``/api/v2/broadcasts.json`` 100 at a time (RapidPro's
  limit) by the child; the figure is M over the seconds from the first POST to the last
  submit_sm accepted at the SMSC.

    .venv/bin/python benchmarks/platform_throughput.py            # 20,000 + 20,000
    .venv/bin/python benchmarks/platform_throughput.py --mo 5000 --broadcast 5000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from simulator.config import (
    AccountConfig,
    OperatorConfig,
    PlatformConfig,
    ReceiptConfig,
    SmppBindConfig,
    SmscConfig,
)

TOKEN = "bench"


def numbers(n: int, base: int) -> list[str]:
    return [f"2010{base + i:08d}" for i in range(n)]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ----------------------------------------------------------------------------- the child


async def _wait_accepted(smsc: Any, target: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while smsc.stats().accepted < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{smsc.stats().accepted} of {target} accepted")
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def _child(conn: Connection, mo: int, broadcast: int, timeout: float) -> None:
    import aiohttp

    from simulator.smsc.server import SmscServer

    cfg = SmscConfig(
        operators=[
            OperatorConfig(
                port=0,
                deliver_window=100,
                accounts=[AccountConfig(window=1000)],
                receipt=ReceiptConfig(delay=0.0),
                enquire_link_interval=None,
                inactivity_timeout=None,
            )
        ],
    )
    smsc = SmscServer(cfg)
    await smsc.start()
    conn.send(smsc.port)
    loop = asyncio.get_running_loop()
    api_url = await loop.run_in_executor(None, conn.recv)  # the platform is bound, serving
    results: dict[str, Any] = {}
    nums = numbers(mo, 0)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    for n in nums:
        smsc.inject_mo(n, "help")
    await _wait_accepted(smsc, mo, timeout)
    for n in nums:
        smsc.inject_mo(n, "1")
    t1 = await _wait_accepted(smsc, 2 * mo, timeout)
    results["mo"] = (2 * mo, t1 - t0, cpu_seconds() - cpu0)

    if broadcast:
        recipients = [f"tel:+{n}" for n in numbers(broadcast, 50_000_000)]
        base = smsc.stats().accepted
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        headers = {"Authorization": f"Token {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            sem = asyncio.Semaphore(8)

            url = f"{api_url}/api/v2/broadcasts.json"

            async def post(urns: list[str]) -> None:
                body = {"text": "Takaful: info", "urns": urns}
                async with sem, http.post(url, json=body) as resp:
                    assert resp.status == 201, await resp.text()

            await asyncio.gather(*(post(recipients[i : i + 100]) for i in range(0, broadcast, 100)))
            t_posted = time.perf_counter()
        t1 = await _wait_accepted(smsc, base + broadcast, timeout)
        results["broadcast"] = (broadcast, t1 - t0, cpu_seconds() - cpu0, t_posted - t0)
    await asyncio.sleep(0.5)  # the last receipts
    results["receipts"] = smsc.stats().receipts_delivered
    conn.send(results)
    await loop.run_in_executor(None, conn.recv)
    await smsc.stop()


def child_main(conn: Connection, mo: int, broadcast: int, timeout: float) -> None:
    from simulator.smsc.server import new_event_loop

    loop = new_event_loop(True)
    try:
        loop.run_until_complete(_child(conn, mo, broadcast, timeout))
    finally:
        loop.close()


# ----------------------------------------------------------------------------- the platform


async def _platform(conn: Connection, window: int, workdir: Path) -> dict[str, Any]:
    from simulator.platform.runtime import PlatformRuntime

    port = conn.recv()
    cfg = PlatformConfig(
        api_port=0,
        tps=0,
        database=str(workdir / "bench.sqlite3"),
        binds=[SmppBindConfig(port=port, window=window)],
    )
    rt = PlatformRuntime(cfg, TOKEN, reset=True)
    await rt.start()
    cpu0 = cpu_seconds()
    conn.send(rt.url)
    loop = asyncio.get_running_loop()
    results: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
    results["platform_cpu"] = cpu_seconds() - cpu0
    results["store_rows"] = rt.store.stats.rows
    results["flush_seconds"] = rt.store.stats.seconds
    results["service"] = rt.service.stats
    results["sender"] = rt.sender.stats
    conn.send("stop")
    await rt.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mo", type=int, default=20_000, help="numbers texting (2 MO each)")
    ap.add_argument("--broadcast", type=int, default=20_000, help="broadcast recipients")
    ap.add_argument("--window", type=int, default=100, help="the platform's SMPP window")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    load_before = os.getloadavg()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=child_main, args=(child, args.mo, args.broadcast, args.timeout)
    )
    proc.start()
    from simulator.smsc.server import new_event_loop

    loop = new_event_loop(True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            r = loop.run_until_complete(_platform(parent, args.window, Path(tmp)))
        finally:
            loop.close()
    proc.join(30)
    load_after = os.getloadavg()

    table = Table(title="reference platform throughput (TPS unthrottled, SMPP, loopback)")
    for col in ("phase", "messages", "seconds", "msg/s", "SMSC+driver CPU s"):
        table.add_column(col, justify="right")
    n, secs, cpu = r["mo"]
    table.add_row("MO -> reply", f"{n:,}", f"{secs:.2f}", f"{n / secs:,.0f}", f"{cpu:.1f}")
    if "broadcast" in r:
        n, secs, cpu, posted = r["broadcast"]
        table.add_row(
            f"broadcast (API posts done at {posted:.2f}s)",
            f"{n:,}",
            f"{secs:.2f}",
            f"{n / secs:,.0f}",
            f"{cpu:.1f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"platform CPU {r['platform_cpu']:.1f}s for both phases; SQLite rows written "
        f"{r['store_rows']:,} in {r['flush_seconds']:.1f}s (flusher thread); receipts "
        f"delivered {r['receipts']:,}; load average before {load_before[0]:.2f}, after "
        f"{load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )
    console.print(f"service {r['service']}\nsender {r['sender']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
