"""The runner's pure parts: rates, participants, figures, reports, the dashboard."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from simulator.harness.frames import Origin
from simulator.harness.replies import ReplyStats
from simulator.scenario.dashboard import Snapshot, render
from simulator.scenario.figures import Sample, figures
from simulator.scenario.gates import judge
from simulator.scenario.loader import parse_scenario
from simulator.scenario.participants import (
    Block,
    action_blocks,
    sender_slice,
    spontaneous_block,
)
from simulator.scenario.rates import (
    expected_mo,
    peak_rate,
    per_user_rate,
    rate_at,
    users_at,
)
from simulator.scenario.report import compare, verdict_table, write_junit, write_summary


def shape_of(text: str):  # type: ignore[no-untyped-def]
    return parse_scenario(f"name: x\nload:\n  users: 10\n  mo: {text}\n").load


# --- rates -------------------------------------------------------------------------------


def test_each_shape_offers_its_rate_over_time() -> None:
    spike = shape_of("{shape: spike, rate: 10/s, factor: 50, at: 60s, length: 5m}")
    assert [rate_at(spike.mo, t) for t in (0, 59.9, 60, 359.9, 360)] == [10, 10, 500, 500, 10]
    assert users_at(spike, 0) == 1 and users_at(spike, 100) == 10
    ramp = shape_of("{shape: ramp, start_rate: 0, rate: 100/s, ramp: 10s}")
    assert [rate_at(ramp.mo, t) for t in (0, 5, 10, 99)] == [0, 50, 100, 100]
    quiz = shape_of("{shape: quiz-burst, base_rate: 5/s, rate: 100/s, burst: 30s, every: 2m}")
    assert [rate_at(quiz.mo, t) for t in (0, 29, 30, 119, 120)] == [100, 100, 5, 5, 100]
    soak = shape_of("{shape: soak, rate: 3000/min}")
    assert rate_at(soak.mo, 7200) == 50 and peak_rate(soak.mo) == 50
    assert rate_at(None, 5) == 0 and rate_at(soak.mo, -1) == 0


def test_expected_mo_integrates_the_rate() -> None:
    spike = shape_of("{shape: spike, rate: 10/s, factor: 50, at: 60s, length: 60s}")
    # 120 s at 10/s plus 60 s at 500/s
    assert expected_mo(spike.mo, 180) == pytest.approx(120 * 10 + 60 * 500, rel=1e-3)


@pytest.mark.parametrize(
    "placed",
    [
        # Locust 2's UsersDispatcher, two workers, 2 texters + 2 diallers (+ the manager):
        # every dialler on one worker, every texter on the other.
        [{"texter": 2, "dialler": 0}, {"texter": 0, "dialler": 2}],
        [{"texter": 1, "dialler": 1}, {"texter": 1, "dialler": 1}],
        [{"texter": 2, "dialler": 2}],
    ],
)
def test_users_offer_the_whole_rate_wherever_locust_places_them(
    placed: list[dict[str, int]],
) -> None:
    """Each user's pace adds up to the shape's rate whichever worker runs it."""
    sc = parse_scenario(
        "name: x\nload: {users: 2, mo: {shape: constant, rate: 50/s}}\n"
        "ussd: {dials: {shape: ramp, start_rate: 6/s, rate: 30/s, ramp: 10s}}\n"
    )
    assert sc.ussd is not None and users_at(sc.load, 0) == 2
    for t in (0.0, 3.0, 20.0):
        for cls, shape in (("texter", sc.load.mo), ("dialler", sc.ussd.dials)):
            offered = sum(w[cls] * per_user_rate(sc.load, shape, t) for w in placed)
            assert offered == pytest.approx(rate_at(shape, t)), (t, cls)


# --- participants --------------------------------------------------------------------------


def test_actions_get_disjoint_blocks_and_senders_the_rest() -> None:
    sc = parse_scenario(
        """\
name: x
population: {size: 1000}
time: {duration: 10m}
actions:
  - {at: 0s, broadcast: {text: a, recipients: 300}}
  - {at: 1m, flow_start: {flow: f, participants: 200}}
  - {at: 2m, mo_wave: {texts: [STOP], senders: 50, same_participants_as: 0}}
  - {at: 3m, flow_start: {flow: f, participants: 900}}
"""
    )
    blocks = action_blocks(sc)
    assert blocks == [Block(0, 300), Block(300, 200), Block(0, 50), Block(500, 500)]
    assert spontaneous_block(sc) == Block(0, 1000)  # everyone taken: senders overlap
    sc2 = parse_scenario(
        "name: y\npopulation: {size: 1000}\nactions: [{broadcast: {text: a, recipients: 100}}]\n"
    )
    rest = spontaneous_block(sc2)
    assert rest == Block(100, 900)
    parts = [sender_slice(rest, i, 4) for i in range(4)]
    assert [p.count for p in parts] == [225, 225, 225, 225]
    assert len({i for p in parts for i in p.indices()}) == 900
    with pytest.raises(ValueError):
        sender_slice(rest, 4, 4)


# --- figures -------------------------------------------------------------------------------


def sample(t: float, **kw: int) -> Sample:
    base = dict(
        submits=0,
        accepted=0,
        throttled=0,
        refused=0,
        wants_receipt=0,
        receipts_due=0,
        receipts_delivered=0,
        mo_queued=0,
        mo_delivered=0,
    )
    base.update(kw)
    return Sample(t=t, **base)  # type: ignore[arg-type]


def test_figures_from_samples_and_replies() -> None:
    replies = ReplyStats()
    for ms in range(1, 101):
        replies.histograms[Origin.LOCUST].add(ms / 1000)
    replies.replies, replies.timeouts = 100, 4
    samples = [
        sample(0),
        sample(1, submits=100, accepted=100, wants_receipt=100),
        sample(2, submits=1100, accepted=1000, throttled=50, refused=50, wants_receipt=1000),
        sample(
            3,
            submits=1100,
            accepted=1000,
            throttled=50,
            refused=50,
            wants_receipt=1000,
            receipts_due=1000,
            receipts_delivered=990,
            mo_queued=20,
            mo_delivered=18,
        ),
        sample(
            4,
            submits=1100,
            accepted=1000,
            throttled=50,
            refused=50,
            wants_receipt=1000,
            receipts_due=1000,
            receipts_delivered=1000,
            mo_queued=20,
            mo_delivered=20,
        ),
    ]
    f = figures(samples, replies, pending_replies=1, broadcasts=True)
    assert f["mo_reply_p50"] == pytest.approx(0.050, rel=0.011)
    assert f["mo_reply_p99"] == pytest.approx(0.099, rel=0.011)
    assert f["unanswered_ratio"] == pytest.approx(5 / 105)
    assert f["broadcast_throughput"] == pytest.approx(1000 / 2)  # t=0..2 while accepted grew
    assert f["receipt_completion_ratio"] == 1.0
    assert f["receipt_completion_time"] == 4.0
    assert f["error_ratio"] == pytest.approx(50 / 1100)
    assert f["throttle_ratio"] == pytest.approx(50 / 1100)
    assert f["lost_messages"] == 0
    # Stopped at t=3: ten receipts and two MO parts still undelivered.
    early = figures(samples[:4], replies, pending_replies=0, broadcasts=True)
    assert early["lost_messages"] == 12
    assert early["receipt_completion_time"] is None
    assert early["receipt_completion_ratio"] == pytest.approx(0.99)


def test_a_duplicate_receipt_does_not_hide_a_lost_one_and_the_wire_is_not_lost() -> None:
    end = dict(submits=100, accepted=100, wants_receipt=100, receipts_due=100, mo_queued=30)
    # 5 copies sent by the receipt_duplicate fault, all delivered; one receipt lost.
    lossy = sample(1, **end, receipts_delivered=104, receipts_duplicated=5, mo_delivered=30)
    f = figures([sample(0), lossy], ReplyStats(), pending_replies=0, broadcasts=True)
    assert f["lost_messages"] == 1
    assert f["receipt_completion_ratio"] == pytest.approx(0.99)
    # Sent and not yet answered as the count is taken: on the wire, not lost.
    busy = sample(
        1,
        **end,
        receipts_delivered=103,
        receipts_duplicated=5,
        receipts_on_the_wire=2,
        mo_delivered=27,
        mo_on_the_wire=3,
    )
    f = figures([sample(0), busy], ReplyStats(), pending_replies=0, broadcasts=True)
    assert f["lost_messages"] == 0
    assert f["receipt_completion_ratio"] == pytest.approx(0.98)


def test_figures_of_a_run_that_measured_nothing_fail_their_gates() -> None:
    f = figures([sample(0), sample(1)], ReplyStats(), pending_replies=0, broadcasts=True)
    verdicts = judge({"mo_reply_p95": 5.0, "broadcast_throughput": 1.0, "error_ratio": 0.1}, f)
    assert [v.passed for v in verdicts] == [False, False, False]


# --- reports -------------------------------------------------------------------------------


def test_junit_summary_and_baseline_regressions(tmp_path: Path) -> None:
    figs = {"mo_reply_p95": 2.5, "broadcast_throughput": 900.0}
    verdicts = judge({"mo_reply_p95": 3.0, "broadcast_throughput": 1000.0}, figs)
    baseline = {"figures": {"mo_reply_p95": 2.0, "broadcast_throughput": 950.0, "x": 1}}
    regressions = compare(figs, baseline, 0.10)
    # p95 2.5 s is 25 % over 2.0 s (fails); 900 msg/s is 5.3 % under 950 (passes).
    assert [(r.gate.name, r.passed) for r in regressions] == [
        ("mo_reply_p95", False),
        ("broadcast_throughput", True),
    ]
    write_junit(tmp_path / "j.xml", "demo", verdicts, regressions)
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["broadcast_throughput", "regression.mo_reply_p95"]
    write_summary(
        tmp_path / "s.json",
        scenario="demo",
        figures=figs,
        verdicts=verdicts,
        regressions=regressions,
        counters={"accepted": 5},
        histogram={},
    )
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["passed"] is False and data["figures"] == figs
    assert compare(data["figures"], data, 0.0)[0].passed  # a run is its own baseline
    console = Console(record=True, width=100)
    console.print(verdict_table("demo", verdicts, regressions))
    text = console.export_text()
    assert "broadcast_throughput" in text and "900 msg/s" in text and "FAIL" in text


def test_dashboard_renders_rates_latencies_and_operators() -> None:
    snap = Snapshot(
        scenario="covid-quiz",
        phase="load",
        elapsed=30,
        duration=600,
        sim_time=1586538000,
        submit_rate=1234,
        receipt_rate=1200,
        mo_rate=800,
        replies=5000,
        timeouts=3,
        waiting=120,
        p50=0.012,
        p95=0.4,
        p99=1.5,
        receipts_by_stat={"DELIVRD": 900, "UNDELIV": 20},
        operators={"vodafone": (700, 690, 400, 0), "orange": (534, 510, 400, 2)},
        binds=2,
    )
    console = Console(record=True, width=100)
    console.print(render(snap))
    text = console.export_text()
    for piece in (
        "covid-quiz",
        "2020-04-10 17:00",
        "1,234",
        "12ms",
        "400ms",
        "1.5s",
        "vodafone",
        "orange",
        "DELIVRD",
        "UNDELIV",
    ):
        assert piece in text, piece
