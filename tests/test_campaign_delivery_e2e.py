"""The campaign manager's delivery requests end to end: ``smsim run`` (one process and
partitioned) with the reference platform and real Locust (in its own process, as the
runner starts it). A broadcast to 60 numbers is followed until every number's receipt
reached the platform; with a number range whose submits are refused, or receipts held
past the scenario's deadline, Locust gets failures saying how many are missing."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from simulator.harness.ranges import NumberRanges
from simulator.scenario.distributed import ClusterOptions, run_cluster
from simulator.scenario.loader import parse_scenario
from simulator.scenario.participants import action_blocks
from simulator.scenario.runner import EXIT_ERROR, EXIT_FAILED, EXIT_PASSED, RunOptions, run
from simulator.subscribers.population import Population

pytestmark = pytest.mark.timeout(180)

SCENARIO = """\
name: {name}
population:
  size: 20000
  seed: 5
  ported_share: 0.0
  opted_out_share: 0.0
  availability_mix: {{always: 1.0, night_off: 0.0, often_off: 0.0, dead: 0.0}}
platform: {{tps: 0}}
time: {{scale: 60, duration: 6s, drain: 5s}}
actions:
  - at: 1s
    broadcast: {{recipients: 60, text: "1442: hello"}}
load: {{users: 1}}
{extra}
"""
#: Every WE number's submit refused: those numbers get neither an MT nor a receipt.
NO_WE = """\
chaos:
  - {fault: submit_error, at: 0s, numbers: ["2015"], status: ESME_RINVDSTADR}
"""
LABEL = "actions[0] broadcast to 60"
MT, RECEIPT = f"{LABEL}: time to last MT", f"{LABEL}: time to last receipt"


def scenario(tmp_path: Path, name: str, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, extra=extra), encoding="utf-8")
    return path


def delivery_rows(out: Path) -> dict[str, dict[str, str]]:
    """Locust's stats CSV rows of type DELIVERY, by name."""
    with (out / "locust_stats.csv").open(encoding="utf-8") as f:
        return {r["Name"]: r for r in csv.DictReader(f) if r["Type"] == "DELIVERY"}


def summary_delivery(out: Path) -> dict[str, Any]:
    (one,) = json.loads((out / "summary.json").read_text())["counters"]["delivery"]
    assert isinstance(one, dict)
    return one


def numbers(path: Path) -> list[str]:
    """The broadcast's numbers, from the scenario as every process computes them."""
    sc = parse_scenario(path.read_text(encoding="utf-8"))
    population = Population(sc.population)
    (block,) = action_blocks(sc)
    return [population.msisdn(i) for i in block.indices()]


def we_numbers(path: Path) -> int:
    """How many of the broadcast's numbers are WE's (prefix 015)."""
    return sum(n.startswith("2015") for n in numbers(path))


def test_a_broadcast_is_followed_to_its_last_receipt(tmp_path: Path) -> None:
    path = scenario(tmp_path, "delivery-all")
    out = tmp_path / "run"
    console = Console(record=True, width=140)
    rc = run(RunOptions(scenario=str(path), out=out, live=False, control_port=0), console)
    log = (out / "locust.log").read_text()
    assert rc == EXIT_PASSED, console.export_text() + log
    rows = delivery_rows(out)
    assert set(rows) == {MT, RECEIPT}, log
    for row in rows.values():
        assert (row["Request Count"], row["Failure Count"]) == ("1", "0"), log
        assert float(row["Average Content Size"]) == 60  # numbers that got there
    mt, receipt = (float(rows[n]["Average Response Time"]) for n in (MT, RECEIPT))
    # A receipt comes after its MT, which comes after the API call.
    assert 0 < mt <= receipt
    d = summary_delivery(out)
    assert (d["numbers"], d["reached"], d["receipted"], d["complete"]) == (60, 60, 60, True)
    assert d["receipts"] >= 60 and 0 < d["last_mt_after"] <= d["last_receipt_after"]
    assert "DELIVERY" in log and "ReceiptsMissing" not in log


def test_numbers_that_get_no_mt_are_named_missing(tmp_path: Path) -> None:
    path = scenario(tmp_path, "delivery-gap", NO_WE)
    missing = we_numbers(path)
    assert 0 < missing < 60
    out = tmp_path / "run"
    console = Console(record=True, width=140)
    rc = run(RunOptions(scenario=str(path), out=out, live=False, control_port=0), console)
    log = (out / "locust.log").read_text()
    assert rc != EXIT_ERROR, console.export_text() + log
    assert f"ReceiptsMissing('{missing} of 60 numbers got no MT after" in log
    assert f"ReceiptsMissing('{missing} of 60 numbers without a receipt after" in log
    rows = delivery_rows(out)
    for name in (MT, RECEIPT):
        assert rows[name]["Failure Count"] == "1", log
        assert float(rows[name]["Average Content Size"]) == 60 - missing
    d = summary_delivery(out)
    assert (d["reached"], d["receipted"], d["complete"]) == (60 - missing, 60 - missing, False)


def test_receipts_later_than_the_scenarios_deadline_fail_at_the_deadline(
    tmp_path: Path,
) -> None:
    """``--gate receipt_completion_time=1s``, every receipt held 2 s: Locust's failure
    comes at the deadline (the load runs on for seconds after it), the receipts later."""
    extra = "chaos:\n  - {fault: receipt_delay, at: 0s, delay: 2s}\n"
    path = scenario(tmp_path, "delivery-late", extra)
    out = tmp_path / "run"
    console = Console(record=True, width=140)
    gate = ["receipt_completion_time=1s"]
    rc = run(
        RunOptions(scenario=str(path), out=out, live=False, control_port=0, gates=gate), console
    )
    log = (out / "locust.log").read_text()
    assert rc == EXIT_FAILED, console.export_text() + log
    found = re.search(r"ReceiptsMissing\('60 of 60 numbers without a receipt after ([0-9.]+)s", log)
    assert found is not None, log
    assert float(found.group(1)) >= 1.0
    rows = delivery_rows(out)
    assert rows[MT]["Failure Count"] == "0" and rows[RECEIPT]["Failure Count"] == "1", log
    d = summary_delivery(out)
    assert d["complete"] is True and d["last_receipt_after"] >= 2.0


@pytest.mark.timeout(240)
def test_a_partitioned_run_adds_up_every_parts_receipts(tmp_path: Path) -> None:
    """Two parts, each owning half the numbers: the manager (in one Locust worker) sums
    both parts' progress; the missing WE numbers are those of both parts."""
    path = scenario(tmp_path, "delivery-parts", NO_WE)
    missing = we_numbers(path)
    ranges = NumberRanges(2)
    assert {ranges.owner(int(n)) for n in numbers(path) if not n.startswith("2015")} == {0, 1}
    out = tmp_path / "run"
    console = Console(record=True, width=140)
    rc = run_cluster(
        ClusterOptions(scenario=str(path), out=out, live=False, processes=2, partition=True),
        console,
    )
    log = (out / "locust.log").read_text()
    assert rc != EXIT_ERROR, console.export_text() + log + (out / "worker.log").read_text()
    assert f"ReceiptsMissing('{missing} of 60 numbers without a receipt after" in log
    rows = delivery_rows(out)
    assert float(rows[RECEIPT]["Average Content Size"]) == 60 - missing, log
    d = summary_delivery(out)
    assert (d["reached"], d["receipted"], d["complete"]) == (60 - missing, 60 - missing, False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counters"]["parts"] == 2
