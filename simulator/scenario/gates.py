"""The pass/fail gates a scenario can set, and how a run's figures are judged by them.

Each gate has a fixed direction (a latency is a ceiling, a throughput a floor), so a
scenario file says only ``mo_reply_p95: 2s`` and ``--gate mo_reply_p95=3s`` loosens it.
The runner computes a figure per gate name; ``judge`` compares. A gate whose figure the
run could not measure (no broadcast, so no broadcast throughput) fails rather than
passing silently: a CI job must not go green on a scenario that measured nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from .units import format_duration, parse_duration, parse_rate


class Bound(StrEnum):
    MAX = "max"  # the figure must be at most the threshold
    MIN = "min"  # the figure must be at least the threshold


class Unit(StrEnum):
    SECONDS = "s"
    RATIO = "ratio"
    RATE = "msg/s"
    SESSIONS = "sessions/s"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class GateDef:
    name: str
    bound: Bound
    unit: Unit
    what: str

    def parse(self, value: object) -> float:
        """A threshold as written in YAML or on the command line."""
        if self.unit is Unit.SECONDS:
            return parse_duration(value)
        if self.unit is Unit.SESSIONS and isinstance(value, str):
            return parse_rate(value)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"gate {self.name}: expected a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"gate {self.name}: {value!r} is not a number") from None
        if number < 0:
            raise ValueError(f"gate {self.name}: can't be negative")
        if self.unit is Unit.RATIO and number > 1:
            raise ValueError(f"gate {self.name}: a ratio is between 0 and 1")
        return number

    def show(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        if self.unit is Unit.SECONDS:
            return format_duration(value)
        if self.unit is Unit.RATIO:
            return f"{value:.2%}" if value >= 0.0001 or value == 0 else f"{value:.2e}"
        if self.unit is Unit.RATE:
            return f"{value:,.0f} msg/s"
        if self.unit is Unit.SESSIONS:
            return f"{value:,.1f} sessions/s"
        return f"{value:,.0f}"


def _defs(*defs: GateDef) -> Mapping[str, GateDef]:
    return MappingProxyType({d.name: d for d in defs})


GATES: Mapping[str, GateDef] = _defs(
    GateDef(
        "mo_reply_p50",
        Bound.MAX,
        Unit.SECONDS,
        "median time from a subscriber's MO leaving the handset to the platform's reply"
        " reaching it",
    ),
    GateDef("mo_reply_p95", Bound.MAX, Unit.SECONDS, "95th percentile of MO -> reply latency"),
    GateDef("mo_reply_p99", Bound.MAX, Unit.SECONDS, "99th percentile of MO -> reply latency"),
    GateDef(
        "unanswered_ratio",
        Bound.MAX,
        Unit.RATIO,
        "MOs that expected a reply and got none within the reply timeout",
    ),
    GateDef(
        "broadcast_throughput",
        Bound.MIN,
        Unit.RATE,
        "submit_sm accepted per second while broadcasts were being sent",
    ),
    GateDef(
        "receipt_completion_ratio",
        Bound.MIN,
        Unit.RATIO,
        "receipts the platform received / messages the SMSC accepted with a receipt asked",
    ),
    GateDef(
        "receipt_completion_time",
        Bound.MAX,
        Unit.SECONDS,
        "from a broadcast's first submit to the last receipt reaching the platform",
    ),
    GateDef(
        "error_ratio",
        Bound.MAX,
        Unit.RATIO,
        "submit_sm answered with an error status other than throttling / all submit_sm",
    ),
    GateDef("throttle_ratio", Bound.MAX, Unit.RATIO, "submit_sm answered ESME_RTHROTTLED / all"),
    GateDef(
        "lost_messages",
        Bound.MAX,
        Unit.COUNT,
        "messages accepted by the SMSC or injected as MO that never reached the other side",
    ),
    GateDef(
        "ussd_completion_ratio",
        Bound.MIN,
        Unit.RATIO,
        "USSD sessions ended by the platform's last screen / all sessions that ended",
    ),
    GateDef(
        "ussd_screen_p95",
        Bound.MAX,
        Unit.SECONDS,
        "95th percentile of the platform's answer time per USSD screen",
    ),
    GateDef("ussd_sessions_per_s", Bound.MIN, Unit.SESSIONS, "USSD sessions dialled per second"),
    GateDef(
        "ussd_abandoned_ratio",
        Bound.MAX,
        Unit.RATIO,
        "USSD sessions the subscriber abandoned / sessions that ended",
    ),
    GateDef(
        "ussd_timeout_ratio",
        Bound.MAX,
        Unit.RATIO,
        "USSD sessions released by a network timer or a too-slow platform / ended",
    ),
)


def gate(name: str) -> GateDef:
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(f"unknown gate {name!r}; gates are: {', '.join(GATES)}") from None


def parse_gate_override(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` from ``--gate``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--gate {text!r}: expected NAME=VALUE, e.g. mo_reply_p95=2s")
    d = gate(name.strip())
    return d.name, d.parse(value.strip())


@dataclass(frozen=True, slots=True)
class Verdict:
    gate: GateDef
    threshold: float
    figure: float | None

    @property
    def passed(self) -> bool:
        if self.figure is None:
            return False
        if self.gate.bound is Bound.MAX:
            return self.figure <= self.threshold
        return self.figure >= self.threshold

    def line(self) -> str:
        op = "<=" if self.gate.bound is Bound.MAX else ">="
        word = "pass" if self.passed else "FAIL"
        return (
            f"{word} {self.gate.name}: {self.gate.show(self.figure)} "
            f"(gate {op} {self.gate.show(self.threshold)})"
        )


def judge(thresholds: Mapping[str, float], figures: Mapping[str, float | None]) -> list[Verdict]:
    """One verdict per gate set, in the order they were set."""
    return [Verdict(gate(n), t, figures.get(n)) for n, t in thresholds.items()]
