"""Simulated people on the *1442# menu: reading screens, deterministic choices in their
digit style, shares that follow the configuration, and a crowd end to end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.config import (
    OperatorConfig,
    PlatformConfig,
    PopulationConfig,
    ReceiptConfig,
    SmppBindConfig,
    SmscConfig,
    UssdBehaviourConfig,
    UssdConfig,
)
from simulator.platform.runtime import PlatformRuntime
from simulator.platform.ussd_menu import MENU
from simulator.smsc.server import SmscServer
from simulator.subscribers.population import Population
from simulator.subscribers.profile import Digits
from simulator.ussd.people import Act, attach_people, decide, read_screen
from simulator.ussd.session import UssdSession

pytestmark = pytest.mark.timeout(60)

NOW = 1_790_000_000.0
POP = Population(PopulationConfig(size=20_000, seed=1442))


def _shown(text: str, steps: int = 1, msisdn: str = "201001234567") -> UssdSession:
    return UssdSession(msisdn, "*1442#", 0, 0.0, 180.0, screen=text, steps=steps)


def test_reads_the_reference_screens() -> None:
    root = read_screen(MENU.walk([], "2010", NOW).text)
    assert root.options == (1, 2, 3, 4, 5) and not root.back
    cond = read_screen(MENU.walk(["3"], "2010", NOW).text)
    assert cond.options == (1, 2) and cond.back
    vol = read_screen(MENU.walk(["4"], "2010", NOW).text)
    assert (vol.low, vol.high, vol.options, vol.back) == (1, 27, (), True)
    talk = read_screen(MENU.walk(["5"], "2010", NOW).text)
    assert talk.options == () and talk.high == 0 and talk.back
    assert read_screen("١ نعم\n٢ لا").options == (1, 2)


def test_choices_are_deterministic_and_in_the_subscribers_digits() -> None:
    cfg = UssdBehaviourConfig(abandon_share=0, silent_share=0, back_share=0, wrong_key_share=0)
    root = MENU.walk([], "2010", NOW).text
    seen_indic = seen_ascii = False
    for i in range(200):
        sub = POP.profile_at(i)
        a = decide(sub, _shown(root, msisdn=sub.msisdn), cfg)
        assert a == decide(sub, _shown(root, msisdn=sub.msisdn), cfg)
        assert a.act is Act.OPTION and a.think > 0
        if sub.digits is Digits.ARABIC_INDIC:
            assert a.text in "١٢٣٤٥"
            seen_indic = True
        else:
            assert a.text in "12345"
            seen_ascii = True
    assert seen_indic and seen_ascii
    vol = MENU.walk(["4"], "2010", NOW).text
    for i in range(50):
        sub = replace(POP.profile_at(i), digits=Digits.ASCII)
        n = decide(sub, _shown(vol, 2, sub.msisdn), cfg)
        assert n.act is Act.NUMBER and 1 <= int(n.text) <= 27


def test_shares_follow_the_configuration() -> None:
    cfg = UssdBehaviourConfig(
        abandon_share=0.10, silent_share=0.05, back_share=0.20, wrong_key_share=0.05
    )
    cond = MENU.walk(["3"], "2010", NOW).text  # offers 0 (back)
    n = 10_000
    acts = Counter(
        decide(POP.profile_at(i), _shown(cond, 2, POP.msisdn(i)), cfg).act for i in range(n)
    )

    def near(act: Act, share: float) -> None:
        se = (share * (1 - share) / n) ** 0.5
        assert abs(acts[act] / n - share) < 5 * se, (act, acts[act] / n, share)

    near(Act.SILENT, 0.05)
    near(Act.ABANDON, 0.10)
    near(Act.BACK, 0.20)
    near(Act.WRONG_KEY, (1 - 0.35) * 0.05)


async def test_a_crowd_dials_and_navigates_the_reference_menu(tmp_path: Path) -> None:
    ussd = UssdConfig(app_timeout=2, screen_timeout=0.5)
    smsc_cfg = SmscConfig(
        operators=[OperatorConfig(port=0, receipt=ReceiptConfig(delay=0.01), ussd=ussd)],
        time_scale=100,  # think times of ~7 simulated seconds take ~70 ms
        population=PopulationConfig(enabled=True, size=20_000, seed=1442),
    )
    smsc = SmscServer(smsc_cfg)
    await smsc.start()
    rt = PlatformRuntime(
        PlatformConfig(api_port=0, tps=0, binds=[SmppBindConfig(port=smsc.port)]),
        "t",
        reset=True,
        database=tmp_path / "p.sqlite3",
    )
    await rt.start()
    people = attach_people(smsc, asyncio.get_running_loop().time)
    network = smsc.ussd()
    assert network.handset is people and smsc.subscribers is not None
    numbers = smsc.subscribers.population
    try:
        n = 300
        for i in range(n):
            assert smsc.ussd_dial(numbers.msisdn(i)) is not None
        deadline = time.monotonic() + 20
        while network.sessions.counters.open_total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        released = network.sessions.counters.released
        assert sum(released.values()) == n
        assert released["completed"] >= 0.7 * n, released
        assert released["abandoned"] > 0 and released["screen_timeout"] > 0, released
        assert released["app_timeout"] == 0 and released["session_timeout"] == 0
        acts = people.counters.acts
        assert acts is not None and acts["option"] > n and acts["back"] + acts["wrong_key"] > 0
        # every completed session ended on a last screen the platform served
        assert rt.ussd.stats.completed == released["completed"]
    finally:
        await rt.stop()
        await smsc.stop()
