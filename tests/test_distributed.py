"""The SMSC side partitioned by number range, on one machine and across a network.

Number ranges are pure arithmetic checked against a real population; the channel's
token and STATS frames against a real hub; then real short runs (seconds, 20,000
subscribers): two parts on this machine, a master and a `smsim worker` as separate
processes on loopback (a worker with the wrong token refused first), and, where this
user may create network namespaces, the master and the worker in two namespaces joined
by a veth pair, so every hop between them crosses a network interface. Assertions are on
counts, never on durations.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from simulator.config import PopulationConfig
from simulator.harness.frames import (
    FrameReader,
    Stats,
    encode_auth,
    encode_hello,
    encode_mo,
    encode_start,
    encode_stats_request,
)
from simulator.harness.hub import ChannelHub
from simulator.harness.ranges import NumberRanges
from simulator.platform.channels.smpp import national
from simulator.scenario.distributed import ClusterOptions, _operators, _sample, run_cluster
from simulator.scenario.runner import EXIT_PASSED
from simulator.scenario.timeseries import TimeSeries
from simulator.smsc.stats import SmscStats
from simulator.subscribers.population import Population
from tests.support.ports import free_port
from tests.test_html_report import Tables, svgs
from tests.test_scenario_chaos import SCENARIO as CHAOS_SCENARIO
from tests.test_scenario_run import USSD_SCENARIO, write_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_every_number_has_one_owner_and_its_prefixes_say_so(parts: int) -> None:
    ranges = NumberRanges(parts)
    pop = Population(PopulationConfig(size=30_000, seed=3))
    owners: Counter[int] = Counter()
    for i in range(0, len(pop), 7):
        msisdn = pop.msisdn(i)
        owner = ranges.owner(int(msisdn))
        owners[owner] += 1
        # The platform's router (longest prefix) sends it to the same part.
        matches = [
            k
            for k in range(parts)
            if any(national(msisdn).startswith(p) for p in ranges.national_prefixes(k))
        ]
        assert matches == ([] if parts == 1 else [owner])
    # Every part gets its share of the population (members are spread over each prefix).
    n = sum(owners.values())
    for k in range(parts):
        share = len(ranges.buckets(k)) / 10**ranges.digits
        assert abs(owners[k] / n - share) < 0.03, (k, owners)


def test_ranges_refuse_impossible_splits() -> None:
    with pytest.raises(ValueError):
        NumberRanges(0)
    with pytest.raises(ValueError):
        NumberRanges(101)
    with pytest.raises(ValueError):
        NumberRanges(2).buckets(2)


async def _frames(reader: asyncio.StreamReader, want: int) -> list[object]:
    fr = FrameReader()
    got: list[object] = []
    while len(got) < want:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            break
        got.extend(fr.feed(data))
    return got


async def test_a_hub_with_a_token_hears_nothing_before_the_right_one() -> None:
    injected: list[tuple[str, str]] = []
    hub = ChannelHub(
        lambda n, t: injected.append((n, t)),
        reply_timeout=5,
        token="s3cret",
        stats=lambda: {"part": 1, "mo": len(injected)},
    )
    port = await hub.start()
    try:
        # No token: the MO is not injected and the connection is closed.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(encode_hello(0, 1) + b"".join(encode_mo([(201001112222, "help")])))
        await w.drain()
        assert await asyncio.wait_for(r.read(), 10) == b""
        # A wrong token: the same.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(encode_auth("guess") + b"".join(encode_mo([(201001112222, "help")])))
        assert await asyncio.wait_for(r.read(), 10) == b""
        assert injected == []
        # The right token: MO are injected and STATS are answered.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(encode_auth("s3cret") + b"".join(encode_mo([(201001112222, "help")])))
        w.write(encode_stats_request())
        (frame,) = await _frames(r, 1)
        assert frame == Stats({"part": 1, "mo": 1})
        assert injected == [("201001112222", "help")]
        w.close()
    finally:
        await hub.stop()


async def test_a_start_frame_tells_the_hub_the_load_starts() -> None:
    started: list[int] = []
    hub = ChannelHub(lambda n, t: None, reply_timeout=5, load_start=lambda: started.append(1))
    port = await hub.start()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        # Answered in order: the STATS reply comes after the START was handled.
        w.write(encode_start() + encode_stats_request())
        assert await _frames(r, 1) == [Stats({})]
        assert started == [1]
        w.close()
    finally:
        await hub.stop()


def _part(part: int, accepted: dict[str, int], delivrd: dict[str, int]) -> dict[str, Any]:
    """A part's STATS as shard.stats_of writes it: a sample and each operator's stats."""
    ops = {}
    for name, n in accepted.items():
        s = SmscStats(accepted=n, receipts_delivered=delivrd[name], throttled=part)
        s.receipts_by_stat.update({"DELIVRD": delivrd[name], "EXPIRED": part})
        ops[name] = json.loads(json.dumps(s.as_dict()))
    return {
        "part": part,
        "sample": {"accepted": sum(accepted.values()), "wants_receipt": 2 * part},
        "operators": ops,
    }


def test_the_master_sums_each_operator_and_each_sample_field_over_the_parts() -> None:
    parts = [
        _part(0, {"vodafone": 10, "orange": 5}, {"vodafone": 7, "orange": 1}),
        _part(1, {"vodafone": 20, "orange": 1}, {"vodafone": 3, "orange": 0}),
    ]
    ops = _operators(parts)
    assert list(ops) == ["vodafone", "orange"]
    assert (ops["vodafone"].accepted, ops["vodafone"].receipts_delivered) == (30, 10)
    assert (ops["orange"].accepted, ops["orange"].throttled) == (6, 1)
    assert ops["vodafone"].receipts_by_stat == Counter({"DELIVRD": 10, "EXPIRED": 1})
    sample = _sample(3.0, parts)
    assert (sample.t, sample.accepted, sample.wants_receipt, sample.submits) == (3.0, 36, 2, 0)


def _check_run_folder(out: Path, summary: dict[str, Any]) -> None:
    """A partitioned run writes what a one-process run writes: the time series of the
    parts' sums, and the report drawn from it."""
    c = summary["counters"]
    ts = TimeSeries.read(out / "timeseries.json")
    assert ts.load_ended_at is not None and len(ts.ticks) >= 4
    # Per-tick latency from the merged histograms: every reply counted in one tick.
    assert 0 < sum(t.latency.count for t in ts.ticks) <= c["replies"]
    last = ts.ticks[-1]
    # The operators' counters summed over the parts agree with the summed samples.
    assert sum(o.accepted for o in last.operators.values()) == last.sample.accepted > 0
    assert sum(o.mo_delivered for o in last.operators.values()) == last.sample.mo_delivered
    assert last.sample.mo_delivered <= c["mo_delivered"]
    issued = sum(n for by in ts.receipts_by_operator.values() for n in by.values())
    assert issued == c["receipts_due"] > 0  # one stat per receipt issued
    page = (out / "report.html").read_text(encoding="utf-8")
    assert [c.get("aria-label") for c in svgs(page)][:2] == ["Throughput", "MO → reply latency"]
    gates = [cells[-1] for _, cells in Tables(page).rows["gates"]]
    assert gates == ["pass"] * len(summary["gates"]) and gates


def _check_summary(out: Path, parts: int) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    c = summary["counters"]
    assert summary["passed"] is True, summary
    assert c["parts"] == parts and c["locust_workers"] == parts
    # Every part was sent MO by Locust, and replies came back for (nearly) all of them.
    assert all(n > 0 for n in c["mo_from_locust_by_part"]), c
    assert sum(c["mo_from_locust_by_part"]) == c["mo_from_locust"] >= 100
    assert c["mo_delivered"] >= c["mo_from_locust"]
    assert c["replies"] >= 0.9 * c["mo_from_locust"]
    # The quiz start went through the platform's API (from a Locust worker) and was
    # answered: MT reached the parts that own the participants.
    assert c["accepted"] > 0.5 * c["replies"]
    _check_run_folder(out, summary)
    return summary


def _partitioned(path: Path, parts: int = 2) -> tuple[int, Path, Console]:
    """``smsim run PATH --partition --processes PARTS``: exit code, run folder, console."""
    out = path.parent / "run"
    console = Console(record=True, width=140)
    rc = run_cluster(
        ClusterOptions(scenario=str(path), out=out, live=False, processes=parts, partition=True),
        console,
    )
    return rc, out, console


@pytest.mark.timeout(240)
def test_a_partitioned_run_on_one_machine_passes_with_two_parts(tmp_path: Path) -> None:
    rc, out, console = _partitioned(write_scenario(tmp_path))
    log = (out / "locust.log").read_text() + (out / "worker.log").read_text()
    assert rc == EXIT_PASSED, console.export_text() + log
    _check_summary(out, 2)
    assert "2 parts on 1 host(s)" in console.export_text()


@pytest.mark.timeout(240)
def test_a_partitioned_ussd_run_is_judged_on_the_parts_summed_ussd_counters(
    tmp_path: Path,
) -> None:
    """Each part's USSD networks play the sessions dialled to its numbers; the ussd_*
    gates and counters are the parts' sums, as test_scenario_run's one-process run."""
    path = tmp_path / "ussd-smoke.yaml"
    path.write_text(USSD_SCENARIO, encoding="utf-8")
    rc, out, console = _partitioned(path)
    summary = json.loads((out / "summary.json").read_text())
    c, f = summary["counters"], summary["figures"]
    assert rc == EXIT_PASSED, console.export_text() + json.dumps(summary["gates"])
    assert c["parts"] == 2 and 0.7 * 80 <= c["ussd_dials_from_locust"] <= 1.05 * 80
    assert c["ussd_dials_refused"] < c["ussd_dials_from_locust"] * 0.1
    # Every dial a part accepted is one of the summed sessions; each had its screens.
    assert c["ussd_sessions_dialled"] == c["ussd_dials_from_locust"] - c["ussd_dials_refused"]
    assert c["ussd_steps"] > c["ussd_sessions_dialled"]
    released = sum(v for k, v in c.items() if k.startswith("ussd_released_"))
    assert released + c["ussd_open_at_end"] == c["ussd_sessions_dialled"]
    assert f["ussd_completion_ratio"] == pytest.approx(c["ussd_released_completed"] / released)
    assert f["ussd_sessions_per_s"] >= 5 and f["ussd_screen_p95"] is not None
    assert {g["name"] for g in summary["gates"] if g["passed"]} >= {
        "ussd_completion_ratio",
        "ussd_screen_p95",
        "ussd_sessions_per_s",
    }


@pytest.mark.timeout(240)
def test_a_partitioned_run_puts_the_chaos_on_every_part_and_sums_the_hits(
    tmp_path: Path,
) -> None:
    """test_scenario_chaos's run with two parts: each part is a whole SMSC, so each
    throttles, drops its bind once and duplicates receipts; the hits are summed."""
    path = tmp_path / "chaos-smoke.yaml"
    path.write_text(CHAOS_SCENARIO, encoding="utf-8")
    rc, out, console = _partitioned(path)
    c = json.loads((out / "summary.json").read_text())["counters"]
    assert rc == EXIT_PASSED, console.export_text() + json.dumps(c)
    assert c["parts"] == 2
    assert c["throttled"] == c["fault_hits_submit_error-1"] > 0
    assert c["fault_hits_bind_drop-2"] == 2  # one drop in each part
    assert c["binds"] >= 4  # the platform bound to each part again after its drop
    assert c["fault_hits_dup"] > 0
    assert c["receipts_delivered"] > c["receipts_due"]  # duplicates included
    assert c["mo_delivered"] >= c["mo_from_locust"] > 100


def _env(token: str) -> dict[str, str]:
    env = {**os.environ, "SMSIM_CLUSTER_TOKEN": token}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _master_and_worker(
    tmp_path: Path,
    master_host: str,
    worker_host: str,
    master_prefix: list[str],
    worker_prefix: list[str],
) -> None:
    """Master and worker as separate processes (``*_prefix``: e.g. ``ip netns exec``)."""
    path = write_scenario(tmp_path)
    out = tmp_path / "run"
    cport, lport = free_port(), free_port()
    smsim = [sys.executable, "-m", "simulator.cli"]
    master = subprocess.Popen(
        [
            *master_prefix,
            *smsim,
            "run",
            str(path),
            "--master",
            "--bind-host",
            master_host,
            "--expect-workers",
            "1",
            "--cluster-port",
            str(cport),
            "--locust-port",
            str(lport),
            "--control-port",
            "0",
            "--out",
            str(out),
            "--no-live",
        ],
        env=_env("right-token"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        worker = [
            *worker_prefix,
            *smsim,
            "worker",
            "--master",
            f"{master_host}:{cport}",
            "--bind-host",
            worker_host,
            "--processes",
            "2",
        ]
        # Until the master listens, a worker cannot connect (exit 2 either way): retry
        # the wrong token until the master has refused it.
        for _ in range(120):
            bad = subprocess.run(
                [*worker, "--out", str(tmp_path / "w-bad")],
                env=_env("wrong-token"),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert bad.returncode == 2, bad.stderr
            if "refused: wrong cluster token" in bad.stderr:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the master never listened: {bad.stderr}")
        good = subprocess.run(
            [*worker, "--out", str(tmp_path / "w")],
            env=_env("right-token"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=200,
        )
        text, _ = master.communicate(timeout=200)
        log = text.decode() + good.stderr
        assert good.returncode == 0, log
        assert master.returncode == EXIT_PASSED, log + (out / "locust.log").read_text()
        assert "cluster_refused" in log and "reason=token" in log
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    summary = _check_summary(out, 2)
    assert summary["counters"]["worker_hosts"] == 1
    settings = json.loads((out / "run.json").read_text())
    assert all(ch.startswith(f"{worker_host}:") for ch in settings["channels"])


@pytest.mark.timeout(300)
def test_master_and_worker_as_separate_processes_on_loopback(tmp_path: Path) -> None:
    _master_and_worker(tmp_path, "127.0.0.1", "127.0.0.1", [], [])


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"smsim-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _can_make_namespaces(), reason="needs root and iproute2 (ip netns)")
def test_master_and_worker_in_two_network_namespaces(tmp_path: Path) -> None:
    """Two namespaces, one veth pair, 10.x.0.1 and 10.x.0.2: nothing reaches the other
    side over loopback."""
    tag = f"{os.getpid() % 10000}"
    ns_m, ns_w = f"smsim-m{tag}", f"smsim-w{tag}"
    vm, vw = f"smsvm{tag}", f"smsvw{tag}"
    net = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    steps = [
        ["ip", "netns", "add", ns_m],
        ["ip", "netns", "add", ns_w],
        ["ip", "link", "add", vm, "type", "veth", "peer", "name", vw],
        ["ip", "link", "set", vm, "netns", ns_m],
        ["ip", "link", "set", vw, "netns", ns_w],
        ["ip", "-n", ns_m, "addr", "add", f"{net}.1/24", "dev", vm],
        ["ip", "-n", ns_w, "addr", "add", f"{net}.2/24", "dev", vw],
        ["ip", "-n", ns_m, "link", "set", vm, "up"],
        ["ip", "-n", ns_w, "link", "set", vw, "up"],
        ["ip", "-n", ns_m, "link", "set", "lo", "up"],
        ["ip", "-n", ns_w, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        _master_and_worker(
            tmp_path,
            f"{net}.1",
            f"{net}.2",
            ["ip", "netns", "exec", ns_m],
            ["ip", "netns", "exec", ns_w],
        )
    finally:
        for ns in (ns_m, ns_w):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
