"""The run report: charts as inline SVG, the gates table, ``smsim report RUN_DIR``.

Unit tests render a synthetic run folder (written through the runner's own writers: the
summary of real verdicts, a time series recorded from SMSC counters and histograms) and
read the SVG back; one real short run checks the runner writes the report and that
``smsim report`` writes the same page again from the folder's files; headless Chromium
renders the page and its screenshot must show the charts' colours.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from simulator.cli import main
from simulator.harness.histogram import LatencyHistogram
from simulator.scenario import html_report
from simulator.scenario.figures import Sample
from simulator.scenario.gates import GATES, Verdict
from simulator.scenario.report import write_summary
from simulator.scenario.runner import EXIT_PASSED, RunOptions, run
from simulator.scenario.svg_charts import Frame, Rule, Series, line_chart, stacked_bars
from simulator.scenario.timeseries import Recorder, TimeSeries, interval
from simulator.smsc.stats import SmscStats
from tests.test_scenario_run import write_scenario

SVG = "{http://www.w3.org/2000/svg}"


def svgs(page: str) -> list[ET.Element]:
    """Every inline <svg> of a page, parsed (our SVG is well-formed XML)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def points(el: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in el.get("points", "").split())]


class Tables(HTMLParser):
    """Rows of each <table id=...>: (the row's class, its cells' text)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[str, list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append((a.get("class") or "", []))
        elif tag == "td" and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.rows[self._table][-1][1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._table is not None and not self.rows[self._table][-1][1]:
            self.rows[self._table].pop()  # a header row
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# --- the charts -----------------------------------------------------------------------------


def test_a_line_chart_draws_each_series_point_where_the_frame_puts_it() -> None:
    data = [(0.0, 0.0), (10.0, 50.0), (20.0, 100.0)]
    svg = line_chart(
        [Series("accepted", "#2563eb", data)],
        x_max=20,
        y_format=str,
        label="t",
        rules=[Rule(80, "gate ≤ 80")],
        width=800,
        height=300,
    )
    root = ET.fromstring(svg)
    (line,) = root.iter(f"{SVG}polyline")
    assert line.get("data-series") == "accepted" and line.get("stroke") == "#2563eb"
    frame = Frame(800, 300, 20, 125)  # the round top above 100 and 5 % headroom
    assert points(line) == [(round(frame.x(x), 1), round(frame.y(v), 1)) for x, v in data]
    # First point on the bottom-left corner of the plot, last at its right edge.
    assert points(line)[0] == (frame.x(0), frame.bottom) and points(line)[-1][0] == frame.right
    grid = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert grid[:6] == ["0.0", "25.0", "50.0", "75.0", "100.0", "125.0"]
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "gate ≤ 80" in labels and "accepted" in labels and "0:20" in labels
    (rule,) = (e for e in root.iter(f"{SVG}line") if e.get("class") == "rule")
    assert float(rule.get("y1", "")) == round(frame.y(80), 1)


def test_a_rule_above_the_data_is_named_not_drawn() -> None:
    """A 5 s gate over replies of a few ms must not flatten them to the axis."""
    root = ET.fromstring(
        line_chart(
            [Series("p95", "red", [(0.0, 0.01), (1.0, 0.02)])],
            x_max=1,
            y_format=str,
            label="t",
            rules=[Rule(5.0, "gate p95 ≤ 5.0s"), Rule(0.015, "low")],
        )
    )
    assert [e.get("y1") for e in root.iter(f"{SVG}line") if e.get("class") == "rule"] == [
        str(round(Frame(880, 280, 1, 0.025).y(0.015), 1))
    ]
    assert "above the scale: gate p95 ≤ 5.0s" in [t.text for t in root.iter(f"{SVG}text")]


def test_gaps_split_a_line_and_a_lone_point_is_a_dot() -> None:
    data = [(0.0, 1.0), (1.0, 2.0), (2.0, None), (3.0, 3.0), (4.0, None), (5.0, 1.0), (6.0, 2.0)]
    root = ET.fromstring(line_chart([Series("p95", "red", data)], x_max=6, y_format=str, label="t"))
    assert [len(points(p)) for p in root.iter(f"{SVG}polyline")] == [2, 2]
    (dot,) = root.iter(f"{SVG}circle")
    frame = Frame(880, 280, 6, 4)  # top: the round number above 3 and 5 %
    assert (float(dot.get("cx", "")), float(dot.get("cy", ""))) == (
        round(frame.x(3), 1),
        round(frame.y(3), 1),
    )


def test_stacked_bars_split_each_row_by_share_and_keep_the_counts_in_tooltips() -> None:
    svg = stacked_bars(
        [("vodafone", {"DELIVRD": 900, "EXPIRED": 100}), ("we", {"UNDELIV": 5})],
        {"DELIVRD": "green", "EXPIRED": "orange", "UNDELIV": "red"},
        label="t",
    )
    rects = [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("data-key")]
    widths = {
        (r.get("data-key"), r.findtext(f"{SVG}title")): float(r.get("width", "")) for r in rects
    }
    delivered = widths[("DELIVRD", "vodafone DELIVRD: 900 (90.0%)")]
    expired = widths[("EXPIRED", "vodafone EXPIRED: 100 (10.0%)")]
    assert delivered == pytest.approx(9 * expired, abs=0.2)
    assert widths[("UNDELIV", "we UNDELIV: 5 (100.0%)")] == pytest.approx(
        delivered + expired, abs=0.2
    )


# --- what the runner records ----------------------------------------------------------------


def hist(*seconds: float) -> LatencyHistogram:
    h = LatencyHistogram()
    for s in seconds:
        h.add(s)
    return h


def test_each_tick_has_the_percentiles_of_the_replies_that_arrived_in_it() -> None:
    before = hist(*[0.1] * 100)
    now = hist(*[0.1] * 100, *[2.0] * 10)
    tick = interval(before, now)
    assert tick.count == 10 and tick.p50 == pytest.approx(2.0, rel=0.01)
    assert interval(now, now).count == 0 and interval(now, now).p99 is None


def sample(t: float, **counts: int) -> Sample:
    fields = dict.fromkeys(Sample.__dataclass_fields__, 0)
    return Sample(**{**fields, "t": t, **counts})  # type: ignore[arg-type]


def stats(accepted: int, **by_stat: int) -> SmscStats:
    s = SmscStats(accepted=accepted)
    s.receipts_by_stat.update(by_stat)
    return s


def synthetic_series() -> TimeSeries:
    """Ten seconds of a run at 100 accepted/s, receipts catching up, replies slowing down
    after t=5; the load ends at t=8."""
    rec = Recorder("2026-12-01T22:00:00+00:00")
    replies = LatencyHistogram()
    for t in range(11):
        if t:
            for _ in range(20):
                replies.add(0.2 if t <= 5 else 1.5)
        ops = {"vodafone": stats(60 * t), "orange": stats(40 * t)}
        done = min(100 * t, 80 * t)
        rec.record(
            sample(
                float(t),
                submits=100 * t,
                accepted=100 * t,
                wants_receipt=100 * t,
                receipts_due=done,
                receipts_delivered=done,
                mo_queued=20 * t,
                mo_delivered=20 * t,
            ),
            replies,
            ops,
        )
    final = {
        "vodafone": stats(600, DELIVRD=450, EXPIRED=30),
        "orange": stats(400, DELIVRD=300, UNDELIV=20),
    }
    return rec.finish(8.0, final)


def synthetic_run(folder: Path, *, failing: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ts = synthetic_series()
    ts.write(folder / "timeseries.json")
    figs = {"mo_reply_p95": 1.5, "receipt_completion_ratio": 0.8, "lost_messages": 0.0}
    verdicts = [
        Verdict(GATES["mo_reply_p95"], 3.0, 1.5),
        Verdict(GATES["receipt_completion_ratio"], 0.99 if failing else 0.5, 0.8),
        Verdict(GATES["lost_messages"], 0, 0.0),
    ]
    write_summary(
        folder / "summary.json",
        scenario="synthetic",
        figures=figs,
        verdicts=verdicts,
        regressions=[],
        counters={
            "accepted": 1000,
            "receipts_delivered": 800,
            "mo_from_locust": 200,
            "delivery": [
                {
                    **{"action": 0, "numbers": 400, "reached": 400, "receipted": 380},
                    **{"mts": 400, "receipts": 380},
                    **{"last_mt_after": 1.25, "last_receipt_after": None},
                }
            ],
        },
        histogram=hist(0.2, 1.5).to_json(),
    )
    return folder


def test_the_time_series_file_reads_back_as_written(tmp_path: Path) -> None:
    ts = synthetic_series()
    ts.write(tmp_path / "ts.json")
    assert TimeSeries.read(tmp_path / "ts.json") == ts
    assert ts.ticks[6].latency.p95 == pytest.approx(1.5, rel=0.01)
    assert ts.ticks[3].operators["orange"].accepted == 120


# --- the page -------------------------------------------------------------------------------


def test_the_report_shows_gates_figures_and_one_chart_per_view(tmp_path: Path) -> None:
    page = html_report.render(synthetic_run(tmp_path / "run"))
    rows = Tables(page).rows["gates"]
    assert [(cls, cells[0], cells[-1]) for cls, cells in rows] == [
        ("passed", "mo_reply_p95 " + GATES["mo_reply_p95"].what, "pass"),
        ("failed", "receipt_completion_ratio " + GATES["receipt_completion_ratio"].what, "FAIL"),
        ("passed", "lost_messages " + GATES["lost_messages"].what, "pass"),
    ]
    assert rows[1][1][1:3] == ["≥ 99.00%", "80.00%"]  # threshold, measured
    assert (
        "FAILED" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    charts = {c.get("aria-label"): c for c in svgs(page)}
    assert list(charts) == [
        "Throughput",
        "MO → reply latency",
        "Receipt completion",
        "Submits accepted by operator",
        "Outcome mix by operator",
    ]
    series = {
        p.get("data-series"): points(p) for c in charts.values() for p in c.iter(f"{SVG}polyline")
    }
    # Throughput: one point per tick after the first, all at 100 accepted/s (a flat line).
    assert len(series["submits accepted"]) == 10
    assert len({y for _, y in series["submits accepted"]}) == 1
    # Latency: from t=1 (no reply at t=0), p95 steps up after t=5 (up: a smaller y).
    p95 = series["p95"]
    assert len(p95) == 10 and p95[4][1] > p95[5][1]
    assert len({y for _, y in p95[:5]}) == 1 and len({y for _, y in p95[5:]}) == 1
    # Completion: 80 % all along; the gate's 99 % is a dashed rule above it.
    rule = next(
        e for e in charts["Receipt completion"].iter(f"{SVG}line") if e.get("class") == "rule"
    )
    assert float(rule.get("y1", "")) < series["completion"][-1][1]
    # The drain is shaded from t=8 to the end, in every chart over time.
    assert all(c.find(f"{SVG}rect[@class='band']") is not None for c in list(charts.values())[:4])
    receipts = Tables(page).rows["receipts"]
    assert [cells for _, cells in receipts] == [
        ["vodafone", "450", "30", "0", "480"],
        ["orange", "300", "0", "20", "320"],
    ]
    # Each followed action's delivery is a table of its own, not a raw list of dicts.
    assert [cells for _, cells in Tables(page).rows["delivery"]] == [
        ["actions[0]", "400", "400 (100.0%)", "380 (95.0%)", "1.25 s", "—"],
    ]
    assert "delivery" not in [cells[0] for _, cells in Tables(page).rows["counters"]]


def test_a_long_run_is_drawn_with_at_most_600_points_keeping_the_worst_second() -> None:
    """Two hours at one tick a second: rates over each window, latency's worst second."""
    rec = Recorder("2026-12-01T00:00:00+00:00")
    replies = LatencyHistogram()
    for t in range(7201):
        replies.add(9.0 if t == 3000 else 0.1)
        rec.record(sample(float(t), accepted=50 * t), replies, {})
    charts = {c.title: ET.fromstring(c.svg) for c in html_report.charts(rec.finish(7200, {}), {})}
    lines = {
        p.get("data-series"): points(p) for c in charts.values() for p in c.iter(f"{SVG}polyline")
    }
    assert 500 <= len(lines["submits accepted"]) <= 600
    assert len({y for _, y in lines["submits accepted"]}) == 1  # 50/s in every window
    # The one slow reply is not averaged away: p99's highest point is 9 s on a 10 s axis.
    frame = Frame(880, 280, 7200, 10)
    assert min(y for _, y in lines["p99"]) == pytest.approx(frame.y(9.0), abs=0.2)


def test_a_run_folder_without_a_time_series_still_gets_its_gates(tmp_path: Path) -> None:
    folder = synthetic_run(tmp_path / "run", failing=False)
    (folder / "timeseries.json").unlink()
    page = html_report.render(folder)
    assert "PASSED" in page and svgs(page) == []
    assert "charts are left out" in page
    assert [cells[-1] for _, cells in Tables(page).rows["gates"]] == ["pass"] * 3


def test_smsim_report_exits_2_with_one_line_when_the_folder_is_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"smsim report: {tmp_path / 'nope'}: no such run folder\n"
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no summary.json" in err
    for broken in ("{", '{"gates": [{"name": "mo_reply_p95"}]}'):
        (tmp_path / "summary.json").write_text(broken, encoding="utf-8")
        assert main(["report", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"smsim report: {tmp_path / 'summary.json'}: ") and err.count("\n") == 1
        )


# --- a real run -----------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_real_run_writes_its_report_and_smsim_report_writes_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    console = Console(record=True, width=120)
    rc = run(
        RunOptions(
            scenario=str(write_scenario(tmp_path)), out=out, duration=4, live=False, control_port=0
        ),
        console,
    )
    assert rc == EXIT_PASSED, console.export_text()
    first = (out / "report.html").read_text(encoding="utf-8")
    ts = TimeSeries.read(out / "timeseries.json")
    assert ts.load_ended_at is not None and len(ts.ticks) >= 4
    assert sum(t.latency.count for t in ts.ticks) > 0
    labels = [c.get("aria-label") for c in svgs(first)]
    assert labels[:2] == ["Throughput", "MO → reply latency"]
    assert [cells[-1] for _, cells in Tables(first).rows["gates"]] == ["pass"] * 4

    (out / "report.html").unlink()
    capsys.readouterr()  # the run's own console output
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    assert (out / "report.html").read_text(encoding="utf-8") == first


# --- in a browser ---------------------------------------------------------------------------


def chromium(candidates: tuple[str, ...] = ("chromium", "/usr/bin/chromium")) -> str:
    """Chromium's path; skip when it is not installed, fail when env CI is "true"."""
    found = next(filter(None, map(shutil.which, candidates)), None)
    if found:
        return found
    reason = "Chromium is not installed; install Debian's chromium package to run this test"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}. CI=true, where the browser test is required.", pytrace=False)
    pytest.skip(reason)


def test_no_chromium_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = ("/nonexistent/chromium",)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        chromium(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        chromium(missing)


def headless(binary: str, profile: Path, *args: str) -> str:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_pixels(data: bytes) -> tuple[int, list[bytes]]:
    """Width and RGB(A) pixels of an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (size,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    raw, stride, prev = zlib.decompress(idat), width * channels, bytearray(width * channels)
    pixels: list[bytes] = []
    for row in range(height):
        kind, line = (
            raw[row * (stride + 1)],
            bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels += [bytes(line[i : i + 3]) for i in range(0, stride, channels)]
        prev = line
    return width, pixels


@pytest.mark.timeout(300)
def test_headless_chromium_renders_the_charts(tmp_path: Path) -> None:
    binary = chromium()
    folder = synthetic_run(tmp_path / "run")
    page = html_report.write(folder).resolve()
    dom = headless(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    # The browser parsed five SVG charts, their lines and the gates table.
    assert dom.count("<svg") == 5 and 'data-series="p95"' in dom and "<polyline" in dom
    assert re.search(r'<tr class="failed">\s*<td><code>receipt_completion_ratio', dom)
    shot = tmp_path / "report.png"
    headless(
        binary,
        tmp_path / "profile",
        "--window-size=1100,2600",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    _, pixels = png_pixels(shot.read_bytes())
    colours = Counter(pixels)
    # Painted, not blank: the series' colours are on screen (blue accepted, green receipts
    # and completion, the red failed verdict and p99), among many others.
    for hex_colour in ("2563eb", "16a34a", "dc2626"):
        assert colours[bytes.fromhex(hex_colour)] > 50, hex_colour
    assert len(colours) > 100
