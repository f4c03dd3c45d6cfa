"""A run's verdict on disk and on screen: summary JSON, JUnit XML of the gates, a table.

CI reads the exit code and the JUnit file (one test case per gate, a failure per gate
that failed); people read the table; the JSON is what a later run's ``--baseline``
compares with.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from .gates import GATES, Bound, GateDef, Verdict


@dataclass(frozen=True, slots=True)
class Regression:
    """A figure worse than the baseline's by more than the tolerance."""

    gate: GateDef
    baseline: float
    figure: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        if self.figure is None:
            return False
        if self.gate.bound is Bound.MAX:
            return self.figure <= self.baseline * (1 + self.tolerance)
        return self.figure >= self.baseline * (1 - self.tolerance)

    def line(self) -> str:
        word = "pass" if self.passed else "FAIL"
        return (
            f"{word} regression {self.gate.name}: {self.gate.show(self.figure)} vs baseline "
            f"{self.gate.show(self.baseline)} (tolerance {self.tolerance:.0%})"
        )


def compare(
    figures: Mapping[str, float | None], baseline: Mapping[str, Any], tolerance: float
) -> list[Regression]:
    """A regression check for every gate figure the baseline has a number for."""
    base = baseline.get("figures", {})
    return [
        Regression(GATES[name], float(value), figures.get(name), tolerance)
        for name, value in base.items()
        if name in GATES and isinstance(value, int | float)
    ]


def write_summary(
    path: Path,
    *,
    scenario: str,
    figures: Mapping[str, float | None],
    verdicts: Sequence[Verdict],
    regressions: Sequence[Regression],
    counters: Mapping[str, Any],
    histogram: Mapping[str, Any],
) -> None:
    data = {
        "scenario": scenario,
        "passed": all(v.passed for v in verdicts) and all(r.passed for r in regressions),
        "figures": dict(figures),
        "gates": [
            {
                "name": v.gate.name,
                "bound": v.gate.bound.value,
                "threshold": v.threshold,
                "figure": v.figure,
                "passed": v.passed,
            }
            for v in verdicts
        ],
        "regressions": [
            {"name": r.gate.name, "baseline": r.baseline, "figure": r.figure, "passed": r.passed}
            for r in regressions
        ],
        "counters": dict(counters),
        "mo_reply_histogram": dict(histogram),
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def write_junit(
    path: Path, scenario: str, verdicts: Sequence[Verdict], regressions: Sequence[Regression]
) -> None:
    cases: list[tuple[str, str, bool]] = [(v.gate.name, v.line(), v.passed) for v in verdicts]
    cases += [(f"regression.{r.gate.name}", r.line(), r.passed) for r in regressions]
    suite = ET.Element(
        "testsuite",
        name=f"smsim.{scenario}",
        tests=str(len(cases)),
        failures=str(sum(1 for *_, ok in cases if not ok)),
        errors="0",
    )
    for name, line, ok in cases:
        case = ET.SubElement(suite, "testcase", classname=f"smsim.{scenario}", name=name)
        if not ok:
            ET.SubElement(case, "failure", message=line).text = line
        else:
            ET.SubElement(case, "system-out").text = line
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def verdict_table(
    scenario: str, verdicts: Sequence[Verdict], regressions: Sequence[Regression]
) -> Table:
    table = Table(title=f"smsim run {scenario}: gates")
    table.add_column("gate")
    table.add_column("figure", justify="right")
    table.add_column("gate", justify="right")
    table.add_column("verdict")
    for v in verdicts:
        op = "<=" if v.gate.bound is Bound.MAX else ">="
        table.add_row(
            v.gate.name,
            v.gate.show(v.figure),
            f"{op} {v.gate.show(v.threshold)}",
            "[green]pass[/]" if v.passed else "[bold red]FAIL[/]",
        )
    for r in regressions:
        table.add_row(
            f"regression {r.gate.name}",
            r.gate.show(r.figure),
            f"baseline {r.gate.show(r.baseline)} ±{r.tolerance:.0%}",
            "[green]pass[/]" if r.passed else "[bold red]FAIL[/]",
        )
    return table
