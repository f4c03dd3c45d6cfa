"""``smsim platform`` as a user runs it: real processes (the SMSC and the platform), the
REST API with the token, a clean stop with totals, configuration errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def smsim(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def call(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body else "GET")
    req.add_header("Authorization", f"Token {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(150):
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1])
        try:
            with _OPENER.open(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_platform_serves_the_api_sends_over_smpp_and_stops_with_totals(tmp_path: Path) -> None:
    smsc_port, api_port = free_port(), free_port()
    config = tmp_path / "smsim.toml"
    config.write_text(f"[platform]\ntps = 50\n\n[[platform.binds]]\nport = {smsc_port}\n")
    smsc = smsim("smsc", "--port", str(smsc_port), "--no-subscribers")
    platform = None
    try:
        time.sleep(0.5)
        platform = smsim(
            "platform",
            "--config",
            str(config),
            "--api-port",
            str(api_port),
            "--database",
            str(tmp_path / "p.sqlite3"),
            "--reset",
            env={"SMSIM_API_TOKEN": "from-env"},
        )
        base = f"http://127.0.0.1:{api_port}"
        wait_up(f"{base}/api/v2/health", platform)
        assert call(f"{base}/api/v2/flows.json", "wrong")[0] == 403
        status, b = call(
            f"{base}/api/v2/broadcasts.json",
            "from-env",
            {"text": "hello", "urns": ["tel:+201001234567", "tel:01201234567"]},
        )
        assert status == 201, b
        for _ in range(100):
            _, page = call(f"{base}/api/v2/messages.json?broadcast={b['id']}", "from-env")
            if [m["status"] for m in page["results"]] == ["delivered", "delivered"]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(page)
        assert {m["urn"] for m in page["results"]} == {"tel:+201001234567", "tel:+201201234567"}
    finally:
        err = stop(platform) if platform is not None else ""
        stop(smsc)
    assert f"{base}/api/v2/" in err and "from-env" in err and "(generated)" not in err
    assert "TPS per channel" in err and "50" in err  # from the [platform] table
    assert "sender.delivered" in err  # the totals table


def test_token_is_generated_and_printed_when_none_is_given(tmp_path: Path) -> None:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SMSIM_API_TOKEN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator.cli",
            "platform",
            "--mode",
            "kannel",  # no SMSC needed to come up
            "--api-port",
            str(api_port),
            "--database",
            str(tmp_path / "p.sqlite3"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "COLUMNS": "200"},
    )
    try:
        wait_up(f"http://127.0.0.1:{api_port}/api/v2/health", proc)
    finally:
        err = stop(proc)
    line = next(line for line in err.splitlines() if "(generated)" in line)
    token = line.split("│")[2].split()[0]
    assert len(token) == 40 and int(token, 16) >= 0


def test_bad_platform_config_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[platform]\nmode = "carrier-pigeon"\n')
    proc = smsim("platform", "--config", str(bad))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert str(bad) in err and "platform" in err and "smpp or kannel" in err
