"""Scenario files: the shipped ones load; every mistake is named with file, line, field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simulator.scenario.gates import GATES, Verdict, gate, judge, parse_gate_override
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario, shipped_names
from simulator.scenario.spec import Gates, Spike
from simulator.scenario.units import format_duration, parse_duration, parse_rate

SHIPPED = {
    "covid-quiz",
    "national-broadcast",
    "conditionality",
    "feedback-survey",
    "awareness-wave",
    "volunteer-call",
    "opt-out-storm",
    "soak",
    "spike",
    "ussd-menu",
    "operator-faults",
}


def errors_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml")
    return info.value.errors


# --- the shipped scenarios -----------------------------------------------------------


def test_every_shipped_scenario_loads_and_is_named_for_its_file() -> None:
    assert set(shipped_names()) == SHIPPED
    for name in SHIPPED:
        s = load_scenario(name)
        assert s.name == name
        assert s.population.enabled, name  # a scenario is about people
        assert s.gates, f"{name} sets no gate: a CI job could not fail on it"


def test_the_quiz_knows_the_right_answer_to_each_of_its_ten_questions() -> None:
    from simulator.platform.campaigns import load_flows

    quiz = next(f for f in load_flows() if f.name == "COVID-19 awareness quiz")
    scenario = load_scenario("covid-quiz")
    assert len(scenario.behaviour.answer_keys) == 10
    assert scenario.actions[0].flow_start is not None
    assert scenario.actions[0].flow_start.flow == quiz.name
    # The answer key the subscribers use must be the flow's own key, question by question.
    import re

    assert len(quiz.questions) == 10
    for q in quiz.questions:
        hits = [
            opt for pat, opt in scenario.behaviour.answer_keys.items() if re.search(pat, q.text)
        ]
        assert hits == [q.correct], q.text


def test_awareness_wave_sends_the_twelve_messages_a_simulated_week_apart() -> None:
    s = load_scenario("awareness-wave")
    assert [a.kind for a in s.actions] == ["flow_start"] * 12
    gaps = {b.at - a.at for a, b in zip(s.actions, s.actions[1:], strict=False)}
    assert gaps == {100.0}
    assert 100.0 * s.time.scale == pytest.approx(7 * 86400, rel=1e-9)


def test_a_scenario_given_by_path_is_read_from_that_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\ngates: {lost_messages: 0}\n", encoding="utf-8")
    assert load_scenario(str(f)).name == "mine"
    with pytest.raises(ScenarioError, match=r"no such scenario \(shipped: awareness-wave"):
        load_scenario("no-such-one")


# --- errors name the file, the line and the field --------------------------------------


def test_unknown_field_points_at_the_key() -> None:
    errs = errors_of(
        """\
        name: x
        load:
          users: 2
          userz: 3
        """
    )
    assert errs == ["s.yaml:4:3: load.userz: unknown field"]


def test_wrong_value_points_at_the_value_and_all_errors_come_at_once() -> None:
    errs = errors_of(
        """\
        name: x
        time: {scale: -1, duration: 5 minutes}
        population:
          size: lots
        """
    )
    errs.sort()
    assert len(errs) == 3
    assert errs[0].startswith("s.yaml:2:15: time.scale: Input should be greater than 0")
    assert errs[1].startswith("s.yaml:2:29: time.duration: '5 minutes' is not a duration")
    assert errs[2].startswith("s.yaml:4:9: population.size: Input should be a valid integer")


def test_missing_field_names_it_and_points_at_its_parent() -> None:
    errs = errors_of(
        """\
        name: x
        actions:
          - at: 10s
            broadcast:
              text: hello
        """
    )
    assert errs == ["s.yaml:5:7: actions[0].broadcast.recipients: Field required"]


def test_load_shape_errors_skip_the_union_tag() -> None:
    errs = errors_of(
        """\
        name: x
        load:
          mo: {shape: spike, rate: 10/s, at: 1m, factor: 0.5}
        """
    )
    assert errs == ["s.yaml:3:50: load.mo.factor: Input should be greater than or equal to 1"]
    errs = errors_of("name: x\nload:\n  mo: {shape: wave, rate: 1}\n")
    assert len(errs) == 1 and errs[0].startswith("s.yaml:3:7: load.mo: Input tag 'wave'")


def test_action_must_be_exactly_one_thing() -> None:
    errs = errors_of(
        """\
        name: x
        actions:
          - at: 0s
          - at: 1s
            broadcast: {text: a, recipients: 1}
            mo_wave: {texts: [STOP], senders: 1}
        """
    )
    assert errs[0] == (
        "s.yaml:3:5: actions[0]: an action is exactly one of broadcast, flow_start, mo_wave"
    )
    assert errs[1] == (
        "s.yaml:4:5: actions[1]: an action is exactly one of broadcast, flow_start, mo_wave"
        " (got broadcast, mo_wave)"
    )


def test_references_and_times_are_checked() -> None:
    errs = errors_of(
        """\
        name: x
        time: {duration: 1m}
        actions:
          - mo_wave: {texts: [STOP], senders: 5, same_participants_as: 0}
        """
    )
    assert len(errs) == 1 and "same_participants_as must name an earlier action" in errs[0]
    errs = errors_of(
        "name: x\ntime: {duration: 1m}\nactions:\n  - {at: 2m, broadcast: {text: a, recipients: 1}}\n"
    )
    assert len(errs) == 1 and "is after the run's duration 60s" in errs[0]


def test_gates_unknown_and_badly_valued() -> None:
    errs = errors_of("name: x\ngates:\n  mo_reply_p95: soon\n")
    assert errs == [
        "s.yaml:3:17: gates.mo_reply_p95: 'soon' is not a duration such as 90s, 5m, 1h30m or 3d"
    ]
    errs = errors_of("name: x\ngates: {p95: 2s}\n")
    assert errs == ["s.yaml:2:9: gates.p95: unknown field"]
    errs = errors_of("name: x\ngates: {error_ratio: 5}\n")
    assert errs == ["s.yaml:2:22: gates.error_ratio: Input should be less than or equal to 1"]


def test_gate_model_and_registry_agree() -> None:
    assert list(Gates.model_fields) == list(GATES)
    g = parse_scenario("name: x\ngates: {lost_messages: 0, mo_reply_p50: 1s}\n").gates
    assert g.thresholds() == {"mo_reply_p50": 1.0, "lost_messages": 0.0}
    assert g.with_overrides({"mo_reply_p50": 2.0}).thresholds()["mo_reply_p50"] == 2.0


def test_yaml_syntax_duplicates_and_name() -> None:
    errs = errors_of("name: x\nload: {users: 2\n")
    assert len(errs) == 1 and errs[0].startswith("s.yaml:3:1: ")
    errs = errors_of("name: x\ngates: {lost_messages: 0}\ngates: {error_ratio: 0.1}\n")
    assert errs == ["s.yaml:3:1: gates: key given twice"]
    errs = errors_of("- a\n- b\n")
    assert errs == ["s.yaml:1:1: a scenario is a mapping (name:, load:, gates: ...)"]
    with pytest.raises(ScenarioError) as info:
        parse_scenario("description: d\nname: other\n", "f.yaml", expected_name="f")
    assert info.value.errors == ["f.yaml:2:7: name: 'other' differs from the file name 'f'"]


def test_population_is_on_unless_the_file_turns_it_off() -> None:
    assert parse_scenario("name: x\npopulation: {size: 10}\n").population.enabled
    assert not parse_scenario(
        "name: x\npopulation: {size: 10, enabled: false}\n"
    ).population.enabled
    assert parse_scenario("name: x\n").population.enabled


# --- units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (12, 12.0),
        (0.5, 0.5),
        ("500ms", 0.5),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("3d", 259200.0),
        ("1w", 604800.0),
        ("2.5", 2.5),
        ("1m 30s", 90.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 minutes", "s", "1x", "-3s", True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_rates() -> None:
    assert parse_rate("50/s") == 50
    assert parse_rate("3000/min") == 50
    assert parse_rate("7200 / hour") == 2
    assert parse_rate(2) == 2
    assert parse_rate("2/day") == pytest.approx(2 / 86400)
    for bad in ("fast", "5/fortnight", -1, False):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.0123, 12.34, 245, 7800, 273600)] == [
        "12ms",
        "12.3s",
        "4m05s",
        "2h10m",
        "3d4h",
    ]


def test_spike_shape_defaults() -> None:
    s = parse_scenario("name: x\nload:\n  mo: {shape: spike, rate: 2/s, at: 1m}\n")
    assert isinstance(s.load.mo, Spike)
    assert (s.load.mo.rate, s.load.mo.factor, s.load.mo.at, s.load.mo.length) == (2, 50, 60, 300)


# --- gates -----------------------------------------------------------------------------


def test_gates_judge_both_ways() -> None:
    thresholds = {"mo_reply_p95": 2.0, "broadcast_throughput": 1000.0, "lost_messages": 0.0}
    ok = judge(
        thresholds, {"mo_reply_p95": 1.9, "broadcast_throughput": 1000.0, "lost_messages": 0}
    )
    assert [v.passed for v in ok] == [True, True, True]
    bad = judge(
        thresholds, {"mo_reply_p95": 2.01, "broadcast_throughput": 999.0, "lost_messages": 1}
    )
    assert [v.passed for v in bad] == [False, False, False]
    assert bad[0].line() == "FAIL mo_reply_p95: 2.0s (gate <= 2.0s)"
    assert bad[1].line() == "FAIL broadcast_throughput: 999 msg/s (gate >= 1,000 msg/s)"


def test_a_gate_the_run_did_not_measure_fails() -> None:
    (v,) = judge({"broadcast_throughput": 1.0}, {})
    assert not v.passed
    assert v.line() == "FAIL broadcast_throughput: not measured (gate >= 1 msg/s)"
    assert Verdict(gate("lost_messages"), 0, 0).passed


def test_gate_overrides_from_the_command_line() -> None:
    assert parse_gate_override("mo_reply_p95=3s") == ("mo_reply_p95", 3.0)
    assert parse_gate_override(" receipt_completion_ratio = 0.9 ") == (
        "receipt_completion_ratio",
        0.9,
    )
    for bad in ("mo_reply_p95", "=3", "nope=1", "error_ratio=2", "mo_reply_p95=later"):
        with pytest.raises(ValueError):
            parse_gate_override(bad)
    assert set(GATES) >= {
        "mo_reply_p50",
        "mo_reply_p95",
        "mo_reply_p99",
        "broadcast_throughput",
        "receipt_completion_ratio",
        "receipt_completion_time",
        "error_ratio",
        "throttle_ratio",
        "lost_messages",
    }
