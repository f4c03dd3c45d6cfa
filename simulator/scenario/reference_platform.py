"""The reference platform of a scenario run, in a child process (spawned, so neither
uvloop nor Locust's gevent is inherited): started with its binds, waited for (its API
answers, its binds are up), stopped with SIGTERM.

``smsim run`` binds it to the one SMSC in its process; a partitioned run to every part.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

from simulator.config import PlatformConfig
from simulator.harness.cluster import stop_process
from simulator.logs import setup_logging
from simulator.smsc.server import new_event_loop


class PlatformError(Exception):
    """The platform did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def platform_process(config_json: str, token: str, database: str) -> None:
    """Child process: the reference platform until SIGTERM."""
    from simulator.platform.runtime import PlatformRuntime

    config = PlatformConfig.model_validate_json(config_json)
    # Its binds, reconnects and send errors, one line each, beside its database.
    log_file = open(Path(database).parent / "platform.log", "a", encoding="utf-8")  # noqa: SIM115
    setup_logging(1, log_file)

    async def main() -> None:
        runtime = PlatformRuntime(config, token, reset=True, database=database)
        await runtime.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await runtime.stop()

    loop = new_event_loop(True)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        log_file.close()


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise PlatformError(f"{url} did not answer in {timeout:g}s ({last})")


def start(config: PlatformConfig, token: str, out: Path) -> multiprocessing.process.BaseProcess:
    """The platform's child process, its database (and log) in the run folder ``out``."""
    database = str(out / "platform.db")
    config = config.model_copy(update={"database": database})
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=platform_process,
        args=(config.model_dump_json(), token, database),
        name="smsim-platform",
        daemon=True,
    )
    child.start()
    return child


async def wait_ready(
    api_url: str,
    binds: Callable[[], Awaitable[int]],
    want: int,
    *,
    bind_timeout: float,
    poll: float,
) -> None:
    """Until the API answers (PlatformError after 30 s), then until ``binds()`` counts
    ``want`` binds at the SMSC side or ``bind_timeout`` passed: MO cannot reach the
    platform before."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_http, f"{api_url}/api/v2/health", 30.0)
    deadline = time.monotonic() + bind_timeout
    while time.monotonic() < deadline:
        if await binds() >= want:
            return
        await asyncio.sleep(poll)


def stop(platform: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM (it unbinds and closes its database), 10 s, then SIGKILL."""
    stop_process(platform)
