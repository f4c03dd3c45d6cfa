"""Chaos schedules in scenarios: faults on the SMSC at given times of a run.

The spec side (what a ``chaos:`` step means, errors naming file:line:col) and a short
real run in which the reference platform rides out a throttling storm and a dropped
bind. That run is also the regression test for what the ``operator-faults`` scenario
found: aiosmpplib's default throttle handler silenced the platform's bind for minutes
after a short storm (a reply storm then goes unanswered; see
simulator/platform/channels/smpp.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from simulator.config import FaultKind
from simulator.scenario.loader import ScenarioError, parse_scenario
from simulator.scenario.runner import EXIT_PASSED, RunOptions, prepare, run

pytestmark = pytest.mark.timeout(180)

SCENARIO = """\
name: chaos-smoke
population: {size: 20000, seed: 7}
platform: {tps: 0}
behaviour:
  reply_probability: {eager: 1.0, normal: 1.0, rare: 1.0, never: 0.0}
time: {scale: 60, duration: 10s, drain: 15s}
load:
  users: 2
  reply_timeout: 8s
  mo: {shape: constant, rate: 30/s, texts: {خدمات: 1, help: 1}}
chaos:
  - {fault: submit_error, at: 2s, for: 3s, status: ESME_RTHROTTLED, share: 0.5}
  - {fault: bind_drop, at: 6s}
  - {fault: receipt_duplicate, at: 0s, share: 0.05, name: dup}
gates:
  # Every MO here is one the platform answers (its catch-all takes typos and nonsense), so
  # what goes unanswered is what the faults cost: a reply throttled past its retries.
  unanswered_ratio: 0.02
  lost_messages: 0
"""


def test_chaos_steps_are_fault_rules_on_the_runs_clock() -> None:
    sc = parse_scenario(SCENARIO)
    rules = [step.rule() for step in sc.chaos]
    assert [r.kind for r in rules] == [
        FaultKind.SUBMIT_ERROR,
        FaultKind.BIND_DROP,
        FaultKind.RECEIPT_DUPLICATE,
    ]
    storm = rules[0]
    assert (storm.start, storm.duration, storm.share, storm.status) == (
        2.0,
        3.0,
        0.5,
        "ESME_RTHROTTLED",
    )
    assert rules[2].name == "dup"


def test_a_wrong_chaos_step_names_its_file_line_and_field() -> None:
    text = SCENARIO.replace("{fault: bind_drop, at: 6s}", "{fault: outage, at: 6s}")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "chaos-smoke.yaml")
    message = str(err.value)
    assert "chaos-smoke.yaml:13:5: chaos[1]:" in message and "an outage needs a duration" in message
    text = SCENARIO.replace("status: ESME_RTHROTTLED", "status: ESME_RSLOW")
    with pytest.raises(ScenarioError, match=r"chaos-smoke.yaml:12:.*unknown SMPP status"):
        parse_scenario(text, "chaos-smoke.yaml")
    text = SCENARIO.replace("at: 6s", "at: 60s")
    with pytest.raises(ScenarioError, match=r"chaos\[1\]: at 60s is after the run's duration"):
        parse_scenario(text, "chaos-smoke.yaml")


def test_a_shortened_run_keeps_only_the_chaos_that_fits(tmp_path: Path) -> None:
    path = tmp_path / "chaos-smoke.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    sc, _ = prepare(RunOptions(scenario=str(path), duration=5))
    assert [c.kind for c in sc.chaos] == [FaultKind.SUBMIT_ERROR, FaultKind.RECEIPT_DUPLICATE]


def test_the_platform_rides_out_a_throttling_storm_and_a_dropped_bind(tmp_path: Path) -> None:
    path = tmp_path / "chaos-smoke.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "run"
    console = Console(record=True, width=120)
    rc = run(RunOptions(scenario=str(path), out=out, live=False, control_port=0), console)
    summary = json.loads((out / "summary.json").read_text())
    counters = summary["counters"]
    assert rc == EXIT_PASSED, console.export_text() + json.dumps(counters)
    # The faults happened, and the platform saw them ...
    assert counters["fault_hits_submit_error-1"] > 0
    assert counters["throttled"] == counters["fault_hits_submit_error-1"]
    assert counters["fault_hits_bind_drop-2"] == 1
    assert counters["binds"] >= 2  # it bound again after the drop
    assert counters["fault_hits_dup"] > 0
    assert counters["receipts_delivered"] > counters["receipts_due"]  # duplicates included
    assert counters["receipts_duplicated"] == counters["fault_hits_dup"]
    # ... and every MO still reached it and (nearly) every one was answered.
    assert counters["mo_delivered"] >= counters["mo_from_locust"] > 100
    assert counters["replies"] >= 0.95 * counters["mo_from_locust"]
