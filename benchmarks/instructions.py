"""What a feature costs the SMSC per message, in instructions counted by callgrind:
the same figure whatever else the machine is doing.

    python benchmarks/instructions.py --suite journal        # journal off / on / + metrics
    python benchmarks/instructions.py --suite subscribers    # none / nobody replies / x1 / x3600
    python benchmarks/instructions.py --suite journal --seconds 20 --json

Why: on this 2-core machine identical throughput runs of ``smsc_throughput.py`` differ by
±20 % (CPU µs per message 36–48 for the same code, minutes apart), more than the 10 % and
20 % budgets that issues 7 and 3 set. Instructions executed do not move with the load.

How: ``smsim smsc`` runs under ``valgrind --tool=callgrind`` (about 100× slower), with
the same configuration files as ``smsc_throughput.py``'s variants. The driver is that
benchmark's pipelined ESME (4 transceiver binds × window 10, registered_delivery=1, every
deliver_sm answered), in its own process, not under valgrind. After a warm-up it stops
sending and waits for every receipt, the counters are zeroed (``callgrind_control -z``),
it sends for ``--seconds``, stops, waits again until every receipt of those messages has
come (and, with replies, until the SMSC has been quiet for a second), and the counters
are dumped (``-d``). Instructions ÷ messages accepted in that window is the figure: all
of the SMSC's threads (the journal's included), its user-space code only: the kernel's
work for the same messages (system calls, the journal's writes) is not in it.

/metrics and /stats are scraped once a second in a real run whatever the message rate,
and under valgrind the rate is ~1/100 of a real one, so scrapes are counted apart: five
of each on the idle SMSC after the window, then charged per message at ``--rate``
messages a second (the throughput benchmark's, ~25,000 on this machine).

The window is full of work the way a saturated run is: with 40 submits in flight the
SMSC under valgrind is always the slow side, as it is in the throughput benchmark, so
what is batched per loop turn is alike. The journal's thread flushes every
``flush_interval``; that is scaled by valgrind's slowdown (``--flush-interval``, 5 s by
default instead of 0.1 s), so that a batch holds about as many messages as in a real run.
What instructions do not show: cache misses (1 M distinct subscribers touched in the
throughput benchmark against a few thousand here) and contention for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import smsc_throughput as st  # noqa: E402

#: Stands for the journal's directory in a variant's file until its run makes one.
JOURNAL_DIR = "/@journal@"
#: The simulated last-level cache with ``--cache-sim``: one core's L2 on this machine.
L2_BYTES = 1024 * 1024


@dataclass(slots=True)
class Window:
    accepted: int = 0
    receipts: int = 0
    mo: int = 0
    errors: list[str] = field(default_factory=list)


class Driver:
    """The throughput benchmark's ESME, with a pause: ``run`` sends until ``stop``;
    ``settled`` waits for every receipt owed and a quiet spell."""

    def __init__(self, port: int, binds: int, window: int, numbers: list[str] | None) -> None:
        self.port, self.binds, self.window, self.numbers = port, binds, window, numbers
        self.sending = False
        self.count = Window()
        self.submitted_total = 0
        self.receipts_total = 0
        self.last_traffic = time.monotonic()
        self.protocols: list[asyncio.Protocol] = []

    async def connect(self) -> None:
        from simulator.smpp.constants import CommandId
        from simulator.smpp.pdu import BindTransceiver, SubmitSm
        from simulator.smpp.session import PduReceived, ResponseReceived, Role, Session

        loop = asyncio.get_running_loop()
        driver = self
        body = b"Takaful & Karama: school attendance reminder for this month. Reply 1 to confirm."

        class Bind(asyncio.Protocol):
            def __init__(self, index: int) -> None:
                self.session = Session(Role.ESME, window=driver.window, enquire_link_interval=None)
                self.index = index
                self.n = 0
                self.bound: asyncio.Future[int] = loop.create_future()
                self.transport: asyncio.Transport | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # type: ignore[assignment]
                self.session.send(BindTransceiver(system_id="rapidpro", password="secret"))
                self.flush()

            def flush(self) -> None:
                out = self.session.data_to_send()
                if out and self.transport is not None:
                    self.transport.write(out)

            def submit(self) -> None:
                session = self.session
                while driver.sending and session.window_free > 0:
                    self.n += 1
                    nums = driver.numbers
                    if nums:
                        to = nums[(self.index + self.n * driver.binds) % len(nums)]
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
                    driver.submitted_total += 1

            def data_received(self, data: bytes) -> None:
                driver.last_traffic = time.monotonic()
                for ev in self.session.receive_data(data):
                    if type(ev) is ResponseReceived:
                        cid = ev.pdu.command_id
                        if cid == CommandId.SUBMIT_SM_RESP:
                            if ev.pdu.command_status == 0:
                                driver.count.accepted += 1
                            else:
                                driver.submitted_total -= 1  # refused: no receipt owed
                        elif cid == CommandId.BIND_TRANSCEIVER_RESP and not self.bound.done():
                            self.bound.set_result(ev.pdu.command_status)
                    elif type(ev) is PduReceived:
                        pdu = ev.pdu
                        if pdu.command_id == CommandId.DELIVER_SM:
                            if pdu.esm_class & 0x04:
                                driver.count.receipts += 1
                                driver.receipts_total += 1
                            else:
                                driver.count.mo += 1
                        if pdu.response_class is not None:
                            self.session.send(pdu.response())
                if self.session.is_bound:
                    self.submit()
                self.flush()

            def connection_lost(self, exc: Exception | None) -> None:
                driver.count.errors.append(f"bind {self.index} lost: {exc}")

        for i in range(self.binds):
            _, proto = await loop.create_connection(lambda i=i: Bind(i), "127.0.0.1", self.port)
            self.protocols.append(proto)
        for proto in self.protocols:
            status = await asyncio.wait_for(proto.bound, 60)  # type: ignore[attr-defined]
            if status:
                raise RuntimeError(f"bind refused: {status:#x}")

    async def run(self, seconds: float) -> None:
        self.sending = True
        for proto in self.protocols:
            proto.submit()  # type: ignore[attr-defined]
            proto.flush()  # type: ignore[attr-defined]
        await asyncio.sleep(seconds)
        self.sending = False

    async def settled(self, quiet: float, timeout: float) -> None:
        """Every accepted submit receipted, then ``quiet`` s without any traffic."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.receipts_total >= self.submitted_total
                and time.monotonic() - self.last_traffic >= quiet
            ):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"not settled: {self.receipts_total} receipts of {self.submitted_total} submits"
        )


def _callgrind(cmd: str, pid: int) -> None:
    out = subprocess.run(
        ["callgrind_control", cmd, str(pid)], capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0 or "OK" not in out.stdout:
        raise RuntimeError(f"callgrind_control {cmd}: {out.stdout} {out.stderr}")


def _events(path: Path) -> dict[str, int]:
    """``totals:`` of one callgrind dump by event (Ir; with ``--cache-sim`` also the
    simulated caches' misses), all threads: they are not separated."""
    text = path.read_text(errors="replace")
    names = re.search(r"^events: (.+)$", text, re.M)
    totals = re.search(r"^totals: (.+)$", text, re.M)
    if names is None or totals is None:
        raise RuntimeError(f"no totals in {path}")
    return dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=False))


class Scrape:
    """GETs /metrics and /stats, as Prometheus and ``smsim top`` would each second."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0

    def run_n(self, n: int) -> None:
        import urllib.request

        for _ in range(n):
            for path in ("/metrics", "/stats"):
                url = f"http://127.0.0.1:{self.port}{path}"
                with urllib.request.urlopen(url, timeout=120) as r:
                    r.read()
            self.count += 1


def run_variant(
    conf_text: str,
    *,
    seconds: float,
    warmup: float,
    numbers: list[str] | None,
    control_port: int | None,
    quiet: float,
    keep: Path | None = None,
    label: str = "",
    cache_sim: bool = False,
) -> dict[str, float | str]:
    port = st.free_port()
    conf_text = conf_text.replace("port = 0\n", f"port = {port}\n", 1)
    with tempfile.TemporaryDirectory() as tmp:
        conf_text = conf_text.replace(JOURNAL_DIR, str(Path(tmp) / "journal"))
        conf = Path(tmp) / "bench.toml"
        conf.write_text(conf_text)
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",  # start-up (imports, config) at full speed
            f"--callgrind-out-file={out}",
            # The data cache and, as the last level, one core's 1 MB L2 (what the SMSC's
            # working set competes for; the 32 MB L3 is shared by both cores).
            *(["--cache-sim=yes", f"--LL={L2_BYTES},16,64"] if cache_sim else []),
            sys.executable,
            "-m",
            "simulator.cli",
            "smsc",
            "--config",
            str(conf),
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            st._wait_port(port, proc, timeout=300)  # type: ignore[arg-type]
            subprocess.run(
                ["callgrind_control", "-i", "on", str(proc.pid)],
                capture_output=True,
                timeout=120,
                check=True,
            )
            scrape = Scrape(control_port) if control_port else None
            result = asyncio.run(_measure(proc.pid, port, seconds, warmup, numbers, scrape, quiet))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda f: int(f.suffix[1:]))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        events = _events(dumps[0])
        instructions = events["Ir"]
        if control_port is not None:
            if len(dumps) < 2:
                raise RuntimeError("no dump of the scrapes")
            result["ir_per_scrape"] = _events(dumps[1])["Ir"] / max(int(result["scrapes"]), 1)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for i, d in enumerate(dumps):
                shutil.copy(d, keep / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.{i}.out")
    accepted = int(result["accepted"])
    result["instructions"] = instructions
    result["ir_per_msg"] = instructions / accepted if accepted else float("nan")
    if cache_sim and accepted:
        d1 = events.get("D1mr", 0) + events.get("D1mw", 0)
        ll = events.get("DLmr", 0) + events.get("DLmw", 0) + events.get("ILmr", 0)
        result["d1_per_msg"] = d1 / accepted
        result["ll_per_msg"] = ll / accepted
    return result


async def _measure(
    pid: int,
    port: int,
    seconds: float,
    warmup: float,
    numbers: list[str] | None,
    scrape: Scrape | None,
    quiet: float,
) -> dict[str, float | str]:
    driver = Driver(port, 4, 10, numbers)
    await driver.connect()
    await driver.run(warmup)
    await driver.settled(quiet, 600)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _callgrind, "-z", pid)
    driver.count = Window()
    await driver.run(seconds)
    await driver.settled(quiet, 600)
    await loop.run_in_executor(None, _callgrind, "-d", pid)
    if scrape is not None:
        # Scrapes come once a second whatever the rate, and the rate under valgrind is
        # ~1/100 of a real one: counted apart, on the idle SMSC, then per message at the
        # real rate (``--rate``).
        await loop.run_in_executor(None, _callgrind, "-z", pid)
        await loop.run_in_executor(None, scrape.run_n, 5)
        await loop.run_in_executor(None, _callgrind, "-d", pid)
    c = driver.count
    if c.receipts < c.accepted:
        c.errors.append(f"{c.accepted - c.receipts} receipts missing")
    return {
        "accepted": c.accepted,
        "receipts": c.receipts,
        "mo": c.mo,
        "scrapes": scrape.count if scrape else 0,
        "errors": "; ".join(c.errors[:2]),
    }


def journal_variants(flush_interval: float) -> list[tuple[str, str, bool]]:
    """(label, configuration, control on) of the journal suite."""
    out = []
    for label, journal, control in (
        ("journal off", False, False),
        ("journal on", True, False),
        ("journal on + metrics scraped", True, True),
    ):
        cport = st.free_port() if control else None
        jdir = Path(JOURNAL_DIR) if journal else None
        text = st.smsc_config(0, None, 0, 1.0, control_port=cport, journal=jdir)
        if journal:
            text += f"flush_interval = {flush_interval}\n"  # the [journal] table is last
        out.append((label, text, control))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=["journal", "subscribers"], default="journal")
    p.add_argument("--seconds", type=float, default=15.0, help="measured window (real s)")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=1, help="runs of each variant, alternating")
    p.add_argument("--flush-interval", type=float, default=5.0, help="the journal's, scaled")
    p.add_argument("--rate", type=float, default=25_000, help="real msg/s, to charge scrapes")
    p.add_argument("--population", type=int, default=3_500_000)
    p.add_argument("--seed", type=int, default=1442)
    p.add_argument("--keep", type=Path, help="copy callgrind's dumps here (callgrind_annotate)")
    p.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate the caches (D1, and a 1 MB L2 as the last level): misses a "
        "message, the cost instructions do not show; ~2x slower",
    )
    p.add_argument(
        "--only", action="append", help="run only the variants whose label contains this"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (callgrind) is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    console = Console(width=150)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()[0]
    numbers: list[str] | None = None
    if args.suite == "journal":
        variants = [(lb, text, ctl, 0.5) for lb, text, ctl in journal_variants(args.flush_interval)]
    else:
        numbers = st.population_numbers(args.population, args.seed, 200_000)
        size = f"{args.population / 1e6:g} M subscribers"
        variants = [
            ("no subscribers", st.smsc_config(0, None, 0, 1.0), False, 0.5),
            (
                f"{size}, nobody replies",
                st.smsc_config(0, args.population, args.seed, 1.0, silent=True),
                False,
                0.5,
            ),
            (f"{size}, time x1", st.smsc_config(0, args.population, args.seed, 1.0), False, 0.5),
            (
                f"{size}, time x3600",
                st.smsc_config(0, args.population, args.seed, 3600.0),
                False,
                2.0,
            ),
        ]
    if args.only:
        variants = [v for v in variants if any(o in v[0] for o in args.only)]
        if not variants:
            print(f"no variant matches {args.only}", file=sys.stderr)
            return 2
    runs: dict[str, list[dict[str, float | str]]] = {v[0]: [] for v in variants}
    for rep in range(args.repeat):
        for label, text, control, quiet in (
            variants[rep % len(variants) :] + variants[: rep % len(variants)]
        ):
            cport = None
            if control:
                m = re.search(r"\[control\]\nenabled = true\nport = (\d+)", text)
                cport = int(m.group(1)) if m else None
            with console.status(f"run {rep + 1}/{args.repeat}: {label}, under callgrind"):
                try:
                    r = run_variant(
                        text,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        numbers=numbers,
                        control_port=cport,
                        quiet=quiet,
                        keep=args.keep / f"run{rep + 1}" if args.keep else None,
                        label=label,
                        cache_sim=args.cache_sim,
                    )
                except Exception as exc:  # one variant failing must not hide the others
                    r = {"errors": repr(exc), "ir_per_msg": float("nan"), "accepted": 0}
            runs[label].append(r)
            console.print(
                f"{label}: {int(r['accepted']):,} messages, "
                f"{float(r['ir_per_msg']):,.0f} instructions each"
                + (
                    f", D1 misses {float(r['d1_per_msg']):,.0f}, L2 misses "
                    f"{float(r['ll_per_msg']):,.0f}"
                    if "ll_per_msg" in r
                    else ""
                )
                + f" {r.get('errors') or ''}"
            )

    def median(label: str, key: str) -> float:
        values = [float(r[key]) for r in runs[label] if key in r and not r.get("errors")]
        return statistics.median(values) if values else float("nan")

    base = median(variants[0][0], "ir_per_msg")
    table = Table(
        title=f"SMSC instructions per message (callgrind), suite {args.suite}, {args.seconds:g} s"
        f" × {args.repeat}, from {started}, load average {load0:.2f} → {os.getloadavg()[0]:.2f}"
    )
    cols: tuple[str, ...] = (
        "variant",
        "messages",
        "instructions/msg (runs)",
        "median",
        "÷ first",
        "MO",
    )
    if args.cache_sim:
        cols += ("D1 misses/msg", "L2 misses/msg", "L2 ÷ first")
    if args.suite == "journal":
        cols += ("scrape, instructions", f"+ scrapes at {args.rate:,.0f}/s", "÷ first")
    for col in (*cols, "errors"):
        table.add_column(col, justify="left" if col in ("variant", "errors") else "right")
    for label, *_ in variants:
        rs = runs[label]
        ir = median(label, "ir_per_msg")
        row = [
            label,
            f"{sum(int(r['accepted']) for r in rs):,}",
            ", ".join(f"{float(r['ir_per_msg']):,.0f}" for r in rs),
            f"{ir:,.0f}",
            f"{ir / base:.3f}",
            f"{sum(int(r.get('mo', 0)) for r in rs):,}",
        ]
        if args.cache_sim:
            ll = median(label, "ll_per_msg")
            row += [
                f"{median(label, 'd1_per_msg'):,.0f}",
                f"{ll:,.0f}",
                f"{ll / median(variants[0][0], 'll_per_msg'):.3f}",
            ]
        if args.suite == "journal":
            scrape = median(label, "ir_per_scrape")
            with_scrapes = ir + (scrape / args.rate if scrape == scrape else 0.0)
            row += [
                "-" if scrape != scrape else f"{scrape:,.0f}",
                f"{with_scrapes:,.0f}",
                f"{with_scrapes / base:.3f}",
            ]
        row.append("; ".join(str(r.get("errors", "")) for r in rs if r.get("errors")))
        table.add_row(*row)
    console.print(table)
    if args.json:
        print(json.dumps({"suite": args.suite, "started": started, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
