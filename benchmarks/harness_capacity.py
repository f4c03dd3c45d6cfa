"""Harness capacity: MO -> reply/s that ``smsim run`` can drive and measure end to end.

    .venv/bin/python benchmarks/harness_capacity.py                 # the table in README.md
    .venv/bin/python benchmarks/harness_capacity.py --rates 5000 --workers 1 --duration 20

The real product path, not a prototype: ``smsim run`` with a generated constant-rate
scenario (3.5 M subscribers, behaviour on), Locust headless with N worker processes,
the SMSC and its Locust channel in the runner's process, and ``--target`` pointing away
from the reference platform: the platform is ``locust_channel/instant_platform.py``, a
trivial ESME that answers every MO at once, so what is measured is the harness. Each
row: offered MO/s, MO->reply/s measured (replies timed at the SMSC / run time), p50/p99
from the run's summary.json, and CPU microseconds per reply of the runner (SMSC,
subscribers, channel), the Locust processes, and the instant platform. Not a test: it asserts
nothing; the target (>= 5,000 MO->reply/s) is shown beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SMSIM = [sys.executable, "-m", "simulator.cli"]
INSTANT = ROOT / "benchmarks" / "locust_channel" / "instant_platform.py"
TARGET = 5000.0

SCENARIO = """\
name: harness-capacity
population: {{size: 3500000, seed: 1442}}
time: {{scale: 1, duration: {duration}s, drain: 10s}}
load:
  users: {users}
  processes: {workers}
  reply_timeout: 10s
  mo: {{shape: constant, rate: {rate}, texts: {{خدمات: 1}}}}
gates:
  lost_messages: 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def one(
    rate: float, workers: int, duration: float, tmp: Path, partition: bool = False
) -> dict[str, Any]:
    name = f"harness-capacity-{int(rate)}-{workers}{'-p' if partition else ''}"
    scen = tmp / f"{name}.yaml"
    scen.write_text(
        SCENARIO.format(duration=duration, users=2 * workers, workers=workers, rate=rate).replace(
            "name: harness-capacity", f"name: {name}"
        ),
        encoding="utf-8",
    )
    out = tmp / name
    port = free_port()
    runner = subprocess.Popen(
        [
            *SMSIM,
            "run",
            str(scen),
            "--target",
            "http://127.0.0.1:9",
            "--smsc-port",
            str(port),
            "--out",
            str(out),
            "--no-live",
            *(["--partition"] if partition else []),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # Partitioned: part k's SMPP port is port + 10·k; the instant platform binds to every
    # part and answers each MO on the bind it came in on, i.e. at the part owning it.
    smscs = [f"127.0.0.1:{port + 10 * k}" for k in range(workers if partition else 1)]
    platform = subprocess.Popen(
        [
            sys.executable,
            str(INSTANT),
            *[a for s in smscs for a in ("--smsc", s)],
            "--binds",
            "2",
            "--window",
            "50",
            "--duration",
            str(duration + 120),
            # Parts start in processes of their own: on a loaded box that can take a while.
            "--connect-timeout",
            "120",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    rp = psutil.Process(runner.pid)
    pp = psutil.Process(platform.pid)
    # Sample the CPU of everything while the load runs (children come and go).
    cpu: dict[str, float] = {"runner": 0.0, "parts": 0.0, "locust": 0.0, "platform": 0.0}
    seen: dict[int, tuple[str, float]] = {}
    t0 = time.monotonic()
    while runner.poll() is None and time.monotonic() - t0 < duration + 120:
        groups = {"runner": [rp], "platform": [pp]}
        groups["locust"], groups["parts"] = [], []
        try:
            for c in rp.children(recursive=True):
                line = " ".join(c.cmdline())
                if "locust" in line:
                    groups["locust"].append(c)
                elif "simulator.cli worker" in line or "multiprocessing" in line:
                    groups["parts"].append(c)  # the local worker host and its parts
        except psutil.NoSuchProcess:
            pass
        for g, procs in groups.items():
            for p in procs:
                try:
                    t = p.cpu_times()
                    seen[p.pid] = (g, t.user + t.system)
                except psutil.NoSuchProcess:
                    pass
        time.sleep(0.5)
    runner.wait(30)
    platform.terminate()
    platform.wait(30)
    for g, c in seen.values():
        cpu[g] += c
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    c = summary["counters"]
    f = summary["figures"]
    replies = c["replies"]
    return {
        "rate": rate,
        "workers": workers,
        "offered": c["mo_from_locust"] / duration,
        "replied": replies / duration,
        "timeouts": c["reply_timeouts"],
        "p50": (f["mo_reply_p50"] or 0) * 1000,
        "p99": (f["mo_reply_p99"] or 0) * 1000,
        # CPU microseconds per reply measured, by process group.
        "partition": float(partition),
        "by_part": c.get("mo_from_locust_by_part", [c["mo_from_locust"]]),
        # Partitioned runs: each part's MO/s and CPU µs per MO while the load ran.
        "part_rate": c.get("part_mo_per_s", []),
        "part_cpu": c.get("part_cpu_us_per_mo", []),
        "cpu_runner": 1e6 * cpu["runner"] / max(1, replies),
        "cpu_parts": 1e6 * cpu["parts"] / max(1, replies),
        "cpu_locust": 1e6 * cpu["locust"] / max(1, replies),
        "cpu_platform": 1e6 * cpu["platform"] / max(1, replies),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[2000, 5000, 8000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument(
        "--partition",
        action="store_true",
        help="the SMSC side as one part per Locust worker (smsim run --partition)",
    )
    args = ap.parse_args()
    console = Console(width=140)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for workers in args.workers:
            for rate in args.rates:
                console.print(f"rate {rate:g}/s, {workers} Locust worker(s) ...")
                rows.append(one(rate, workers, args.duration, Path(d), args.partition))
    table = Table(title=f"smsim run harness capacity (target >= {TARGET:,.0f} MO->reply/s)")
    for col in (
        "offered/s",
        "workers",
        "sent/s",
        "replies/s",
        "t/o",
        "p50 ms",
        "p99 ms",
        "µs/msg run/parts/loc/plat",
        "per part: MO/s @ µs/MO (load only)",
        "load",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['rate']:,.0f}",
            f"{r['workers']:.0f}",
            f"{r['offered']:,.0f}",
            f"{r['replied']:,.0f}",
            f"{r['timeouts']:,.0f}",
            f"{r['p50']:.1f}",
            f"{r['p99']:.1f}",
            f"{r['cpu_runner']:.0f} / {r['cpu_parts']:.0f} / {r['cpu_locust']:.0f}"
            f" / {r['cpu_platform']:.0f}",
            ", ".join(
                f"{a:,.0f} @ {b:.0f}" for a, b in zip(r["part_rate"], r["part_cpu"], strict=True)
            ),
            f"{r['load']:.2f}",
        )
    console.print(table)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
