"""What a run leaves: from what it measured to the verdict, the run folder and the exit
code, the same for a one-process run (``runner.py``) and a partitioned one
(``distributed.py``).

The run folder gets ``summary.json`` (figures, gates, counters, the MO→reply
histogram), ``junit.xml``, ``timeseries.json`` and ``report.html`` (rendered from those
files, as ``smsim report`` does); the console gets the verdict table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.harness.replies import ReplyStats
from simulator.smsc.stats import LatencyHistogram as BucketHistogram
from simulator.ussd.figures import UssdSnapshot

from .figures import Sample, figures, ussd_gate_figures
from .gates import judge
from .html_report import write as write_html_report
from .report import compare, verdict_table, write_junit, write_summary
from .spec import Scenario
from .timeseries import FILE as TIMESERIES_FILE
from .timeseries import TimeSeries

#: Exit codes: gates passed, a gate failed, the run could not be made.
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Ussd:
    """The USSD networks' counters when the load started, when it ended and after the
    drain, and every screen's latency: what the ussd_* gates are judged on."""

    start: UssdSnapshot
    load_end: UssdSnapshot
    end: UssdSnapshot
    screens: BucketHistogram


@dataclass(frozen=True, slots=True)
class Measured:
    """Everything a run observed, from one SMSC or summed over the parts."""

    samples: list[Sample]
    replies: ReplyStats
    #: MO still waiting for a reply after the drain (unanswered).
    pending_replies: int
    counters: dict[str, Any]
    series: TimeSeries
    locust_exit: int | None
    ussd: Ussd | None = None


def run_folder(out: Path | None, scenario: str) -> Path:
    """``out``, or ``runs/SCENARIO-STAMP``; made, absolute."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = out or Path("runs") / f"{scenario}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def conclude(
    out: Path,
    sc: Scenario,
    thresholds: dict[str, float],
    measured: Measured,
    console: Console,
    *,
    baseline: Path | None = None,
    tolerance: float = 0.10,
) -> int:
    """Judge the gates (and the baseline), write the run folder, print the verdict;
    the run's exit code."""
    figs = figures(
        measured.samples,
        measured.replies,
        pending_replies=measured.pending_replies,
        broadcasts=any(a.broadcast for a in sc.actions),
    )
    counters = dict(measured.counters)
    if (u := measured.ussd) is not None:
        figs.update(ussd_gate_figures(u.start, u.load_end, u.end, u.screens))
        counters.update(
            {
                "ussd_sessions_dialled": u.end.dialled,
                "ussd_steps": u.end.steps,
                "ussd_open_at_end": u.end.open,
                **{f"ussd_released_{k}": v for k, v in u.end.released.items()},
            }
        )
    verdicts = judge(thresholds, figs)
    regressions = []
    if baseline is not None:
        regressions = compare(figs, json.loads(baseline.read_text(encoding="utf-8")), tolerance)
    write_summary(
        out / "summary.json",
        scenario=sc.name,
        figures=figs,
        verdicts=verdicts,
        regressions=regressions,
        counters=counters,
        histogram=measured.replies.combined().to_json(),
    )
    write_junit(out / "junit.xml", sc.name, verdicts, regressions)
    measured.series.write(out / TIMESERIES_FILE)
    write_html_report(out)
    console.print(verdict_table(sc.name, verdicts, regressions))
    console.print(f"Run folder: {out} (report.html, summary.json, junit.xml, locust.html)")
    passed = all(v.passed for v in verdicts) and all(r.passed for r in regressions)
    if measured.locust_exit not in (0, 1):
        console.print(f"[red]Locust exited with {measured.locust_exit}: see {out}/locust.log")
        return EXIT_ERROR
    return EXIT_PASSED if passed else EXIT_FAILED
