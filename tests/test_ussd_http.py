"""USSD over an aggregator's HTTP callback: the simulated network POSTing to the
reference platform's endpoint, and to scripted applications that are slow or wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from simulator.config import PlatformConfig, UssdConfig, UssdTransport
from simulator.platform.runtime import PlatformRuntime
from simulator.platform.ussd import HTTP_PATH
from simulator.ussd.aggregator import BadAnswer, read_answer
from simulator.ussd.http_gateway import HttpUssdNetwork
from simulator.ussd.ports import UssdRecorder
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(30)

A = "201001234567"


async def _until(pred: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_read_answer() -> None:
    assert read_answer("CON 1 status\n2 pay") == ("1 status\n2 pay", False)
    assert read_answer("END bye") == ("bye", True)
    assert read_answer("END") == ("", True)
    with pytest.raises(BadAnswer):
        read_answer("OK 1 status")


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[PlatformRuntime]:
    # Kannel mode: no SMSC needed for the HTTP callback (nothing is sent over SMS here)
    cfg = PlatformConfig(api_port=0, mode="kannel", tps=0)
    rt = PlatformRuntime(cfg, "t", reset=True, database=tmp_path / "p.sqlite3")
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def test_reference_menu_over_http_step_by_step(platform: PlatformRuntime) -> None:
    cfg = UssdConfig(
        transport=UssdTransport.HTTP, url=platform.url + HTTP_PATH, network_code="60202"
    )
    recorder = UssdRecorder()
    async with HttpUssdNetwork(cfg, handset=recorder) as net:
        assert net.dial(A) is not None
        assert net.dial(A) is None  # one session per subscriber
        await _until(lambda: recorder.of(A))
        assert "1 حالتي" in recorder.of(A)[0].text and not recorder.of(A)[0].final
        for step, key in enumerate(["٣", "0", "3", "2"], start=2):
            assert net.answer(A, key)
            await _until(lambda n=step: len(recorder.of(A)) == n)  # type: ignore[misc]
        last = recorder.of(A)[-1]
        assert last.final and last.release == "completed" and "الصحية" in last.text
        assert len(net.sessions) == 0 and net.sessions.counters.steps == 5
        # the platform walked the whole path each time: back and forth, Arabic-Indic digits
        assert platform.ussd.stats.http_requests == 5 and platform.ussd.stats.completed == 1
        # a talk-to-us message lands in the platform's store
        assert net.dial(A) is not None
        await _until(lambda: len(recorder.of(A)) == 6)
        net.answer(A, "5")
        await _until(lambda: len(recorder.of(A)) == 7)
        net.answer(A, "محتاجة اعرف ميعاد الصرف")
        await _until(lambda: len(recorder.of(A)) == 8)
    assert platform.ussd.stats.actions == {"feedback": 1}


async def _app(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/ussd", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/ussd"


async def test_slow_application_is_released_at_app_timeout() -> None:
    seen: list[dict[str, str]] = []

    async def slow(request: web.Request) -> web.Response:
        seen.append({k: str(v) for k, v in (await request.post()).items()})
        await asyncio.sleep(2)
        return web.Response(text="CON too late")

    runner, url = await _app(slow)
    recorder = UssdRecorder()
    try:
        cfg = UssdConfig(
            transport=UssdTransport.HTTP, url=url, app_timeout=0.2, network_code="60201"
        )
        async with HttpUssdNetwork(cfg, handset=recorder) as net:
            started = time.monotonic()
            session = net.dial(A, "*1442#")
            assert session is not None
            await _until(lambda: recorder.of(A))
            assert 0.15 <= time.monotonic() - started < 1.5
            assert recorder.of(A)[0].release == "app_timeout"
            assert seen and seen[0]["phoneNumber"] == "+" + A and seen[0]["text"] == ""
            assert seen[0]["serviceCode"] == "*1442#" and seen[0]["networkCode"] == "60201"
            assert seen[0]["sessionId"].startswith("smsim-")
            assert net.dial(A) is not None  # released: the subscriber may dial again
    finally:
        await runner.cleanup()


async def test_silent_subscriber_and_bad_answers_release_the_session() -> None:
    answers = iter(["CON 1 yes\n2 no", "OK nonsense", "CON " + "x" * 183])

    async def scripted(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=next(answers))

    runner, url = await _app(scripted)
    recorder = UssdRecorder()
    try:
        cfg = UssdConfig(transport=UssdTransport.HTTP, url=url, screen_timeout=0.2)
        async with HttpUssdNetwork(cfg, handset=recorder) as net:
            net.dial(A)
            await _until(lambda: len(recorder.of(A)) == 2, 3)
            first, released = recorder.of(A)
            assert first.text == "1 yes\n2 no" and released.release == "screen_timeout"
            net.dial(A)  # answered "OK nonsense": neither CON nor END
            await _until(lambda: len(recorder.of(A)) == 3)
            assert recorder.of(A)[-1].release == "app_error"
            net.dial(A)  # a screen longer than 182 characters
            await _until(lambda: len(recorder.of(A)) == 4)
            assert recorder.of(A)[-1].release == "app_error" and net.http_errors == 1
    finally:
        await runner.cleanup()


async def test_an_operator_configured_for_http_dials_through_the_callback(
    platform: PlatformRuntime,
) -> None:
    from simulator.config import OperatorConfig, SmscConfig
    from simulator.smsc.server import SmscServer

    ussd = UssdConfig(transport=UssdTransport.HTTP, url=platform.url + HTTP_PATH)
    smsc = SmscServer(SmscConfig(operators=[OperatorConfig(port=0, ussd=ussd)]))
    await smsc.start()
    try:
        net = smsc.ussd_port()
        assert isinstance(net, HttpUssdNetwork) and smsc.ussd_networks() == [net]
        recorder = net.handset
        assert isinstance(recorder, UssdRecorder)
        assert smsc.ussd_dial(A, "*1442*2#") is not None  # straight to the payment date
        await _until(lambda: recorder.of(A))
        (payment,) = recorder.of(A)
        assert payment.final and payment.text.startswith("موعد الصرف القادم")
        with pytest.raises(KeyError):
            smsc.ussd()  # no USSD over SMPP on this operator
    finally:
        await smsc.stop()
