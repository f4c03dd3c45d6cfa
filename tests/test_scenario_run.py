"""``smsim run`` end to end: SMSC, subscribers, the reference platform and real Locust.

Short real runs (seconds, a small population): a scenario with generous gates passes
and writes its reports; the same run with an impossible gate fails with exit code 1
and says which gate in the JUnit file. The figures are checked against what was offered.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from simulator.scenario.loader import parse_scenario
from simulator.scenario.rates import expected_mo
from simulator.scenario.runner import EXIT_ERROR, EXIT_FAILED, EXIT_PASSED, RunOptions, run
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(180)

SCENARIO = """\
name: smoke
description: spontaneous MO at a steady rate plus a small quiz start
population: {size: 20000, seed: 7}
platform: {tps: 0}
behaviour:
  reply_probability: {eager: 1.0, normal: 1.0, rare: 1.0, never: 0.0}
  delay_median: {fast: 1.0, normal: 1.0, slow: 1.0}
time: {scale: 60, duration: 6s, drain: 8s}
actions:
  - at: 1s
    flow_start: {flow: COVID-19 awareness quiz, participants: 40}
load:
  users: 2
  reply_timeout: 5s
  mo: {shape: constant, rate: 40/s, texts: {خدمات: 1, help: 1}}
gates:
  mo_reply_p95: 5s
  # Every MO gets a reply: the catch-all flow answers typos and nonsense (0.0 % measured).
  unanswered_ratio: 0.02
  error_ratio: 0
  lost_messages: 0
"""


def write_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "smoke.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def test_a_short_run_passes_its_gates_and_reports(tmp_path: Path) -> None:
    """With two Locust worker processes (Locust's distributed mode, master + workers),
    and the SMSC's control API answering during the run (what `smsim top` reads)."""
    path = write_scenario(tmp_path)
    out = tmp_path / "run"
    console = Console(record=True, width=120)
    control = free_port()
    seen: list[dict[str, object]] = []

    def poll() -> None:
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{control}/stats", timeout=2) as r:
                    seen.append(json.loads(r.read()))
            except OSError:
                time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    rc = run(
        RunOptions(scenario=str(path), out=out, live=False, processes=2, control_port=control),
        console,
    )
    poller.join(5)
    assert seen, "the control API never answered during the run"
    text = console.export_text()
    assert rc == EXIT_PASSED, text + (out / "locust.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True
    counters = summary["counters"]
    assert counters["locust_workers"] == 2
    # Open loop: what Locust offered follows the shape, within a tick's rounding and
    # the spawn delay, whatever the platform did.
    offered = expected_mo(parse_scenario(SCENARIO).load.mo, 6.0)
    assert 0.7 * offered <= counters["mo_from_locust"] <= 1.05 * offered
    # Every MO reached the platform, and replies came back for (nearly) all of them.
    assert counters["mo_delivered"] >= counters["mo_from_locust"]
    assert counters["replies"] >= 0.95 * counters["mo_from_locust"]
    # The quiz start went through RapidPro's API and its subscribers answered.
    assert counters["accepted"] > counters["replies"] * 0.5
    assert summary["figures"]["mo_reply_p95"] < 5
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("4", "0")
    assert (out / "locust.html").stat().st_size > 10_000
    locust_log = (out / "locust.log").read_text()
    assert "MO→reply (texting 1442)" in locust_log and "POST flow_starts" in locust_log
    assert "smsim run smoke: gates" in text


def test_an_impossible_gate_fails_the_run_with_exit_code_1(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)
    out = tmp_path / "run"
    console = Console(record=True, width=120)
    rc = run(
        RunOptions(scenario=str(path), out=out, live=False, duration=3, gates=["mo_reply_p50=0"]),
        console,
    )
    assert rc == EXIT_FAILED, console.export_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False
    failed = [g["name"] for g in summary["gates"] if not g["passed"]]
    assert failed == ["mo_reply_p50"]
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


def test_a_broken_scenario_is_a_clear_error_not_a_run(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nload: {users: -1}\n", encoding="utf-8")
    console = Console(record=True, width=200)
    assert run(RunOptions(scenario=str(path), out=tmp_path / "r"), console) == EXIT_ERROR
    assert f"{path}:2:15: load.users: Input should be greater than or equal to 1" in (
        console.export_text()
    )
    assert not (tmp_path / "r").exists()


USSD_SCENARIO = """\
name: ussd-smoke
population: {size: 20000, seed: 11}
platform: {tps: 0}
time: {scale: 10, duration: 8s, drain: 20s}  # think times are simulated seconds
ussd:
  dials: {shape: constant, rate: 10/s}
load: {users: 2}
gates:
  ussd_completion_ratio: 0.5
  ussd_screen_p95: 2s
  ussd_sessions_per_s: 5
  error_ratio: 0
  lost_messages: 0
"""


def test_ussd_dials_from_locust_become_sessions_the_menu_completes(tmp_path: Path) -> None:
    """Locust's diallers dial *1442# open loop; simulated people press through the
    reference platform's menu over SMPP; the ussd_* gates are judged on the SMSC's
    USSD counters."""
    path = tmp_path / "ussd-smoke.yaml"
    path.write_text(USSD_SCENARIO, encoding="utf-8")
    out = tmp_path / "run"
    console = Console(record=True, width=120)
    rc = run(RunOptions(scenario=str(path), out=out, live=False, control_port=0), console)
    summary = json.loads((out / "summary.json").read_text())
    assert rc == EXIT_PASSED, console.export_text() + json.dumps(summary["figures"])
    c, f = summary["counters"], summary["figures"]
    assert 0.7 * 80 <= c["ussd_dials_from_locust"] <= 1.05 * 80  # 10/s for 8 s, open loop
    assert c["ussd_dials_refused"] < c["ussd_dials_from_locust"] * 0.1
    assert f["ussd_completion_ratio"] >= 0.5 and f["ussd_sessions_per_s"] >= 5
    # Every accepted dial became a session at the SMSC, and the sessions had dialogues:
    # more screens answered than sessions (the menu is at least two screens deep).
    assert c["ussd_sessions_dialled"] == c["ussd_dials_from_locust"] - c["ussd_dials_refused"]
    assert c["ussd_steps"] > c["ussd_sessions_dialled"]
    assert c["ussd_released_completed"] >= 0.5 * c["ussd_sessions_dialled"]
