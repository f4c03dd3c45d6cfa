"""``smsim inject / subscriber / binds / top`` against a running SMSC (in a thread), and
``smsim smsc``'s control settings; the dashboard is rendered with Console(record=True)."""

from __future__ import annotations

import argparse
import json
import time

import pytest
import smpplib.client  # type: ignore[import-untyped]
from rich.console import Console

from simulator.cli import build_parser, main
from simulator.config import ControlConfig, OperatorConfig, PopulationConfig, SmscConfig
from simulator.smsc.control_cli import ControlClient, snapshot, with_control
from simulator.smsc.control_top import render
from simulator.smsc.server import SmscThread
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(30)


def thread(population: bool = False) -> SmscThread:
    return SmscThread(
        SmscConfig(
            operators=[OperatorConfig(name="vodafone", port=0)],
            population=PopulationConfig(enabled=population, size=10_000),
            control=ControlConfig(enabled=True, port=0),
        )
    )


def url(smsc: SmscThread) -> str:
    assert smsc.server is not None and smsc.server.control is not None
    return smsc.server.control.url


def wait(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def bind(port: int) -> smpplib.client.Client:
    client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
    client.connect()
    client.bind_transceiver(system_id="rapidpro", password="secret")
    return client


def test_inject_single_and_batch(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with thread() as smsc:
        assert smsc.server is not None
        op = smsc.server.operator()
        assert main(["inject", "201001234567", "نعم", "--control", url(smsc)]) == 0
        assert "queued via vodafone/rapidpro (1 parts)" in capsys.readouterr().out
        batch = tmp_path / "mo.txt"
        batch.write_text('201001234568,answer two\n{"source": "201001234569", "text": "3"}\n')
        assert main(["inject", "--batch", str(batch), "--control", url(smsc)]) == 0
        assert "queued 2 MO (2 parts)" in capsys.readouterr().out
        queued = smsc.call(lambda: [p.source_addr for p in op.accounts["rapidpro"].outbox])
        assert queued == ["201001234567", "201001234568", "201001234569"]
        assert main(["inject", "not-a-number", "x", "--control", url(smsc)]) == 1
        assert "400" in capsys.readouterr().err


def test_binds_and_top_show_a_live_bind(capsys) -> None:  # type: ignore[no-untyped-def]
    with thread() as smsc:
        client = bind(smsc.port)
        try:
            assert main(["binds", "--json", "--control", url(smsc)]) == 0
            binds = json.loads(capsys.readouterr().out)
            assert [(b["operator"], b["mode"]) for b in binds] == [("vodafone", "bound_trx")]
            ctl = ControlClient(url(smsc))
            before = snapshot(ctl)
            for i in range(20):
                client.send_message(
                    source_addr="1442",
                    destination_addr=f"2010000000{i:02d}",
                    short_message=b"hello",
                    registered_delivery=1,
                )
            wait(lambda: smsc.call(lambda: smsc.server.stats().accepted) == 20)  # type: ignore[union-attr]
            time.sleep(0.05)
            now = snapshot(ctl)
        finally:
            client.unbind()
            client.disconnect()
    console = Console(record=True, width=200)
    console.print(render(now, before, "test"))
    out = console.export_text()
    assert "smsim top" in out
    assert "accepted 20" in out
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith("vodafone"))
    rate = 20 / (now.at - before.at)
    assert f"{rate:,.0f}" in row  # accepted/s from the two snapshots
    assert "trx" in out and peer_of(binds[0]) in out
    assert "DELIVRD" in out or now.stats["totals"]["receipts_due"] == 0


def peer_of(b: dict[str, object]) -> str:
    return str(b["peer"])


def test_top_marks_a_full_window_and_paused_receipts() -> None:
    from simulator.smsc.control_top import Snapshot

    op = {
        "counters": {
            "submits": 10,
            "accepted": 10,
            "throttled": 0,
            "receipts_delivered": 0,
            "mo_delivered": 0,
            "receipts_by_stat": {"DELIVRD": 7, "EXPIRED": 3},
        },
        "delivery_rtt": {"count": 0, "sum": 0.0, "p50": None, "p99": None},
        "receipts_paused": True,
        "accounts": {"rapidpro": {"tps": 0, "binds": 1, "receivers": 1, "queued": 4, "held": 6}},
    }
    stats = {
        "uptime": 12.0,
        "scheduled": 3,
        "totals": {"accepted": 10, "receipts_delivered": 0, "mo_delivered": 0, "throttled": 0},
        "operators": {"orange": op},
        "platform_reply": None,
        "subscribers": None,
    }
    binds = [
        {
            "operator": "orange",
            "account": "rapidpro",
            "peer": "127.0.0.1:5555",
            "mode": "bound_rx",
            "outbind": True,
            "writable": True,
            "deliver_window": {"size": 10, "in_flight": 10},
            "submit_window": {"size": 100, "in_flight": 0},
        }
    ]
    console = Console(record=True, width=200)
    console.print(render(Snapshot(stats, binds, 1.0), None))
    out = console.export_text()
    assert "receipts paused" in out
    assert "10/10" in out and "0/100" in out
    assert "rx (outbind)" in out
    assert "DELIVRD 7  EXPIRED 3" in out
    # Only one snapshot: no rates yet, shown as '-'.
    row = next(line for line in out.splitlines() if "orange" in line and "paused" in line)
    assert " - " in row


def test_subscriber_command(capsys) -> None:  # type: ignore[no-untyped-def]
    with thread(population=True) as smsc:
        assert smsc.server is not None and smsc.server.subscribers is not None
        number = smsc.server.subscribers.population.msisdn(3)
        assert main(["subscriber", number, "--json", "--control", url(smsc)]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["number"] == number
        assert got["profile"]["msisdn"] == number
        assert main(["subscriber", number, "--control", url(smsc)]) == 0
        assert got["name"] in capsys.readouterr().out


def test_unreachable_control_api(capsys) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    assert main(["binds", "--control", f"http://127.0.0.1:{port}"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def smsc_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["smsc", *argv])


def test_smsc_turns_the_control_api_on_by_default() -> None:
    base = SmscConfig()
    assert not base.control.enabled
    on = with_control(base, smsc_args())
    assert on.control.enabled and on.control.port == 8775
    assert with_control(base, smsc_args("--control-port", "9001")).control.port == 9001
    assert not with_control(base, smsc_args("--control-port", "0")).control.enabled
    assert not with_control(base, smsc_args("--processes", "2")).control.enabled
    off_in_file = SmscConfig(control=ControlConfig(enabled=False))
    assert not with_control(off_in_file, smsc_args()).control.enabled


def test_the_cli_does_not_load_the_server_side_to_parse_arguments() -> None:
    import subprocess
    import sys

    code = "import sys, simulator.cli; print(sorted({'aiohttp', 'prometheus_client'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_steer_changes_the_running_smsc(capsys) -> None:  # type: ignore[no-untyped-def]
    with thread() as smsc:
        assert smsc.server is not None
        op = smsc.server.operator()
        ctl = ["--control", url(smsc)]
        assert main(["steer", "tps", "vodafone", "rapidpro", "7.5", *ctl]) == 0
        assert smsc.call(lambda: op.accounts["rapidpro"].tps) == 7.5
        assert main(["steer", "pause", *ctl]) == 0
        assert smsc.call(lambda: op.receipts_paused)
        assert main(["steer", "resume", "--operator", "vodafone", *ctl]) == 0
        assert not smsc.call(lambda: op.receipts_paused)
        client = bind(smsc.port)
        try:
            wait(lambda: smsc.call(lambda: len(op.accounts["rapidpro"].binds)) == 1)
            assert main(["steer", "drop", "--account", "rapidpro", *ctl]) == 0
            assert "dropped 1 binds" in capsys.readouterr().out
            wait(lambda: smsc.call(lambda: len(op.accounts["rapidpro"].binds)) == 0)
        finally:
            client.disconnect()
        assert main(["steer", "tps", "vodafone", "nobody", "1", *ctl]) == 1
        assert "404" in capsys.readouterr().err
