"""``smsim run`` with the SMSC side partitioned by number range (decision 0003).

One machine (``--processes N --partition``): this process is the master and starts one
``smsim worker`` on loopback, which runs N SMSC-side parts and N Locust workers. Several
machines (``--master``): the master waits for ``--expect-workers`` hosts running ``smsim
worker --master HOST:PORT``. Either way the master runs the platform (bound to every
part, each MT routed by prefix to its owner), Locust's master, and reads every part's
counters and histograms once a second to judge the gates as a one-process run would.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.config import SmppBindConfig
from simulator.harness.cluster import (
    DEFAULT_PORT,
    TOKEN_ENV,
    ClusterError,
    Coordinator,
    PartAddress,
    PartMonitor,
    is_loopback,
    stop_popen,
)
from simulator.harness.delivery import merge_json
from simulator.harness.frames import Origin
from simulator.harness.histogram import LatencyHistogram
from simulator.harness.ranges import NumberRanges
from simulator.harness.replies import ReplyStats
from simulator.smsc.stats import LatencyHistogram as BucketHistogram
from simulator.smsc.stats import SmscStats
from simulator.ussd.figures import UssdSnapshot
from simulator.ussd.session import Release

from . import reference_platform
from .figures import Sample
from .outputs import Measured, Ussd, conclude
from .reference_platform import free_port
from .run_settings import RunSettings
from .runner import ROOT, RunError, RunOptions, _start_locust, run_scenario
from .spec import Scenario
from .timeseries import Recorder


@dataclass(slots=True)
class ClusterOptions(RunOptions):
    """``RunOptions`` of a partitioned run: ``processes`` parts and Locust workers on this
    machine (``partition``), or (``master``) the parts of ``expect_workers`` hosts."""

    partition: bool = False
    master: bool = False
    bind_host: str = "127.0.0.1"
    expect_workers: int = 1
    cluster_port: int = DEFAULT_PORT
    cluster_token: str | None = None
    locust_port: int = 5557
    #: The reference platform's API port (0: any free port).
    api_port: int = 0


#: Seconds the master waits for its worker hosts, and for their parts to listen.
JOIN_TIMEOUT = 300.0
START_TIMEOUT = 120.0


def _sample(t: float, parts: list[dict[str, Any]]) -> Sample:
    total: dict[str, int] = {}
    for p in parts:
        for k, v in p.get("sample", {}).items():
            total[k] = total.get(k, 0) + int(v)
    return Sample(t=t, **{f: total.get(f, 0) for f in Sample.__dataclass_fields__ if f != "t"})


def _replies(parts: list[dict[str, Any]]) -> ReplyStats:
    out = ReplyStats()
    for p in parts:
        r = p.get("replies", {})
        out.sent += r.get("sent", 0)
        out.replies += r.get("replies", 0)
        out.timeouts += r.get("timeouts", 0)
        out.coalesced += r.get("coalesced", 0)
        for name, h in r.get("histograms", {}).items():
            out.histograms[Origin[name]].merge(LatencyHistogram.from_json(h))
    return out


def _operators(parts: list[dict[str, Any]]) -> dict[str, SmscStats]:
    """Each operator's counters summed over the parts (every part has every operator)."""
    out: dict[str, SmscStats] = {}
    for p in parts:
        for name, d in p.get("operators", {}).items():
            one = SmscStats()
            for f in fields(SmscStats):
                if f.name in d:
                    v = d[f.name]
                    setattr(one, f.name, Counter(v) if isinstance(v, dict) else int(v))
            out.setdefault(name, SmscStats()).add(one)
    return out


def _total(operators: dict[str, SmscStats]) -> SmscStats:
    total = SmscStats()
    for s in operators.values():
        total.add(s)
    return total


def _ussd(parts: list[dict[str, Any]], now: float) -> UssdSnapshot:
    """The USSD networks' counters summed over the parts, as ``ussd.figures.snapshot``
    gives them for one SMSC's networks."""
    total: dict[str, int] = {"dialled": 0, "busy": 0, "steps": 0, "open": 0}
    released = {r.value: 0 for r in Release}
    for p in parts:
        u = p.get("ussd", {})
        for k in total:
            total[k] += int(u.get(k, 0))
        for k, v in u.get("released", {}).items():
            released[k] = released.get(k, 0) + int(v)
    return UssdSnapshot(now, released=released, **total)


def _screens(parts: list[dict[str, Any]]) -> BucketHistogram:
    """The parts' per-screen latency buckets, merged."""
    out = BucketHistogram()
    for p in parts:
        h = p.get("ussd", {}).get("screen_latency")
        if h is not None:
            one = BucketHistogram()
            one.counts = [int(n) for n in h["counts"]]
            one.total = float(h["total"])
            out.add(one)
    return out


def _sum(parts: list[dict[str, Any]], key: str) -> int:
    return sum(int(p.get(key, 0)) for p in parts)


def _fault_hits(parts: list[dict[str, Any]]) -> dict[str, int]:
    """Each chaos fault's hits over the parts (every part has the whole schedule)."""
    out: dict[str, int] = {}
    for p in parts:
        for name, hits in p.get("faults", {}).items():
            out[name] = out.get(name, 0) + int(hits)
    return out


def _per_part_load(
    start: tuple[float, list[dict[str, Any]]] | None,
    end: tuple[float, list[dict[str, Any]]] | None,
) -> dict[str, list[float]]:
    """MO/s each part took from Locust while the load ran, and its CPU µs per such MO
    (startup, population build and drain left out): flat per-part cost is what lets
    throughput grow with parts."""
    if start is None or end is None or end[0] <= start[0]:
        return {}
    dt = end[0] - start[0]
    rates, cost = [], []
    for a, b in zip(start[1], end[1], strict=True):
        mo = int(b.get("mo_from_locust", 0)) - int(a.get("mo_from_locust", 0))
        cpu = float(b.get("cpu", 0.0)) - float(a.get("cpu", 0.0))
        rates.append(round(mo / dt, 1))
        cost.append(round(1e6 * cpu / mo, 1) if mo > 0 else 0.0)
    return {"part_mo_per_s": rates, "part_cpu_us_per_mo": cost}


async def _wait_binds(monitor: PartMonitor, console: Console, timeout: float = 60) -> None:
    """An external platform's gateway: wait until it has bound to every part."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get("binds", 0) > 0 for p in await monitor.sample()):
            return
        await asyncio.sleep(0.2)
    unbound = [i for i, p in enumerate(monitor.last) if not p.get("binds", 0)]
    console.print(f"[yellow]no bind to part(s) {unbound} after {timeout:g}s: starting anyway")


async def _wait_locust_workers(
    monitor: PartMonitor, workers: int, locust: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until every Locust worker has said HELLO to the parts: each does when its test
    starts, which is when its own clock (the shape's, the actions') starts. The worker
    hosts start theirs only now, so the run's clock starting at Locust's own start would
    count their start-up as load (USSD sessions per second, the chaos schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and locust.poll() is None:
        seen = {w for p in await monitor.sample() for w in p.get("workers_seen", [])}
        if len(seen) >= workers:
            return
        await asyncio.sleep(0.1)


def _binds(parts: list[PartAddress], ranges: NumberRanges) -> list[SmppBindConfig]:
    """One bind per part and operator, each carrying the part's prefixes."""
    return [
        SmppBindConfig(
            operator=op,
            host=p.host,
            port=port,
            system_id=p.accounts[op][0],
            password=p.accounts[op][1],
            window=min(p.accounts[op][2], 10),
            prefixes=ranges.national_prefixes(p.part),
        )
        for p in parts
        for op, port in p.smpp.items()
    ]


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _local_worker(
    opts: ClusterOptions, sc: Scenario, port: int, token: str, out: Path
) -> subprocess.Popen[bytes]:
    processes = max(1, opts.processes or sc.load.processes)
    cmd = [sys.executable, "-m", "simulator.cli", "worker", "--master", f"127.0.0.1:{port}"]
    cmd += ["--processes", str(processes), "--out", str(out / "worker")]
    cmd += ["--bind-host", "127.0.0.1"]
    if opts.target:  # the external platform's gateway binds to known ports
        cmd += ["--smpp-port", str(opts.smsc_port)]
    env = {**os.environ, TOKEN_ENV: token}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    logf = (out / "worker.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)


async def run_partitioned(
    opts: ClusterOptions, sc: Scenario, thresholds: dict[str, float], out: Path, console: Console
) -> int:
    host = opts.bind_host if opts.master else "127.0.0.1"
    token = opts.cluster_token or os.environ.get(TOKEN_ENV)
    if not token:
        if not is_loopback(host):
            raise RunError(f"--bind-host {host} is not loopback: give --cluster-token")
        token = secrets.token_hex(16)
    expect = opts.expect_workers if opts.master else 1
    coord = Coordinator(token, expect)
    platform: multiprocessing.process.BaseProcess | None = None
    locust: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    monitor: PartMonitor | None = None
    try:
        cport = await coord.start(host, opts.cluster_port if opts.master else 0)
        if opts.master:
            console.print(
                f"Waiting for {expect} worker host(s) on {host}:{cport}: on each, "
                f"SMSIM_CLUSTER_TOKEN=... smsim worker --master <this host>:{cport} --processes P"
            )
        else:
            worker = _local_worker(opts, sc, cport, token, out)
        hosts = await coord.wait_hosts(JOIN_TIMEOUT)
        parts_n = coord.parts
        ranges = NumberRanges(parts_n)
        # The Locust workers slice the senders over all of them, wherever they run.
        sc = sc.model_copy(update={"load": sc.load.model_copy(update={"processes": parts_n})})
        parts = await coord.assign(sc.model_dump_json(), START_TIMEOUT)
        console.print(
            f"{parts_n} parts on {len(hosts)} host(s): "
            + ", ".join(f"{p.part}@{p.channel}" for p in parts)
        )
        monitor = PartMonitor(parts, token)
        await monitor.connect()
        public = hosts[0].master_host
        api_token = opts.token or secrets.token_hex(16)
        if opts.target:
            api_url = opts.target.rstrip("/")
            # The gateway must bind to every part and route each MT by these prefixes.
            for addr in parts:
                smpp = ", ".join(f"{op} {addr.host}:{port}" for op, port in addr.smpp.items())
                console.print(
                    f"part {addr.part}: SMPP {smpp}; numbers "
                    f"{' '.join(ranges.national_prefixes(addr.part)) or 'all'}"
                )
            await _wait_binds(monitor, console)
        else:
            api_port = opts.api_port or free_port()
            binds = _binds(parts, ranges)
            pcfg = sc.platform.model_copy(
                update={"api_host": host, "api_port": api_port, "binds": binds}
            )
            platform = reference_platform.start(pcfg, api_token, out)
            api_url = f"http://{public}:{api_port}"
            parts_monitor = monitor

            async def bound() -> int:
                return _sum(await parts_monitor.sample(), "binds")

            await reference_platform.wait_ready(
                api_url, bound, len(binds), bind_timeout=30, poll=0.1
            )
        settings = RunSettings(
            scenario=sc,
            channel=parts[0].channel,
            channels=[p.channel for p in parts],
            channel_token=token,
            api_url=api_url,
            api_token=api_token,
        )
        settings.write(out / "run.json")
        lport = opts.locust_port if opts.master else free_port()
        # Locust's master, its workers on the hosts (Locust reads these as its options).
        master_env = {
            "LOCUST_MODE_MASTER": "true",
            "LOCUST_MASTER_BIND_HOST": host,
            "LOCUST_MASTER_BIND_PORT": str(lport),
            "LOCUST_EXPECT_WORKERS": str(parts_n),
            "LOCUST_EXPECT_WORKERS_MAX_WAIT": str(int(START_TIMEOUT)),
        }
        with _environ(master_env):
            one = sc.model_copy(update={"load": sc.load.model_copy(update={"processes": 1})})
            locust = _start_locust(opts, one, out, api_url)
        await coord.start_locust(lport, settings.model_dump_json())
        await _wait_locust_workers(monitor, parts_n, locust, START_TIMEOUT)
        t0 = time.monotonic()
        # Every part puts the scenario's chaos on now (each is a whole SMSC).
        monitor.start_load()
        state = await monitor.sample()
        samples = [_sample(0.0, state)]
        recorder = Recorder(datetime.now(UTC).isoformat(timespec="seconds"))
        recorder.record(samples[0], _replies(state).combined(), _operators(state))
        ussd_start = _ussd(state, 0.0) if sc.ussd else None
        ussd_load_end = ussd_start
        ended_at: float | None = None
        last = samples[0]
        # Each part's CPU and MO at the first and the last sample in which Locust's MO grew.
        load_from: tuple[float, list[dict[str, Any]]] | None = None
        load_to: tuple[float, list[dict[str, Any]]] | None = None
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic() - t0
            state = await monitor.sample()
            samples.append(_sample(now, state))
            recorder.record(samples[-1], _replies(state).combined(), _operators(state))
            mo = _sum(state, "mo_from_locust")
            if load_from is None and mo > 0:
                load_from = load_to = (now, state)
            elif load_to is not None and mo > _sum(load_to[1], "mo_from_locust"):
                load_to = (now, state)  # the last sample Locust's MO grew in
            if ended_at is None and locust.poll() is not None:
                ended_at = now
                if sc.ussd is not None:
                    ussd_load_end = _ussd(state, now)
            if opts.live and int(now) % 5 == 0:
                cur = samples[-1]
                console.print(
                    f"{now:5.0f}s {'load' if ended_at is None else 'drain'}: "
                    f"MO {cur.mo_delivered - last.mo_delivered:,} "
                    f"replies {_replies(state).replies:,} waiting {_sum(state, 'pending_replies')}"
                )
                last = cur
            if ended_at is not None:
                # USSD sessions still open are in flight, as in a one-process run.
                drained = (
                    _sum(state, "pending_replies") == 0
                    and _sum(state, "pending_deliveries") == 0
                    and not any(p.get("ussd", {}).get("open", 0) for p in state)
                )
                if drained or now - ended_at >= sc.time.drain:
                    break
            if now > sc.time.duration + START_TIMEOUT + 60 and ended_at is None:
                locust.terminate()
        state = await monitor.sample()
        replies = _replies(state)
        pending = _sum(state, "pending_replies")
        ussd = None
        if ussd_start is not None:
            assert ussd_load_end is not None
            end = _ussd(state, time.monotonic() - t0)
            ussd = Ussd(ussd_start, ussd_load_end, end, _screens(state))
        operators = _operators(state)
        smsc_counters = {k: v for k, v in _total(operators).as_dict().items() if isinstance(v, int)}
        seen = {w for p in state for w in p.get("workers_seen", [])}
        counters: dict[str, Any] = {
            **smsc_counters,
            "mo_from_locust": _sum(state, "mo_from_locust"),
            "ussd_dials_from_locust": _sum(state, "dials_from_locust"),
            "ussd_dials_refused": _sum(state, "dials_refused"),
            "locust_workers": len(seen),
            "parts": parts_n,
            "worker_hosts": len(hosts),
            "mo_from_locust_by_part": [int(p.get("mo_from_locust", 0)) for p in state],
            **_per_part_load(load_from, load_to),
            "replies": replies.replies,
            "reply_timeouts": replies.timeouts,
            "replies_pending_at_end": pending,
            "wants_receipt": _sum([p.get("sample", {}) for p in state], "wants_receipt"),
            "delivery": merge_json([p.get("delivery", []) for p in state]),
            "locust_exit": locust.returncode,
            **{f"fault_hits_{k}": v for k, v in _fault_hits(state).items()},
        }
        series = recorder.finish(ended_at, operators)
        measured = Measured(samples, replies, pending, counters, series, locust.returncode, ussd)
        return conclude(
            out, sc, thresholds, measured, console, baseline=opts.baseline, tolerance=opts.tolerance
        )
    except ClusterError as exc:
        raise RunError(str(exc)) from None
    finally:
        if locust is not None:
            stop_popen(locust)
        if monitor is not None:
            monitor.close()
        # The platform first: it unbinds from parts that are still there.
        if platform is not None:
            reference_platform.stop(platform)
        await coord.end()
        if worker is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)
            if worker.poll() is None:
                worker.kill()


def run_cluster(opts: ClusterOptions, console: Console | None = None) -> int:
    """``runner.run`` for a partitioned run: same exit codes, same run folder."""

    def headline(sc: Scenario, thresholds: dict[str, float]) -> str:
        where = f"{opts.expect_workers} worker host(s)" if opts.master else "this machine"
        return f", SMSC side partitioned over {where}"

    return run_scenario(
        opts, console, headline, lambda sc, th, out, con: run_partitioned(opts, sc, th, out, con)
    )
