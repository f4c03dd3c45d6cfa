"""The ``smsim`` entry point as a user runs it: a real process, a real bind, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.esme.client import EsmeClient
from simulator.smpp.pdu import SubmitSm
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


def smsim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _bind_when_up(port: int) -> EsmeClient:
    for _ in range(100):
        try:
            return await EsmeClient.connect("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("smsim smsc did not come up")


async def test_smsc_serves_then_stops_on_sigterm_with_totals() -> None:
    port = free_port()
    proc = smsim("smsc", "--port", str(port))
    try:
        client = await _bind_when_up(port)
        resp = await client.request(SubmitSm(destination_addr="201001234567", short_message=b"hi"))
        assert resp.command_status == 0
        await client.unbind()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"127.0.0.1:{port}" in err and "rapidpro/secret" in err
    assert "accepted" in err  # the totals table


def test_bad_config_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[operators]]\nport = -1\n")
    proc = smsim("smsc", "--config", str(bad))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert f"{bad}: operators.0.port" in err


def test_demo_runs_on_a_free_port() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "demo", "--port", "0", "--messages", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo OK" in proc.stdout
    assert "نعم" in proc.stdout and "١" in proc.stdout
