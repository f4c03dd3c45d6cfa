"""Harness scaling: the MO -> reply ceiling of ``smsim run --partition`` as parts grow,
each part and each Locust worker held to the same CPU budget by a cgroup.

    .venv/bin/python benchmarks/harness_scaling.py --parts 1 2 3 --quota 0.2   # needs root
    .venv/bin/python benchmarks/harness_scaling.py --parts 2 --rates 3000 --json

On a box with fewer cores than processes, doubling the processes cannot double the
throughput; so every scaled process (each SMSC-side part, each Locust worker) gets a
fixed CPU budget with cgroup v1 CFS bandwidth control (``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``), and behaves like a process alone on a slower core. The run is
``benchmarks/harness_capacity.py``'s (same generated constant-rate scenario, 3.5 M
subscribers, behaviour on; the instant platform ``locust_channel/instant_platform.py``
bound to every part), started the same way. The runner, Locust's master and the
platform are left unconstrained (each in a cgroup with no quota, for accounting only):
they must never be the limit, which their CPU share over the load window shows.

Processes are found in the runner's process tree by their command lines (``smsim
worker`` forks the parts with multiprocessing's spawn, then one ``locust --worker``
that, for N > 1, forks N workers) and moved before the load starts: the parts when the
first Locust worker process appears (they are ready by then: the master starts Locust
only after every part answered), each Locust worker as soon as it exists (they connect
to Locust's master, and the load starts, only after that). CPU per group is
``cpuacct.usage`` over the load window: the seconds in which Locust's request count grew
(``locust_stats_history.csv``), less one second at each end.

For each N the ceiling is found by a coarse search over offered rates: a rate is
carried when no reply timed out, the MO Locust sent over the load window is at least
``--min-sent`` of the offered rate, and p99 MO -> reply is at most ``--p99``. Not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_capacity import INSTANT, ROOT, SCENARIO, SMSIM, free_port

CPU = Path("/sys/fs/cgroup/cpu")
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
TOP = "smsim-scaling"
#: Groups with no quota, for accounting only.
FREE = ("master", "platform", "host")


# --------------------------------------------------------------------------- cgroups


@dataclass(slots=True)
class Groups:
    """One cgroup per scaled process in both v1 hierarchies (cpu for the quota, cpuacct
    for the usage; here they are mounted apart), plus the unconstrained ones."""

    n: int
    quota: float
    period_us: int
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [*(f"part{k}" for k in range(self.n))]
        self.names += [f"worker{k}" for k in range(self.n)]
        self.names += list(FREE)

    def create(self) -> None:
        self.remove()  # a previous run that died
        for root in (CPU, CPUACCT):
            (root / TOP).mkdir(exist_ok=True)
            for name in self.names:
                (root / TOP / name).mkdir()
        for name in self.names:
            d = CPU / TOP / name
            if name in FREE:
                (d / "cpu.cfs_quota_us").write_text("-1")
            else:
                (d / "cpu.cfs_period_us").write_text(str(self.period_us))
                (d / "cpu.cfs_quota_us").write_text(str(round(self.quota * self.period_us)))

    def move(self, pid: int, name: str) -> None:
        for root in (CPU, CPUACCT):
            with contextlib.suppress(ProcessLookupError):
                (root / TOP / name / "cgroup.procs").write_text(str(pid))

    def usage(self) -> dict[str, float]:
        """CPU seconds used by each group so far."""
        return {n: int((CPUACCT / TOP / n / "cpuacct.usage").read_text()) / 1e9 for n in self.names}

    def throttled(self) -> dict[str, float]:
        """Seconds each constrained group spent throttled (cpu.stat throttled_time)."""
        out = {}
        for n in self.names:
            if n in FREE:
                continue
            for line in (CPU / TOP / n / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "throttled_time":
                    out[f"throttled:{n}"] = int(value) / 1e9
        return out

    @staticmethod
    def remove() -> None:
        """Processes left back to the root group, then every group of ours removed."""
        for root in (CPU, CPUACCT):
            top = root / TOP
            if not top.exists():
                continue
            for d in [p for p in top.iterdir() if p.is_dir()]:
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, OSError):
                        (root / "cgroup.procs").write_text(pid)
                d.rmdir()
            top.rmdir()


@contextlib.contextmanager
def groups(n: int, quota: float, period_us: int) -> Iterator[Groups]:
    g = Groups(n, quota, period_us)
    g.create()
    try:
        yield g
    finally:
        Groups.remove()


# --------------------------------------------------------------------------- one run


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


class Placer:
    """Moves the run's processes into their groups as they appear."""

    def __init__(self, g: Groups, runner: psutil.Process, t0: float) -> None:
        self.g = g
        self.runner = runner
        self.t0 = t0
        self.placed: dict[int, str] = {runner.pid: "master"}
        self.parts: list[int] = []
        self.workers: list[int] = []
        self.moved_at: dict[str, float] = {}
        self.locust_started = False
        #: (seconds from the runner's start, pid, group, command line) of every move.
        self.log: list[tuple[float, int, str, str]] = []

    def _put(self, pid: int, name: str, line: str) -> None:
        self.g.move(pid, name)
        self.placed[pid] = name
        t = round(time.monotonic() - self.t0, 3)
        self.moved_at.setdefault(name, t)
        self.log.append((t, pid, name, line[:90]))

    def done(self) -> bool:
        return len(self.parts) == self.g.n and len(self.workers) == self.g.n

    def step(self) -> None:
        try:
            tree = self.runner.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        lines = {p.pid: _cmdline(p) for p in tree}
        locust_workers = []
        spawned = []
        for p in tree:
            line = lines[p.pid]
            if p.pid in self.placed or not line:
                continue
            if "locust" in line and "--worker" in line:
                locust_workers.append(p)
            elif "locust" in line:
                self._put(p.pid, "master", line)  # Locust's master (inherited it already)
            elif "spawn_main" in line:
                spawned.append(p)
            elif "resource_tracker" in line or (
                # Not a child caught between fork and exec, which still shows this line.
                "simulator.cli worker" in line and p.ppid() == self.runner.pid
            ):
                self._put(p.pid, "host", line)
        for p in locust_workers:
            try:
                parent = p.ppid()
            except psutil.NoSuchProcess:
                continue
            if "--worker" in lines.get(parent, ""):
                # A worker Locust forked (``--processes N``): a group of its own.
                self._put(p.pid, f"worker{len(self.workers)}", lines[p.pid])
                self.workers.append(p.pid)
            elif self.g.n > 1:
                # The forker, which only waits for its children.
                self._put(p.pid, "host", lines[p.pid])
                self.locust_started = True
            else:
                self._put(p.pid, "worker0", lines[p.pid])
                self.workers.append(p.pid)
                self.locust_started = True
        # The parts are ready once Locust's workers start (after every part answered).
        if self.locust_started:
            for p in sorted(spawned, key=lambda q: q.pid):
                if len(self.parts) < self.g.n:
                    self._put(p.pid, f"part{len(self.parts)}", lines[p.pid])
                    self.parts.append(p.pid)


def _load_window(out: Path) -> tuple[float, float] | None:
    """Unix seconds of the first and last row of Locust's history in which its request
    count grew."""
    path = out / "locust_stats_history.csv"
    if not path.exists():
        return None
    rows = []
    with path.open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r.get("Name") == "Aggregated":
                rows.append((float(r["Timestamp"]), int(r["Total Request Count"])))
    grew = [t for (t, n), (_, m) in zip(rows[1:], rows, strict=False) if n > m]
    if len(grew) < 2:
        return None
    return grew[0], grew[-1]


def _at(samples: list[tuple[float, dict[str, float]]], t: float) -> dict[str, float]:
    """Each group's usage at Unix time t, interpolated between samples."""
    before = max((s for s in samples if s[0] <= t), key=lambda s: s[0], default=samples[0])
    after = min((s for s in samples if s[0] >= t), key=lambda s: s[0], default=samples[-1])
    if after[0] <= before[0]:
        return before[1]
    w = (t - before[0]) / (after[0] - before[0])
    return {k: before[1][k] + w * (after[1][k] - before[1][k]) for k in before[1]}


def one(
    n: int, rate: float, quota: float, period_us: int, duration: float, tmp: Path
) -> dict[str, Any]:
    """One partitioned run of N parts and N Locust workers at ``rate`` MO/s offered."""
    name = f"harness-scaling-{n}-{int(rate)}"
    scen = tmp / f"{name}.yaml"
    scen.write_text(
        SCENARIO.format(duration=duration, users=2 * n, workers=n, rate=rate).replace(
            "name: harness-capacity", f"name: {name}"
        ),
        encoding="utf-8",
    )
    out = tmp / name
    port = free_port()
    load_before = os.getloadavg()[0]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with groups(n, quota, period_us) as g:
        t0 = time.monotonic()
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
                "--partition",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        g.move(runner.pid, "master")  # its children start here until moved
        # Part k's SMPP port is port + 10·k (harness_capacity.py); the platform binds to all.
        platform = subprocess.Popen(
            [
                sys.executable,
                str(INSTANT),
                *[a for k in range(n) for a in ("--smsc", f"127.0.0.1:{port + 10 * k}")],
                "--binds",
                "2",
                "--window",
                "50",
                "--duration",
                str(duration + 180),
                "--connect-timeout",
                "120",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        g.move(platform.pid, "platform")
        placer = Placer(g, psutil.Process(runner.pid), t0)
        samples: list[tuple[float, dict[str, float]]] = []
        last = 0.0
        while runner.poll() is None and time.monotonic() - t0 < duration + 240:
            if not placer.done():
                placer.step()
                time.sleep(0.01)
            else:
                time.sleep(0.05)
            if time.monotonic() - last >= 0.25:
                last = time.monotonic()
                samples.append((time.time(), {**g.usage(), **g.throttled()}))
        runner_out = runner.communicate(timeout=30)[0].decode(errors="replace")
        samples.append((time.time(), {**g.usage(), **g.throttled()}))
        platform.terminate()
        platform.wait(30)
    load_after = os.getloadavg()[0]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    c = summary["counters"]
    f = summary["figures"]
    window = _load_window(out)
    cpu: dict[str, float] = {}
    throttled: dict[str, float] = {}
    span = 0.0
    if window is not None and window[1] - window[0] > 3:
        a, b = window[0] + 1, window[1] - 1
        ua, ub = _at(samples, a), _at(samples, b)
        span = b - a
        cpu = {k: (ub[k] - ua[k]) / span for k in ua}
    # Share of the load window each constrained group spent throttled (quota used up).
    throttled = {k.split(":")[1]: cpu.pop(k) for k in list(cpu) if k.startswith("throttled:")}
    part_rate = [float(x) for x in c.get("part_mo_per_s", [])]
    return {
        "parts": n,
        "rate": rate,
        "quota": quota,
        "period_us": period_us,
        "duration": duration,
        # MO Locust sent over the scenario's duration (as harness_capacity.py's sent/s),
        # and the parts' own rate over their load window.
        "sent": c["mo_from_locust"] / duration,
        "sent_window": sum(part_rate),
        "replies": c["replies"] / duration,
        "timeouts": c["reply_timeouts"],
        "pending_at_end": c.get("replies_pending_at_end", 0),
        "p50_ms": (f["mo_reply_p50"] or 0) * 1000,
        "p99_ms": (f["mo_reply_p99"] or 0) * 1000,
        "part_mo_per_s": part_rate,
        "part_cpu_us_per_mo": c.get("part_cpu_us_per_mo", []),
        "locust_workers": c.get("locust_workers", 0),
        # CPU over the load window, in cores (1.0 = one CPU busy the whole window).
        "cpu_window_s": span,
        "cpu": cpu,
        "throttled": throttled,
        "pids": {"parts": placer.parts, "workers": placer.workers},
        "placed": placer.done(),
        "moved_at_s": placer.moved_at,
        "moves": placer.log,
        "load_window": window,
        "started": started,
        "load_before": load_before,
        "load_after": load_after,
        "exit": runner.returncode,
        "tail": runner_out[-2000:] if runner.returncode not in (0, 1) else "",
    }


def carried(r: dict[str, Any], min_sent: float, p99: float) -> bool:
    return bool(
        r["timeouts"] == 0
        and r["pending_at_end"] == 0
        and r["sent"] >= min_sent * r["rate"]
        and r["p99_ms"] <= p99
        and r["cpu"]
        and r["placed"]
    )


# --------------------------------------------------------------------------- search


def search(
    n: int, start: float, args: argparse.Namespace, tmp: Path, console: Console
) -> tuple[float, list[dict[str, Any]]]:
    """A coarse search: up or down by ``--step`` until the verdict flips, then one
    midpoint. Returns the highest rate carried (0 if none) and every run."""
    runs: list[dict[str, Any]] = []

    def attempt(rate: float) -> bool:
        rate = round(rate / 50) * 50
        console.print(f"N={n}: {rate:,.0f} MO/s offered ...", end=" ")
        r = one(n, rate, args.quota, args.period_us, args.duration, tmp)
        r["carried"] = carried(r, args.min_sent, args.p99)
        runs.append(r)
        console.print(
            f"sent {r['sent']:,.0f}/s, t/o {r['timeouts']}, p99 {r['p99_ms']:.0f} ms, "
            f"load {r['load_before']:.2f} -> {r['load_after']:.2f}: "
            + ("[green]carried" if r["carried"] else "[red]not carried")
        )
        if r["tail"]:
            console.print(r["tail"])
        return bool(r["carried"])

    if args.rates:
        for rate in args.rates:
            attempt(rate * (n if args.per_part else 1))
    else:
        ok, rate = attempt(start), start
        lo, hi = (rate, 0.0) if ok else (0.0, rate)
        for _ in range(args.steps - 1):
            if hi == 0.0:
                rate = lo * args.step
            elif lo == 0.0:
                rate = hi / args.step
            else:
                rate = (lo + hi) / 2
            if attempt(rate):
                lo = rate
            else:
                hi = rate
            if lo and hi and hi / lo < 1.08:
                break
    best = max((r["rate"] for r in runs if r["carried"]), default=0.0)
    return best, runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3], help="N values")
    ap.add_argument("--quota", type=float, default=0.2, help="CPUs per part and per worker")
    ap.add_argument("--period-us", type=int, default=10000, help="cpu.cfs_period_us")
    ap.add_argument("--duration", type=float, default=15, help="seconds of load per run")
    ap.add_argument("--start", type=float, default=500, help="first rate tried per part (× N)")
    ap.add_argument("--step", type=float, default=1.25, help="factor between search steps")
    ap.add_argument("--steps", type=int, default=5, help="runs per N at most")
    ap.add_argument("--rates", type=float, nargs="+", help="these rates instead of a search")
    ap.add_argument("--per-part", action="store_true", help="--rates are per part (× N)")
    ap.add_argument("--min-sent", type=float, default=0.95, help="sent/offered to carry")
    ap.add_argument("--p99", type=float, default=200.0, help="p99 ms bound to carry")
    ap.add_argument("--json", action="store_true", help="print every run as JSON at the end")
    ap.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="no runs: the tables from these --json outputs (e.g. one file per N)",
    )
    args = ap.parse_args()
    console = Console(width=150)
    if args.report:
        saved = [json.loads(p.read_text().strip().splitlines()[-1]) for p in args.report]
        for k in ("quota", "p99", "min_sent"):
            setattr(args, k, saved[0]["args"][k])
        # Runs of one N from several files (a search, a repeat) as one N.
        merged: dict[int, list[dict[str, Any]]] = {}
        for s in saved:
            for r in s["results"]:
                merged.setdefault(r["parts"], []).extend(r["runs"])
        report(
            [
                {
                    "parts": n,
                    "ceiling": max((x["rate"] for x in runs if x["carried"]), default=0.0),
                    "runs": runs,
                }
                for n, runs in sorted(merged.items())
            ],
            args,
            console,
        )
        return
    if os.geteuid() != 0 or not (CPU / "cpu.cfs_quota_us").exists():
        sys.exit("harness_scaling: needs root and cgroup v1 cpu/cpuacct at /sys/fs/cgroup")
    console.print(
        f"quota {args.quota:g} CPU per part and per Locust worker "
        f"(cfs_quota_us {round(args.quota * args.period_us)} / period {args.period_us}); "
        f"carried: no timeout, sent ≥ {args.min_sent:.0%} of offered, p99 ≤ {args.p99:g} ms"
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        for n in args.parts:
            best, runs = search(n, args.start * n, args, Path(d), console)
            results.append({"parts": n, "ceiling": best, "runs": runs})
    report(results, args, console)
    if args.json:
        saved_args = {k: v for k, v in vars(args).items() if k != "report"}
        print(json.dumps({"args": saved_args, "results": results}))


def _top(r: dict[str, Any]) -> dict[str, Any] | None:
    ok = [x for x in r["runs"] if x["carried"]]
    return max(ok, key=lambda x: x["rate"]) if ok else None


def report(results: list[dict[str, Any]], args: argparse.Namespace, console: Console) -> None:
    runs = Table(title="Every run (CPU in cores over the load window)")
    for col in (
        "N",
        "offered/s",
        "sent/s",
        "t/o",
        "p50 ms",
        "p99 ms",
        "per part MO/s",
        "parts CPU",
        "workers CPU",
        "master",
        "platform",
        "host",
        "load before→after",
        "carried",
    ):
        runs.add_column(col, justify="right")
    for r in results:
        for x in r["runs"]:
            cpu = x["cpu"]
            runs.add_row(
                str(x["parts"]),
                f"{x['rate']:,.0f}",
                f"{x['sent']:,.0f}",
                f"{x['timeouts']:,}",
                f"{x['p50_ms']:.0f}",
                f"{x['p99_ms']:.0f}",
                " ".join(f"{v:,.0f}" for v in x["part_mo_per_s"]),
                " ".join(f"{cpu.get(f'part{k}', 0):.2f}" for k in range(x["parts"])),
                " ".join(f"{cpu.get(f'worker{k}', 0):.2f}" for k in range(x["parts"])),
                f"{cpu.get('master', 0):.2f}",
                f"{cpu.get('platform', 0):.2f}",
                f"{cpu.get('host', 0):.2f}",
                f"{x['load_before']:.2f}→{x['load_after']:.2f}",
                "yes" if x["carried"] else "no",
            )
    console.print(runs)
    t = Table(
        title=f"Ceiling per N at {args.quota:g} CPU per part and per Locust worker "
        f"(p99 ≤ {args.p99:g} ms, no timeout, sent ≥ {args.min_sent:.0%})"
    )
    for col in (
        "N",
        "ceiling MO/s",
        "per part MO/s",
        "CPU per part",
        "CPU per worker",
        "master CPU",
        "platform CPU",
        "throttled s/s: parts / workers",
        "ceiling(N) / (N·ceiling(1))",
    ):
        t.add_column(col, justify="right")
    base = next((r["ceiling"] for r in results if r["parts"] == 1), 0.0)
    for r in results:
        top = _top(r)
        n = r["parts"]
        if top is None:
            t.add_row(str(n), "none carried", *[""] * 7)
            continue
        cpu = top["cpu"]
        thr = top.get("throttled", {})
        t.add_row(
            str(n),
            f"{r['ceiling']:,.0f}",
            " ".join(f"{v:,.0f}" for v in top["part_mo_per_s"]),
            " ".join(f"{cpu.get(f'part{k}', 0):.2f}" for k in range(n)),
            " ".join(f"{cpu.get(f'worker{k}', 0):.2f}" for k in range(n)),
            f"{cpu.get('master', 0):.2f}",
            f"{cpu.get('platform', 0):.2f}",
            " ".join(f"{thr.get(f'part{k}', 0):.2f}" for k in range(n))
            + " / "
            + " ".join(f"{thr.get(f'worker{k}', 0):.2f}" for k in range(n)),
            f"{r['ceiling'] / (n * base):.2f}" if base else "—",
        )
    console.print(t)


if __name__ == "__main__":
    main()
