"""``smsim run SCENARIO``: SMSC + subscribers + platform + Locust, to a verdict.

The SMSC (with the population, the behaviour engine and the Locust channel) runs on
this process's event loop; the reference platform runs in a child process (unless
``--target`` names a real one); Locust runs as ``locust --headless`` (or its web UI)
with the scenario's users and shape. A ``rich`` dashboard shows the run live; when
Locust ends, outstanding replies and receipts get ``drain`` seconds, then the gates are
judged and the run folder gets the summary JSON, the JUnit XML, Locust's HTML report, the
sampled time series (``timeseries.json``) and our own HTML report with charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from simulator.config import ControlConfig, OperatorConfig, SmppBindConfig, SmscConfig
from simulator.harness.delivery import merge_json
from simulator.harness.hub import ChannelHub
from simulator.harness.smsc_side import SmscSide
from simulator.smsc.server import SmscServer, new_event_loop
from simulator.ussd.figures import screen_latency as ussd_screen_latency

from . import reference_platform
from .dashboard import Snapshot, render
from .figures import Sample
from .gates import parse_gate_override
from .loader import ScenarioError, load_scenario
from .outputs import EXIT_ERROR, EXIT_FAILED, EXIT_PASSED, Measured, Ussd, conclude, run_folder
from .reference_platform import PlatformError
from .run_settings import ENV, RunSettings
from .spec import Scenario
from .timeseries import Recorder

log = logging.getLogger("smsim.run")

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"

#: The exit codes (gates passed, a gate failed, the run could not be made) are outputs.py's.
__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_PASSED",
    "RunError",
    "RunOptions",
    "prepare",
    "run",
    "run_scenario",
]


class RunError(Exception):
    """The run could not be made (a port taken, the platform did not start ...)."""


@dataclass(slots=True)
class RunOptions:
    scenario: str
    duration: float | None = None
    population: int | None = None
    users: int | None = None
    processes: int | None = None
    out: Path | None = None
    gates: list[str] = field(default_factory=list)
    #: Base URL of a real RapidPro's API (its gateway must bind to our SMSC); None: ours.
    target: str | None = None
    token: str | None = None
    #: SMSC port when the target is external (its gateway is configured for it).
    smsc_port: int = 2775
    ui: bool = False
    baseline: Path | None = None
    tolerance: float = 0.10
    live: bool = True
    #: The SMSC's control API during the run (``smsim top`` reads it); 0: off.
    control_port: int = 8775


def prepare(opts: RunOptions) -> tuple[Scenario, dict[str, float]]:
    """The scenario with the command line's overrides, and the gates to judge."""
    sc = load_scenario(opts.scenario)
    update: dict[str, Any] = {}
    if opts.duration is not None:
        update["time"] = sc.time.model_copy(update={"duration": opts.duration})
    if opts.population is not None:
        update["population"] = sc.population.model_copy(update={"size": opts.population})
    load: dict[str, Any] = {}
    if opts.users is not None:
        load["users"] = opts.users
    if opts.processes is not None:
        load["processes"] = opts.processes
    if load:
        update["load"] = sc.load.model_copy(update=load)
    if update:
        # Drop actions that no longer fit a shortened run, then validate as a file would be.
        data = sc.model_copy(update=update).model_dump()
        data["actions"] = [a for a in data["actions"] if a["at"] <= data["time"]["duration"]]
        data["chaos"] = [c for c in data["chaos"] if c["start"] <= data["time"]["duration"]]
        sc = Scenario.model_validate(data)
    overrides = dict(parse_gate_override(g) for g in opts.gates)
    if overrides:
        # In the scenario too: the campaign manager reads receipt_completion_time from it.
        sc = sc.model_copy(update={"gates": sc.gates.with_overrides(overrides)})
    return sc, sc.gates.thresholds()


def _smsc_config(sc: Scenario, external_port: int | None, control_port: int) -> SmscConfig:
    operators = sc.operators or [OperatorConfig(port=external_port or 0)]
    return SmscConfig(
        control=ControlConfig(enabled=control_port > 0, port=control_port or 8775),
        operators=operators,
        population=sc.population,
        behaviour=sc.behaviour,
        delivery=sc.delivery,
        time_scale=sc.time.scale,
        mt_log_size=1000,
    )


async def _run(
    opts: RunOptions, sc: Scenario, thresholds: dict[str, float], out: Path, console: Console
) -> int:
    cfg = _smsc_config(sc, opts.smsc_port if opts.target else None, opts.control_port)
    side = SmscSide(sc, cfg)
    smsc, hub = side.smsc, side.hub
    await side.start()
    platform: multiprocessing.process.BaseProcess | None = None
    locust: subprocess.Popen[bytes] | None = None
    try:
        channel_port = await hub.start()
        token = opts.token or secrets.token_hex(16)
        if opts.target:
            api_url = opts.target.rstrip("/")
        else:
            api_port = reference_platform.free_port()
            binds = [
                SmppBindConfig(
                    operator=op.name,
                    host="127.0.0.1",
                    port=smsc.address(op.name)[1],
                    system_id=op.accounts[0].system_id,
                    password=op.accounts[0].password,
                    window=min(op.accounts[0].window, 10),
                )
                for op in cfg.operators
            ]
            pcfg = sc.platform.model_copy(update={"api_port": api_port, "binds": binds})
            platform = reference_platform.start(pcfg, token, out)
            api_url = f"http://127.0.0.1:{api_port}"

            async def bound() -> int:
                return smsc.stats().binds

            # The platform's binds must be up before MO can reach it.
            await reference_platform.wait_ready(
                api_url, bound, len(binds), bind_timeout=15, poll=0.05
            )
        settings = RunSettings(
            scenario=sc,
            channel=f"127.0.0.1:{channel_port}",
            api_url=api_url,
            api_token=token,
        )
        settings.write(out / "run.json")
        locust = _start_locust(opts, sc, out, api_url)
        t0 = time.monotonic()
        # The chaos schedule, on the same clock as the actions (from the load's start).
        side.start_load()
        ussd_start = side.ussd(0.0) if sc.ussd else None
        ussd_load_end = ussd_start
        samples: list[Sample] = [side.sample(0.0)]
        # What the samples alone don't keep, for the HTML report's charts.
        recorder = Recorder(datetime.now(UTC).isoformat(timespec="seconds"))
        recorder.record(samples[-1], hub.tracker.stats.combined(), side.operator_stats())
        ended_at: float | None = None
        with Live(console=console, auto_refresh=False, transient=False) as live:
            if not opts.live:
                live.stop()
            while True:
                await asyncio.sleep(1.0)
                now = time.monotonic() - t0
                samples.append(side.sample(now))
                recorder.record(samples[-1], hub.tracker.stats.combined(), side.operator_stats())
                if ended_at is None and locust.poll() is not None:
                    ended_at = now
                    if sc.ussd is not None:
                        ussd_load_end = side.ussd(now)
                phase = "load" if ended_at is None else "drain"
                if opts.live:
                    live.update(render(_snapshot(sc, smsc, hub, samples, phase)), refresh=True)
                if ended_at is not None:
                    # Receipts not yet due (a handset off for hours) are not in flight;
                    # USSD sessions still open are (people thinking, or the network's
                    # timers about to release them).
                    drained = (
                        len(hub.tracker) == 0
                        and smsc.pending_deliveries() == 0
                        and not any(n.sessions.counters.open_total for n in smsc.ussd_networks())
                    )
                    if drained or now - ended_at >= sc.time.drain:
                        break
                if now > sc.time.duration + 60 and ended_at is None:
                    log.warning("locust_overran duration=%s", sc.time.duration)
                    locust.terminate()
        # Whatever still waits for a reply after the drain is unanswered.
        pending = len(hub.tracker)
        ussd = None
        if ussd_start is not None:
            assert ussd_load_end is not None
            screens = ussd_screen_latency(smsc.ussd_networks())
            ussd = Ussd(ussd_start, ussd_load_end, side.ussd(time.monotonic() - t0), screens)
        counters: dict[str, Any] = {
            **{k: v for k, v in smsc.stats().as_dict().items() if isinstance(v, int)},
            "mo_from_locust": hub.mo_from_workers,
            "ussd_dials_from_locust": hub.dials_from_workers,
            "ussd_dials_refused": hub.dials_refused,
            "locust_workers": len(hub.workers_seen),
            "replies": hub.tracker.stats.replies,
            "reply_timeouts": hub.tracker.stats.timeouts,
            "replies_pending_at_end": pending,
            "wants_receipt": hub.wants_receipt,
            "delivery": merge_json([hub.delivery.to_json()] if hub.delivery else []),
            "locust_exit": locust.returncode,
            **{f"fault_hits_{k}": v for k, v in side.fault_hits().items()},
        }
        measured = Measured(
            samples,
            hub.tracker.stats,
            pending,
            counters,
            recorder.finish(ended_at, side.operator_stats()),
            locust.returncode,
            ussd,
        )
        return conclude(
            out, sc, thresholds, measured, console, baseline=opts.baseline, tolerance=opts.tolerance
        )
    finally:
        if locust is not None and locust.poll() is None:
            locust.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                locust.wait(10)
            if locust.poll() is None:
                locust.kill()
        if platform is not None:
            reference_platform.stop(platform)
        await side.stop()


def _start_locust(
    opts: RunOptions, sc: Scenario, out: Path, api_url: str
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        api_url,
        "--html",
        str(out / "locust.html"),
        "--csv",
        str(out / "locust"),
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if not opts.ui:
        cmd += ["--headless", "--only-summary"]
    else:
        # The UI on 127.0.0.1:8089 follows the run; it stays up 30 s after the shape ends.
        cmd += ["--web-host", "127.0.0.1", "--autostart", "--autoquit", "30"]
    if sc.load.processes > 1:
        cmd += ["--processes", str(sc.load.processes)]
    env = {**os.environ, ENV: str(out / "run.json")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    logf = (out / "locust.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=out)


def _snapshot(
    sc: Scenario, smsc: SmscServer, hub: ChannelHub, samples: list[Sample], phase: str
) -> Snapshot:
    stats = smsc.stats()
    per_op = {name: op.stats for name, op in smsc.operators.items()}
    prev = samples[-2] if len(samples) > 1 else samples[-1]
    cur = samples[-1]
    dt = max(1e-9, cur.t - prev.t)
    hist = hub.tracker.stats.combined()
    return Snapshot(
        scenario=sc.name,
        phase=phase,
        elapsed=cur.t,
        duration=sc.time.duration,
        sim_time=smsc.clock.now(),
        submit_rate=(cur.accepted - prev.accepted) / dt,
        receipt_rate=(cur.receipts_delivered - prev.receipts_delivered) / dt,
        mo_rate=(cur.mo_delivered - prev.mo_delivered) / dt,
        replies=hub.tracker.stats.replies,
        timeouts=hub.tracker.stats.timeouts,
        waiting=len(hub.tracker),
        p50=hist.percentile(0.5),
        p95=hist.percentile(0.95),
        p99=hist.percentile(0.99),
        receipts_by_stat=dict(stats.receipts_by_stat),
        operators={
            name: (s.accepted, s.receipts_delivered, s.mo_delivered, s.throttled)
            for name, s in per_op.items()
        },
        binds=stats.binds,
    )


def run_scenario(
    opts: RunOptions,
    console: Console | None,
    headline: Callable[[Scenario, dict[str, float]], str],
    body: Callable[[Scenario, dict[str, float], Path, Console], Coroutine[Any, Any, int]],
) -> int:
    """The scenario with its overrides, the run folder, the headline (``headline``: what
    it says after the subscribers and the duration), then ``body`` on a new event loop:
    its exit code, or 2 when the scenario is broken or the run could not be made
    (one-process and partitioned runs alike)."""
    console = console or Console()
    try:
        sc, thresholds = prepare(opts)
    except (ScenarioError, ValueError) as exc:
        console.print(str(exc), style="red", markup=False)
        return EXIT_ERROR
    out = run_folder(opts.out, sc.name)
    console.print(
        f"[bold]smsim run {sc.name}[/]: {sc.population.size:,} subscribers, "
        f"{sc.time.duration:g}s{headline(sc, thresholds)}; "
        f"target {opts.target or 'reference platform'}"
    )
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(body(sc, thresholds, out, console))
    except (RunError, PlatformError, OSError) as exc:
        console.print(f"[red]smsim run: {exc}")
        return EXIT_ERROR
    finally:
        loop.close()


def run(opts: RunOptions, console: Console | None = None) -> int:
    def headline(sc: Scenario, thresholds: dict[str, float]) -> str:
        return f" at x{sc.time.scale:g}, {sc.load.users} users, {len(thresholds)} gates"

    return run_scenario(
        opts, console, headline, lambda sc, th, out, con: _run(opts, sc, th, out, con)
    )
