"""The reference platform's *1442# menu: the pure walk, then both transports end to end
(the fake SMSC's USSD sessions to the platform's aiosmpplib bind, and the aggregator
callback on the platform's HTTP app)."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from simulator.config import (
    OperatorConfig,
    PlatformConfig,
    ReceiptConfig,
    SmppBindConfig,
    SmscConfig,
    UssdConfig,
    UssdDialIn,
)
from simulator.platform.runtime import PlatformRuntime
from simulator.platform.ussd import HTTP_PATH, dial_inputs
from simulator.platform.ussd_menu import INVALID, MENU, Kind, next_payment
from simulator.smsc.server import SmscServer
from simulator.ussd.network import UssdRecorder
from simulator.ussd.session import screen_fits

pytestmark = pytest.mark.timeout(30)

A = "201001234567"
NOW = calendar.timegm((2026, 12, 1, 12, 0, 0))


def test_every_screen_fits_one_ucs2_ussd_screen() -> None:
    for node in MENU.nodes.values():
        text = node.text.format(
            status="تكافل: الصرف موقوف لعدم استيفاء المشروطية", payment="15/01/2027", value="27"
        )
        assert screen_fits(INVALID + text if node.kind is not Kind.INFO else text), node.key


def test_walks_through_the_menu() -> None:
    root = MENU.walk([], A, NOW)
    assert not root.end and "1 حالتي" in root.text and "5 كلمنا" in root.text
    status = MENU.walk(["1"], A, NOW)
    assert status.end and (
        "تكافل" in status.text
        or "كرامة" in status.text
        or "مسجل" in status.text
        or "المراجعة" in status.text
    )
    assert MENU.walk(["2"], A, NOW).text.startswith("موعد الصرف القادم 15/12/2026")
    # back from conditionality, then into it again: school attendance
    school = MENU.walk(["3", "0", "3", "1"], A, NOW)
    assert school.end and school.node == "school"
    # Arabic-Indic digits navigate as ASCII ones do
    confirm = MENU.walk(["٤", "١٢"], A, NOW)
    assert confirm.node == "volunteer_confirm" and "12" in confirm.text and not confirm.end
    done = MENU.walk(["٤", "١٢", "1"], A, NOW)
    assert done.end and done.action == "volunteer" and done.value == "12"
    assert MENU.walk(["4", "12", "2"], A, NOW).action == ""
    wrong = MENU.walk(["9"], A, NOW)
    assert wrong.text.startswith(INVALID) and wrong.node == "root" and not wrong.end
    assert MENU.walk(["4", "99"], A, NOW).text.startswith(INVALID)
    talk = MENU.walk(["5", "عايزة اعرف ميعاد الصرف"], A, NOW)
    assert talk.end and talk.action == "feedback" and talk.value == "عايزة اعرف ميعاد الصرف"


def test_next_payment_rolls_over_the_15th_and_the_year() -> None:
    assert next_payment(calendar.timegm((2026, 12, 14, 23, 0, 0))) == "15/12/2026"
    assert next_payment(calendar.timegm((2026, 12, 15, 0, 0, 0))) == "15/01/2027"
    assert dial_inputs("*1442*2#") == ["2"] and dial_inputs("*1442#") == []


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[SmscServer, PlatformRuntime]]:
    smsc_cfg = SmscConfig(
        operators=[
            OperatorConfig(
                port=0, receipt=ReceiptConfig(delay=0.01), ussd=UssdConfig(app_timeout=2)
            )
        ]
    )
    smsc = SmscServer(smsc_cfg)
    await smsc.start()
    cfg = PlatformConfig(api_port=0, tps=0, binds=[SmppBindConfig(port=smsc.port)])
    rt = PlatformRuntime(cfg, "t", reset=True, database=tmp_path / "p.sqlite3")
    await rt.start()
    try:
        yield smsc, rt
    finally:
        await rt.stop()
        await smsc.stop()


async def _until(pred: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_menu_over_smpp_from_the_simulated_network(
    stack: tuple[SmscServer, PlatformRuntime],
) -> None:
    smsc, rt = stack
    network = smsc.ussd()
    handset = network.handset
    assert isinstance(handset, UssdRecorder)
    assert smsc.ussd_dial(A) is not None
    await _until(lambda: handset.of(A))
    assert "1 حالتي" in handset.of(A)[0].text
    assert network.answer(A, "٤")
    await _until(lambda: len(handset.of(A)) == 2)
    assert "محافظتك" in handset.of(A)[1].text
    assert network.answer(A, "7")
    await _until(lambda: len(handset.of(A)) == 3)
    assert network.answer(A, "1")
    await _until(lambda: len(handset.of(A)) == 4)
    last = handset.of(A)[-1]
    assert last.final and last.release == "completed" and "تم تسجيلك" in last.text
    contact = rt.store.contact_by_urn("tel:+" + A)
    assert contact is not None and contact.fields["volunteer_governorate"] == "7"
    assert rt.ussd.stats.actions == {"volunteer": 1} and len(network.sessions) == 0
    # the platform answered each step well inside the network's app timeout
    q = network.screen_latency.quantile(0.99)
    assert q is not None and q < 1.0
    # a dial shortcut starts inside the menu: *1442*2# is the payment date at once
    assert smsc.ussd_dial("201001234568", "*1442*2#") is not None
    await _until(lambda: handset.of("201001234568"))
    (payment,) = handset.of("201001234568")
    assert payment.final and payment.text.startswith("موعد الصرف القادم")
    assert smsc.ussd_dial("201001234568", "*999#") is None  # not routed by this network


async def test_platform_forgets_a_session_the_network_released(
    stack: tuple[SmscServer, PlatformRuntime],
) -> None:
    smsc, rt = stack
    network = smsc.ussd()
    assert smsc.ussd_dial(A) is not None
    await _until(lambda: rt.ussd.stats.sessions == 1 and len(network.sessions) == 1)
    await _until(lambda: getattr(network.sessions.get(A), "turn", None) == "user")
    assert network.abandon(A)
    await _until(lambda: rt.ussd.stats.released == 1)
    assert not rt.ussd._smpp


async def test_menu_over_the_aggregator_callback(stack: tuple[SmscServer, PlatformRuntime]) -> None:
    _, rt = stack
    url = rt.url + HTTP_PATH
    form = {
        "sessionId": "ATUid_1",
        "serviceCode": "*1442#",
        "phoneNumber": "+" + A,
        "networkCode": "60201",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data={**form, "text": ""}) as r:
            body = await r.text()
            assert r.status == 200 and body.startswith("CON ") and "1 حالتي" in body
        async with http.post(url, data={**form, "text": "3"}) as r:
            assert (await r.text()).startswith("CON المشروطية")
        async with http.post(url, data={**form, "text": "3*2"}) as r:
            assert (await r.text()).startswith("END ")
        for _ in range(2):  # an aggregator may repeat the last request: recorded once
            async with http.post(url, data={**form, "sessionId": "ATUid_2", "text": "5*شكرا"}) as r:
                assert (await r.text()).startswith("END وصلتنا")
        async with http.post(url, data={"text": ""}) as r:
            assert r.status == 400
    assert rt.ussd.stats.actions == {"feedback": 1}
    contact = rt.store.contact_by_urn("tel:+" + A)
    assert contact is not None


async def test_a_new_dial_resets_a_session_the_platform_was_never_told_about(
    tmp_path: Path,
) -> None:
    ussd = UssdConfig(notify_release=False, dial_in=UssdDialIn.DESTINATION)
    smsc = SmscServer(SmscConfig(operators=[OperatorConfig(port=0, ussd=ussd)]))
    await smsc.start()
    rt = PlatformRuntime(
        PlatformConfig(api_port=0, tps=0, binds=[SmppBindConfig(port=smsc.port)]),
        "t",
        reset=True,
        database=tmp_path / "p.sqlite3",
    )
    await rt.start()
    try:
        network = smsc.ussd()
        handset = network.handset
        assert isinstance(handset, UssdRecorder)
        smsc.ussd_dial(A)
        await _until(lambda: handset.of(A))
        network.answer(A, "3")
        await _until(lambda: len(handset.of(A)) == 2)
        network.abandon(A)  # the platform still holds ["3"]
        smsc.ussd_dial(A)
        await _until(lambda: len(handset.of(A)) == 3)
        assert "1 حالتي" in handset.of(A)[2].text  # the top menu, not conditionality's
    finally:
        await rt.stop()
        await smsc.stop()
