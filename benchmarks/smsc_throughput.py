"""Sustained submit_sm/s with a receipt for each, through one SMSC, side by side with peers.

    python benchmarks/smsc_throughput.py                       # ours, smpp34, npm smpp
    python benchmarks/smsc_throughput.py --target ours --smsc-procs 2
    python benchmarks/smsc_throughput.py --quick               # a smoke run of a few seconds
    python benchmarks/smsc_throughput.py --subscribers         # ours without / with the population
    python benchmarks/smsc_throughput.py --control             # control API + metrics off / on
    python benchmarks/smsc_throughput.py --journal             # journal off / on / on + metrics

The driver is a pipelined ESME on the project's sans-IO core (window 10 per bind,
several transceiver binds, in its own processes, uvloop), so the same driver loads every
SMSC. Each target runs as a subprocess on a free loopback port; its CPU time is read
from /proc. Figures: accepted submit_sm/s, receipts/s, p50/p99 submit_sm_resp latency.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT_DIR = Path(__file__).resolve().parent.parent
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the driver (runs in its own processes) --------------------------------------------------


@dataclass
class DriverResult:
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    receipts: int = 0
    mo: int = 0
    rtts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _driver_main(
    port: int,
    binds: int,
    window: int,
    warmup: float,
    duration: float,
    q: mp.Queue,  # type: ignore[type-arg]
    numbers: list[str] | None = None,
    cpu: int | None = None,
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        q.put(loop.run_until_complete(_drive(port, binds, window, warmup, duration, numbers)))
    except Exception as exc:
        q.put(DriverResult(errors=[repr(exc)]))


async def _drive(
    port: int,
    binds: int,
    window: int,
    warmup: float,
    duration: float,
    numbers: list[str] | None = None,
) -> DriverResult:
    from simulator.smpp.constants import CommandId
    from simulator.smpp.pdu import BindTransceiver, SubmitSm
    from simulator.smpp.session import PduReceived, ResponseReceived, Role, Session

    loop = asyncio.get_running_loop()
    result = DriverResult()
    state = {"measuring": False, "running": True}
    body = b"Takaful & Karama: school attendance reminder for this month. Reply 1 to confirm."

    class Bind(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.session = Session(Role.ESME, window=window, enquire_link_interval=None)
            self.index = index
            self.n = 0
            self.bound = loop.create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.session.send(BindTransceiver(system_id="rapidpro", password="secret"))
            transport.write(self.session.data_to_send())  # type: ignore[attr-defined]

        def submit(self) -> None:
            session = self.session
            while state["running"] and session.window_free > 0:
                self.n += 1
                if numbers:
                    to = numbers[(self.index + self.n * binds) % len(numbers)]
                else:
                    to = f"2010{self.index:02d}{self.n % 1000000:06d}"
                session.send(
                    SubmitSm(
                        source_addr_ton=3,
                        source_addr="1442",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=to,
                        registered_delivery=1,
                        short_message=body,
                    )
                )
                if state["measuring"]:
                    result.submitted += 1

        def data_received(self, data: bytes) -> None:
            session = self.session
            measuring = state["measuring"]
            for ev in session.receive_data(data):
                if type(ev) is ResponseReceived:
                    cid = ev.pdu.command_id
                    if cid == CommandId.SUBMIT_SM_RESP:
                        if measuring:
                            if ev.pdu.command_status == 0:
                                result.accepted += 1
                                result.rtts.append(ev.rtt)
                            else:
                                result.refused += 1
                    elif cid == CommandId.BIND_TRANSCEIVER_RESP and not self.bound.done():
                        self.bound.set_result(ev.pdu.command_status)
                elif type(ev) is PduReceived:
                    pdu = ev.pdu
                    if pdu.command_id == CommandId.DELIVER_SM and measuring:
                        if pdu.esm_class & 0x04:  # a receipt
                            result.receipts += 1
                        else:  # a subscriber's reply
                            result.mo += 1
                    if pdu.response_class is not None:
                        session.send(pdu.response())
            if session.is_bound:
                self.submit()
            out = session.data_to_send()
            if out:
                self.transport.write(out)  # type: ignore[attr-defined]

        def connection_lost(self, exc: Exception | None) -> None:
            if state["running"]:
                result.errors.append(f"bind {self.index} lost: {exc}")

    protocols = []
    for i in range(binds):
        _, proto = await loop.create_connection(lambda i=i: Bind(i), "127.0.0.1", port)
        protocols.append(proto)
    for proto in protocols:
        status = await asyncio.wait_for(proto.bound, 10)
        if status:
            raise RuntimeError(f"bind refused: {status:#x}")
        proto.submit()
        proto.transport.write(proto.session.data_to_send())
    await asyncio.sleep(warmup)
    state["measuring"] = True
    await asyncio.sleep(duration)
    state["measuring"] = False
    state["running"] = False
    await asyncio.sleep(0.2)
    for proto in protocols:
        proto.transport.close()
    return result


# --- targets ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("target did not listen in time")


#: The population's settings for ``--subscribers``: every fate is final at once (a
#: handset that is off expires at once instead of waiting for retries), so every message
#: gets its receipt during the run, with the population's mix of outcomes.
AT_ONCE_DELIVERY = (
    "[delivery]\nnetwork_delay = 0.0001\nnetwork_delay_sigma = 0.0\n"
    "retry_schedule = []\nvalidity = 0.0001\n"
)


#: Behaviour for the "nobody replies" variant: the population and delivery models run,
#: the behaviour model decides no reply for anyone (not even STOP).
SILENT_BEHAVIOUR = (
    "[behaviour]\nunprompted_reply_probability = 0.0\nstop_share = 0.0\n"
    "[behaviour.reply_probability]\neager = 0.0\nnormal = 0.0\nrare = 0.0\nnever = 0.0\n"
)


def smsc_config(
    port: int,
    population: int | None,
    seed: int,
    time_scale: float,
    silent: bool = False,
    control_port: int | None = None,
    journal: Path | None = None,
) -> str:
    """``smsim smsc``'s file: receipts due at once; the population off, or on (size); the
    control API and metrics off, or on at ``control_port``; the journal in ``journal``."""
    control = (
        "[control]\nenabled = false\n"
        if control_port is None
        else f"[control]\nenabled = true\nport = {control_port}\n"
    )
    if journal is not None:
        control += f"[journal]\nenabled = true\npath = '{journal}'\n"
    text = (
        f"time_scale = {time_scale}\n"
        "[[operators]]\n"
        f"port = {port}\n"
        "inactivity_timeout = 600\n"
        "[operators.receipt]\ndelay = 0.0\n"
        "[[operators.accounts]]\nsystem_id = 'rapidpro'\npassword = 'secret'\n"
        "max_binds = 64\nwindow = 100\n"
    )
    if population is None:
        return text + "[population]\nenabled = false\n" + control
    return (
        text
        + control
        + f"[population]\nenabled = true\nsize = {population}\nseed = {seed}\n"
        + AT_ONCE_DELIVERY
        + (SILENT_BEHAVIOUR if silent else "")
    )


def start_target(
    name: str,
    port: int,
    smsc_procs: int,
    workdir: Path,
    conf_text: str | None = None,
    cpu: int | None = None,
) -> subprocess.Popen[bytes]:
    if name.startswith("ours"):
        conf = workdir / "bench.toml"
        conf.write_text(conf_text or smsc_config(port, None, 0, 1.0))
        cmd = [sys.executable, "-m", "simulator.cli", "smsc", "--config", str(conf)]
        if smsc_procs > 1:
            cmd += ["--processes", str(smsc_procs)]
    elif name == "smpp34":
        cmd = [sys.executable, str(PEERS / "smpp34_smsc.py"), "--port", str(port)]
    elif name == "npm":
        node = shutil.which("node")
        if node is None or not (PEERS / "node_modules" / "smpp").exists():
            raise RuntimeError("npm peer not installed: npm install --prefix benchmarks/peers")
        cmd = [node, str(PEERS / "npm_smsc.js"), "--port", str(port)]
    else:
        raise ValueError(name)
    if cpu is not None:  # every thread of it on that CPU (--pin)
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    _wait_port(port, proc)
    return proc


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and all its descendants (SO_REUSEPORT workers)."""
    total = 0.0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-g", str(os.getpgid(pid))], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()] or [pid]
    except (OSError, ValueError):
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError):
            pass
    return total


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) ticks of the machine's CPUs (``/proc/stat``): the time the host ran
    something else on them, which no process here is charged for but every run feels."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def population_numbers(size: int, seed: int, k: int) -> list[str]:
    """``k`` distinct random members of the population the SMSC derives (same size and
    seed), in random order: what the driver sends to when comparing with subscribers."""
    import random

    from simulator.config import PopulationConfig
    from simulator.subscribers.population import Population

    pop = Population(PopulationConfig(size=size, seed=seed))
    return pop.sample(min(k, size), random.Random(seed))


class Scraper:
    """Reads /metrics and /stats of the control API every ``interval`` s, as Prometheus
    and ``smsim top`` would, and times each scrape."""

    def __init__(self, port: int, interval: float) -> None:
        import threading

        self.url = f"http://127.0.0.1:{port}"
        self.interval = interval
        self.times: list[float] = []
        self.bytes = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import urllib.request

        while not self._stop.wait(self.interval):
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
                    self.bytes = len(r.read())
                with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
                    r.read()
            except OSError as exc:
                self.errors.append(repr(exc))
            self.times.append(time.perf_counter() - t0)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def run_one(
    name: str,
    args: argparse.Namespace,
    conf_text: str | None = None,
    numbers: list[str] | None = None,
    control_port: int | None = None,
) -> dict[str, float | str]:
    port = free_port()
    if conf_text is not None:
        conf_text = conf_text.replace("port = 0\n", f"port = {port}\n", 1)
    scraper = Scraper(control_port, args.scrape_interval) if control_port else None
    with tempfile.TemporaryDirectory() as tmp:
        procs = args.smsc_procs if name.startswith("ours") else 1
        pin = args.pin
        proc = start_target(name, port, procs, Path(tmp), conf_text, cpu=0 if pin else None)
        try:
            ctx = mp.get_context("spawn")
            q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
            per = max(1, args.binds // args.driver_procs)
            drivers = [
                ctx.Process(
                    target=_driver_main,
                    args=(
                        *(port, per, args.window, args.warmup, args.duration, q, numbers),
                        1 if pin else None,
                    ),
                )
                for _ in range(args.driver_procs)
            ]
            for d in drivers:
                d.start()
            time.sleep(args.warmup + 0.5)  # spawn + bind + warmup, roughly
            cpu0 = cpu_seconds(proc.pid)
            steal0, ticks0 = cpu_ticks()
            t0 = time.monotonic()
            if scraper is not None:
                with scraper:
                    results = [q.get(timeout=args.warmup + args.duration + 60) for _ in drivers]
            else:
                results = [q.get(timeout=args.warmup + args.duration + 60) for _ in drivers]
            wall = time.monotonic() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            steal1, ticks1 = cpu_ticks()
            for d in drivers:
                d.join(10)
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
    errors = [e for r in results for e in r.errors]
    if scraper is not None:
        errors += scraper.errors[:1]
        if not scraper.times:
            errors.append("no scrape completed")
    rtts = sorted(x for r in results for x in r.rtts)
    accepted = sum(r.accepted for r in results)
    receipts = sum(r.receipts for r in results)
    mo = sum(r.mo for r in results)

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000 if rtts else float("nan")

    return {
        "target": name,
        "submit_s": accepted / args.duration,
        "receipts_s": receipts / args.duration,
        "mo_s": mo / args.duration,
        "refused": sum(r.refused for r in results),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu_pct": 100 * cpu / max(wall, 1e-9),
        "steal_pct": 100 * (steal1 - steal0) / max(ticks1 - ticks0, 1),
        "per_cpu_s": accepted / cpu * (wall / args.duration) if cpu else float("nan"),
        "errors": "; ".join(errors[:2]),
        "scrapes": len(scraper.times) if scraper else 0,
        "scrape_ms": 1000 * max(scraper.times) if scraper and scraper.times else float("nan"),
        "metrics_bytes": scraper.bytes if scraper else 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=["ours", "smpp34", "npm", "all"], default="all")
    p.add_argument("--binds", type=int, default=4)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--driver-procs", type=int, default=1)
    p.add_argument("--smsc-procs", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--quick", action="store_true", help="2 s runs, for a smoke test")
    p.add_argument(
        "--pin",
        action="store_true",
        help="the SMSC (all its threads) on CPU 0, the driver on CPU 1: what the SMSC's "
        "own threads cost then comes out of its own throughput, not the driver's core",
    )
    p.add_argument(
        "--subscribers",
        action="store_true",
        help="ours twice, to random members of the population: population off, then on",
    )
    p.add_argument("--population", type=int, default=3_500_000, help="with --subscribers")
    p.add_argument("--seed", type=int, default=1442, help="with --subscribers")
    p.add_argument(
        "--time-scale",
        type=float,
        action="append",
        help="with --subscribers: simulated s per real s, one run per value (default 1)",
    )
    p.add_argument(
        "--numbers", type=int, default=1_000_000, help="distinct destinations (--subscribers)"
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="with --subscribers/--control: runs of each"
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="ours twice: control API + metrics off, then on and scraped",
    )
    p.add_argument(
        "--scrape-interval", type=float, default=1.0, help="with --control: s between scrapes"
    )
    p.add_argument(
        "--journal",
        action="store_true",
        help="ours three times: journal off, on (fsync per interval, the default), on with "
        "metrics scraped",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 0.5
    if args.subscribers:
        return subscribers_main(args)
    if args.control:
        return control_main(args)
    if args.journal:
        return journal_main(args)
    targets = ["ours", "smpp34", "npm"] if args.target == "all" else [args.target]
    console = Console(width=160)
    rows = []
    for name in targets:
        with console.status(
            f"{name}: {args.binds} binds × window {args.window}, {args.duration:.0f} s"
        ):
            try:
                rows.append(run_one(name, args))
            except Exception as exc:
                rows.append({"target": name, "errors": str(exc)})
    table = Table(
        title=f"SMSC throughput: {args.binds} trx binds × window {args.window}, "
        f"{args.driver_procs} driver proc(s), SMSC procs {args.smsc_procs}, {args.duration:.0f} s"
    )
    for col in (
        "target",
        "submit_sm/s",
        "receipts/s",
        "p50 resp ms",
        "p99 resp ms",
        "SMSC CPU %",
        "msg per SMSC CPU-s",
        "ours ÷ this",
        "errors",
    ):
        table.add_column(col, justify="left" if col in ("target", "errors") else "right")
    ours = next((r for r in rows if r["target"] == "ours" and "submit_s" in r), None)
    for r in rows:
        if "submit_s" not in r:
            table.add_row(str(r["target"]), *["-"] * 7, str(r.get("errors", "")))
            continue
        ratio = (
            f"{float(ours['submit_s']) / float(r['submit_s']):.2f}"
            if ours and r["submit_s"]
            else "-"
        )
        table.add_row(
            str(r["target"]),
            f"{r['submit_s']:,.0f}",
            f"{r['receipts_s']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_pct']:.0f}",
            f"{r['per_cpu_s']:,.0f}",
            ratio,
            str(r["errors"]),
        )
    console.print(table)
    return 0 if all(not r.get("errors") for r in rows) else 1


def subscribers_main(args: argparse.Namespace) -> int:
    """The SMSC without and with the subscriber engine, same driver, same destinations:
    random members of the population, so with the engine every message meets a person
    (profile, fate, reassembly, history, behaviour). Runs alternate (off, on, off, on...)
    so load from other processes hits both alike; the best of ``--repeat`` runs each."""
    console = Console(width=160)
    scales = args.time_scale or [1.0]
    with console.status("sampling destinations"):
        numbers = population_numbers(args.population, args.seed, args.numbers)
    variants: list[tuple[str, str]] = [("ours, no subscribers", smsc_config(0, None, 0, 1.0))]
    variants.append((
        f"ours, {args.population:,} subscribers, nobody replies",
        smsc_config(0, args.population, args.seed, 1.0, silent=True),
    ))  # fmt: skip
    for scale in scales:
        variants.append((
            f"ours, {args.population:,} subscribers, time x{scale:g}",
            smsc_config(0, args.population, args.seed, scale),
        ))  # fmt: skip
    runs: dict[str, list[dict[str, float | str]]] = {label: [] for label, _ in variants}
    for rep in range(args.repeat):
        for label, conf in variants:
            with console.status(f"run {rep + 1}/{args.repeat}: {label}"):
                try:
                    runs[label].append(run_one("ours", args, conf, numbers))
                except Exception as exc:
                    runs[label].append({"target": label, "errors": str(exc)})
    table = Table(
        title=f"SMSC with and without subscribers: {args.binds} trx binds × window "
        f"{args.window}, {len(numbers):,} random members, {args.duration:.0f} s, "
        f"best of {args.repeat}"
    )
    cols = (
        "variant",
        "submit_sm/s",
        "receipts/s",
        "MO replies/s",
        "p50 resp ms",
        "p99 resp ms",
        "SMSC CPU %",
        "SMSC CPU µs/msg",
        "CPU/msg ÷ none",
        "receipts/s ÷ none",
        "errors",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("variant", "errors") else "right")
    best: dict[str, dict[str, float | str]] = {}
    for label, results in runs.items():
        good = [r for r in results if "submit_s" in r and not r.get("errors")]
        best[label] = max(good, key=lambda r: float(r["receipts_s"])) if good else results[0]
    base = best[variants[0][0]]
    for label, r in best.items():
        if "submit_s" not in r:
            table.add_row(label, *["-"] * 9, str(r.get("errors", "")))
            continue
        us = 1e6 / float(r["per_cpu_s"])
        base_us = 1e6 / float(base["per_cpu_s"]) if "per_cpu_s" in base else float("nan")
        table.add_row(
            label,
            f"{r['submit_s']:,.0f}",
            f"{r['receipts_s']:,.0f}",
            f"{r['mo_s']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_pct']:.0f}",
            f"{us:.1f}",
            f"{us / base_us:.2f}",
            f"{float(r['receipts_s']) / float(base['receipts_s']):.2f}",
            str(r["errors"]),
        )
    console.print(table)
    for label, results in runs.items():
        done = [r for r in results if "receipts_s" in r]
        figures = ", ".join(f"{float(r['receipts_s']):,.0f}" for r in done)
        cpu = ", ".join(f"{1e6 / float(r['per_cpu_s']):.1f}" for r in done)
        steal = ", ".join(f"{float(r['steal_pct']):.1f}" for r in done)
        console.print(
            f"[dim]{label}: receipts/s per run {figures}; CPU µs/msg {cpu}; host steal % {steal}[/]"
        )
    return 0 if all(not r.get("errors") for r in best.values()) else 1


def control_main(args: argparse.Namespace) -> int:
    """The SMSC with the control API and metrics off, then on with /metrics and /stats
    read every ``--scrape-interval`` s; runs alternate, best of ``--repeat`` each."""
    console = Console(width=160)
    labels = ("ours, control off", "ours, control + metrics on, scraped")
    runs: dict[str, list[dict[str, float | str]]] = {label: [] for label in labels}
    for rep in range(args.repeat):
        for label in labels:
            on = label != labels[0]
            cport = free_port() if on else None
            conf = smsc_config(0, None, 0, 1.0, control_port=cport)
            with console.status(f"run {rep + 1}/{args.repeat}: {label}"):
                try:
                    runs[label].append(run_one("ours", args, conf, control_port=cport))
                except Exception as exc:
                    runs[label].append({"target": label, "errors": str(exc)})
    table = Table(
        title=f"SMSC with and without the control API: {args.binds} trx binds × window "
        f"{args.window}, {args.duration:.0f} s, scrape every {args.scrape_interval:g} s, "
        f"best of {args.repeat}"
    )
    cols = (
        "variant",
        "submit_sm/s",
        "receipts/s",
        "p50 resp ms",
        "p99 resp ms",
        "SMSC CPU µs/msg",
        "receipts/s ÷ off",
        "scrapes",
        "slowest scrape ms",
        "/metrics bytes",
        "errors",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("variant", "errors") else "right")
    best: dict[str, dict[str, float | str]] = {}
    for label, results in runs.items():
        good = [r for r in results if "submit_s" in r and not r.get("errors")]
        best[label] = max(good, key=lambda r: float(r["receipts_s"])) if good else results[0]
    base = best[labels[0]]
    for label, r in best.items():
        if "submit_s" not in r or "receipts_s" not in base:
            table.add_row(label, *["-"] * 9, str(r.get("errors", "")))
            continue
        table.add_row(
            label,
            f"{r['submit_s']:,.0f}",
            f"{r['receipts_s']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{1e6 / float(r['per_cpu_s']):.1f}",
            f"{float(r['receipts_s']) / float(base['receipts_s']):.3f}",
            str(r["scrapes"]),
            f"{r['scrape_ms']:.1f}",
            f"{r['metrics_bytes']:,}",
            str(r["errors"]),
        )
    console.print(table)
    medians: dict[str, tuple[float, float]] = {}
    for label, results in runs.items():
        good = [r for r in results if "receipts_s" in r and not r.get("errors")]
        rates = [float(r["receipts_s"]) for r in good]
        cpu_us = [1e6 / float(r["per_cpu_s"]) for r in good]
        console.print(
            f"[dim]{label}: receipts/s per run {', '.join(f'{x:,.0f}' for x in rates)}; "
            f"SMSC CPU µs/msg {', '.join(f'{x:.1f}' for x in cpu_us)}[/]"
        )
        if good:
            medians[label] = (statistics.median(rates), statistics.median(cpu_us))
    if len(medians) == 2:
        (r0, c0), (r1, c1) = medians[labels[0]], medians[labels[1]]
        console.print(
            f"medians: receipts/s {r0:,.0f} -> {r1:,.0f} ({r1 / r0:.3f}), "
            f"SMSC CPU µs/msg {c0:.1f} -> {c1:.1f} ({c1 / c0:.3f})"
        )
    return 0 if all(not r.get("errors") for r in best.values()) else 1


def _journal_records(path: Path) -> tuple[int, int]:
    """Records in a journal directory (either format), and its bytes."""
    from simulator.smsc.journal_files import journal_files, read_journal

    return len(read_journal(path)[0]), sum(f.stat().st_size for f in journal_files(path))


def journal_main(args: argparse.Namespace) -> int:
    """The SMSC without the journal, with it (fsync per interval, the default), and with
    it plus the control API and /metrics scraped; runs alternate, each repetition
    starting with the next variant, so a load from other processes hits all alike. Per
    variant: the median and best of ``--repeat`` runs, the median of each repetition's
    ratio to its "off" run (the figure least moved by a machine whose load drifts), and
    the host's steal time during the runs (a busy host slows every run, unevenly)."""
    console = Console(width=170)
    labels = ("ours, journal off", "ours, journal on", "ours, journal + metrics scraped")
    runs: dict[str, list[dict[str, float | str]]] = {label: [] for label in labels}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()
    for rep in range(args.repeat):
        # Each repetition starts with the next variant: none always runs first or last.
        for label in labels[rep % 3 :] + labels[: rep % 3]:
            with tempfile.TemporaryDirectory() as tmp:
                jdir = Path(tmp) / "journal" if label != labels[0] else None
                cport = free_port() if label == labels[2] else None
                conf = smsc_config(0, None, 0, 1.0, control_port=cport, journal=jdir)
                with console.status(f"run {rep + 1}/{args.repeat}: {label}"):
                    try:
                        r = run_one("ours", args, conf, control_port=cport)
                    except Exception as exc:
                        r = {"target": label, "errors": str(exc)}
                r["journal_records"], r["journal_bytes"] = (
                    _journal_records(jdir) if jdir is not None else (0, 0)
                )
                runs[label].append(r)
    load = os.getloadavg()
    table = Table(
        title=f"SMSC with and without the journal: {args.binds} trx binds × window "
        f"{args.window}, {args.duration:.0f} s × {args.repeat}, from {started}, load average "
        f"{load0[0]:.2f} → {load[0]:.2f} on {os.cpu_count()} CPUs"
    )
    cols = (
        "variant",
        "receipts/s median",
        "best",
        "÷ off (medians)",
        "÷ off (paired median)",
        "p99 resp ms",
        "CPU µs/msg median",
        "records/msg",
        "bytes/record",
        "slowest scrape ms",
        "host steal %",
        "errors",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("variant", "errors") else "right")

    def ok(r: dict[str, float | str]) -> bool:
        return "receipts_s" in r and not r.get("errors")

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    base_runs = runs[labels[0]]
    base_med = median([float(r["receipts_s"]) for r in base_runs if ok(r)])
    for label, results in runs.items():
        good = [r for r in results if ok(r)]
        rates = [float(r["receipts_s"]) for r in good]
        console.print(
            f"[dim]{label}: receipts/s per run {', '.join(f'{x:,.0f}' for x in rates)}; "
            "CPU µs/msg "
            + ", ".join(f"{1e6 / float(r['per_cpu_s']):.1f}" for r in good)
            + "; host steal % "
            + ", ".join(f"{float(r['steal_pct']):.1f}" for r in good)
            + "[/]"
        )
        errors = "; ".join(str(r["errors"]) for r in results if r.get("errors"))[:80]
        if not good:
            table.add_row(label, *["-"] * 10, errors)
            continue
        paired = [
            float(r["receipts_s"]) / float(b["receipts_s"])
            for r, b in zip(results, base_runs, strict=True)
            if ok(r) and ok(b)
        ]
        submitted = sum(float(r["submit_s"]) * args.duration for r in good)
        records = sum(int(r["journal_records"]) for r in good)
        jbytes = sum(int(r["journal_bytes"]) for r in good)
        scrapes = [float(r["scrape_ms"]) for r in good if int(r["scrapes"])]
        table.add_row(
            label,
            f"{median(rates):,.0f}",
            f"{max(rates):,.0f}",
            f"{median(rates) / base_med:.3f}",
            f"{median(paired):.3f}",
            f"{median([float(r['p99_ms']) for r in good]):.2f}",
            f"{median([1e6 / float(r['per_cpu_s']) for r in good]):.1f}",
            # Records over the whole run (warm-up too) per message measured: a rough guide.
            f"{records / submitted:.2f}" if records else "-",
            f"{jbytes / records:.0f}" if records else "-",
            f"{max(scrapes):.1f}" if scrapes else "-",
            f"{median([float(r['steal_pct']) for r in good]):.1f}",
            errors,
        )
    console.print(table)
    return 0 if all(ok(r) for results in runs.values() for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
