"""End to end: fake SMSC + simulated subscribers + the reference platform, on loopback.

Each test starts its own ``SmscServer`` (subscribers on, simulated time sped up) and a
``PlatformRuntime`` (the same object ``smsim platform`` runs) bound to it over SMPP with
aiosmpplib, or through real Kannel (bearerbox + smsbox) in Kannel mode, drives the
platform through its REST API like a RapidPro user, and checks the outcome against what
the other side saw: the subscribers' own record of what they received and sent, and the
SMSC's receipts.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.clock import SimClock
from simulator.config import (
    AccountConfig,
    BehaviourConfig,
    KannelChannelConfig,
    OperatorConfig,
    PlatformConfig,
    PopulationConfig,
    SmppBindConfig,
    SmscConfig,
)
from simulator.platform.campaigns import load_flows
from simulator.platform.flows import FlowDef, QuizQuestion
from simulator.platform.model import MsgStatus
from simulator.platform.runtime import PlatformRuntime
from simulator.smsc.server import SmscServer
from simulator.subscribers.behaviour import is_stop, parse_number
from simulator.subscribers.state import TouchedStore
from tests.support.kannel import COURIER_MO_QUERY, KannelConfig, KannelProcess, kannel_required
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(120)

TOKEN = "e2e-token"
NOON_CAIRO = calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0))
#: A quiz starts in the morning: the day (until people sleep at 01:00) is 17 h long.
MORNING_CAIRO = calendar.timegm((2026, 11, 23, 6, 0, 0, 0, 0, 0))
CHANNEL = "5a0c1442-e2e0-4d1b-9c1d-000000001442"
FLOWS = load_flows()
QUIZ: FlowDef = next(f for f in FLOWS if f.meta.get("campaign") == "covid_quiz")


# ----------------------------------------------------------------------------- topology


@dataclass
class Topology:
    smsc: SmscServer
    platform: PlatformRuntime
    http: aiohttp.ClientSession
    db: Path

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.platform.url + path, json=body) as resp:
            data: dict[str, Any] = await resp.json()
            assert resp.status == 201, data
            return data

    async def get_all(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every page of a listing, following ``next``."""
        url: str | None = self.platform.url + path
        out: list[dict[str, Any]] = []
        query: dict[str, str] | None = params
        while url:
            async with self.http.get(url, params=query) as resp:
                data = await resp.json()
                assert resp.status == 200, data
            out += data["results"]
            url, query = data["next"], None
        return out

    def history(self, number: str) -> list[Any]:
        engine = self.smsc.subscribers
        assert engine is not None
        return engine.store.history(number, limit=1000)

    def platform_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the platform's SQLite file directly, after a flush."""
        self.platform.store.flush()
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(sql, params).fetchall()


def smsc_config(
    scale: float, start: float = NOON_CAIRO, **population: Any
) -> tuple[SmscConfig, SimClock]:
    behaviour = population.pop("behaviour", BehaviourConfig())
    pop = PopulationConfig(enabled=True, **{"size": 1_000_000, "seed": 11, **population})
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=pop,
        behaviour=behaviour,
        time_scale=scale,
    )
    return cfg, SimClock(scale, start=start)


@contextlib.asynccontextmanager
async def topology(
    tmp_path: Path,
    smsc_cfg: SmscConfig,
    clock: SimClock,
    *,
    kannel: bool = False,
    **platform: Any,
) -> AsyncIterator[Topology]:
    smsc = SmscServer(smsc_cfg, clock=clock)
    assert smsc.subscribers is not None
    # Long enough a history that a whole quiz (12 MT, 10+ MO) of one subscriber stays,
    # and the services-menu conversation an eager subscriber may keep up after it for
    # as long as the run lasts (one had 127 MO in 256 entries, another 203 MO: over).
    smsc.subscribers.store = TouchedStore(history_size=2_000_000, per_subscriber=1000)
    await smsc.start()
    db = tmp_path / "platform.sqlite3"
    api_port = free_port()
    settings: dict[str, Any] = {
        "api_port": api_port,
        "tps": 0,
        "retry_delay": 0.2,
        "binds": [SmppBindConfig(port=smsc.port, window=64)],
        **platform,
    }
    kannel_proc: KannelProcess | None = None
    try:
        if kannel:
            kcfg = KannelConfig(
                smsc_port=smsc.port,
                mo_url=f"http://127.0.0.1:{api_port}/c/kn/{CHANNEL}/receive?{COURIER_MO_QUERY}",
                throughput=None,
                max_pending_submits=64,
                sendsms_max_messages=10,
                log_level=2,
            )
            kannel_proc = KannelProcess(kcfg, tmp_path / "kannel")
            await kannel_proc.async_start()
            await kannel_proc.async_wait_smsc_online(timeout=15)
            settings["mode"] = "kannel"
            settings["kannel"] = KannelChannelConfig(
                sendsms_url=kannel_proc.sendsms_url,
                username=kcfg.sendsms_username,
                password=kcfg.sendsms_password,
                channel_uuid=CHANNEL,
                callback_base=f"http://127.0.0.1:{api_port}",
                concurrency=64,
            )
        rt = PlatformRuntime(PlatformConfig(**settings), TOKEN, reset=True, database=db)
        await rt.start()
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Token {TOKEN}"}) as http:
                yield Topology(smsc, rt, http, db)
        finally:
            await rt.stop()
    finally:
        if kannel_proc is not None:
            await kannel_proc.async_stop()
        await smsc.stop()


async def settle(progress: Callable[[], object], quiet: float, timeout: float) -> None:
    """Wait until ``progress()`` has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = progress(), time.monotonic()
    while time.monotonic() - since < quiet:
        await asyncio.sleep(0.1)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        assert time.monotonic() < deadline, f"no quiet after {timeout}s: {now}"


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def activity(t: Topology) -> tuple[int, ...]:
    st = t.platform.sender.stats
    return (t.platform.service.stats.mo, st.sent, st.delivered, st.failed, st.errored)


# ----------------------------------------------------------------------------- the quiz


def quiz_behaviour() -> BehaviourConfig:
    # The subscribers know the answer key for 70% of answers (the default knowledge),
    # by a regex on each question's text; they reply to most questions.
    keys = {re.escape(q.text[:40]): q.correct for q in QUIZ.questions}
    return BehaviourConfig(
        answer_keys=keys,
        reply_probability={"eager": 1.0, "normal": 0.97, "rare": 0.9, "never": 0.0},
    )


#: Who takes the quiz in these tests: repliers within minutes, and no handsets that are
#: off for hours at a time (their SMSC retries would stretch one quiz over a simulated
#: day); dead handsets, unassigned and barred numbers stay in the mix.
QUIZ_PEOPLE: dict[str, Any] = {
    "delay_mix": {"fast": 0.6, "normal": 0.4, "slow": 0.0},
    "availability_mix": {"always": 0.72, "night_off": 0.25, "often_off": 0.0, "dead": 0.03},
}


def intro_text() -> str:
    node = QUIZ.nodes[QUIZ.start]
    send = next(a for a in node.actions if hasattr(a, "text"))
    return str(send.text.source)[:30]  # type: ignore[attr-defined]


@dataclass
class Attempt:
    """One subscriber's last quiz attempt as read from the raw texts."""

    answers: dict[str, int]
    stopped: bool = False

    @property
    def complete(self) -> bool:
        return not self.stopped and len(self.answers) == len(QUIZ.questions)

    @property
    def score(self) -> int:
        return sum(self.answers[q.result] == q.correct for q in QUIZ.questions)


def reply_numbers(text: str) -> list[int]:
    """The numbers in a reply, word by word, as the subscribers themselves read a number
    (``parse_number``: ASCII or Arabic-Indic digits, not digits inside Franco words)."""
    found = (parse_number(word) for word in text.split())
    return [n for n in found if n is not None]


def replay(messages: list[tuple[str, str]]) -> Attempt:
    """Mark one contact's answer sheet by hand from the raw texts, in the order the
    platform handled them: a reply answers the question sent last; RapidPro's rule for a
    multiple-choice wait is "any number equal to the right option: correct; else any
    number naming an option: wrong (that number); else ask again"; the intro starts a
    new attempt and an opt-out ends it."""
    intro = intro_text()
    attempt = Attempt({})
    current: QuizQuestion | None = None
    for direction, text in messages:
        if direction == "out":
            if text.startswith(intro):
                attempt, current = Attempt({}), None
            for q in QUIZ.questions:
                if text.startswith(q.text):
                    current = q
        elif is_stop(text):
            attempt.stopped, current = True, None
        elif current is not None and current.result not in attempt.answers:
            nums = reply_numbers(text)
            options = range(1, len(current.options) + 1)
            if current.correct in nums:
                attempt.answers[current.result] = current.correct
            elif any(n in options for n in nums):
                attempt.answers[current.result] = next(n for n in nums if n in options)
    return attempt


async def run_quiz(t: Topology, numbers: list[str], timeout: float) -> None:
    for i in range(0, len(numbers), 100):  # RapidPro takes 100 recipients a request
        await t.post(
            "/api/v2/flow_starts.json",
            {"flow": QUIZ.uuid, "urns": [f"tel:+{n}" for n in numbers[i : i + 100]]},
        )
    await until(lambda: not t.platform.service.busy, 10, "the flow starts")
    await settle(lambda: activity(t), quiet=1.5, timeout=timeout)


async def check_quiz(
    t: Topology, numbers: list[str], min_complete: int, *, ordered: bool = True
) -> dict[str, int]:
    """Score check; returns counts for the caller's own assertions. ``ordered``: the
    platform received each subscriber's texts in the order they were sent (one SMPP
    bind); Kannel's smsbox posts MO concurrently, so there only the texts must match."""
    # The platform's messages, per contact, in the order it created them.
    per_contact: dict[str, list[tuple[str, str]]] = {}
    for urn, direction, text in t.platform_rows(
        "SELECT urn, direction, text FROM msgs ORDER BY id"
    ):
        per_contact.setdefault(urn.removeprefix("tel:+"), []).append((direction, text))
    contacts = {
        c["urns"][0].removeprefix("tel:+"): c
        for c in await t.get_all("/api/v2/contacts.json", page_size="250")
    }
    runs: dict[str, dict[str, Any]] = {}
    for r in await t.get_all("/api/v2/runs.json", flow=QUIZ.uuid):
        n = r["contact"]["urn"].removeprefix("tel:+")
        if n not in runs or r["created_on"] > runs[n]["created_on"]:
            runs[n] = r  # the contact's latest run
    complete = 0
    mismatches: list[tuple[str, Any, Any]] = []
    for n in numbers:
        msgs = per_contact.get(n, [])
        # What the platform received is exactly what the subscriber sent.
        sent = [e.text for e in t.history(n) if e.direction == "mo"]
        received = [text for d, text in msgs if d == "in"]
        if ordered:
            assert received == sent, (n, received, sent)
        else:
            assert Counter(received) == Counter(sent), (n, received, sent)
        attempt = replay(msgs)
        run = runs.get(n)
        if not attempt.complete:
            assert run is None or run["exit_type"] != "completed" or attempt.stopped, n
            continue
        complete += 1
        assert run is not None and run["exit_type"] == "completed", (n, run)
        score = contacts[n]["fields"]["quiz_score"]
        if score != attempt.score:
            mismatches.append((n, score, attempt.answers))
        for q in QUIZ.questions:
            value = run["values"][q.result]
            assert int(value["value"]) == attempt.answers[q.result], (n, q.result, value, msgs)
            expected = "correct" if attempt.answers[q.result] == q.correct else "wrong"
            assert value["category"] == expected, (n, q.result, value)
        groups = {g["name"] for g in contacts[n]["groups"]}
        assert ("quiz_full_score" in groups) == (attempt.score == 10), n
    assert not mismatches, mismatches[:5]
    assert complete >= min_complete, complete
    return {"complete": complete}


async def test_covid_quiz_for_1000_subscribers_scores_every_complete_answer_sheet(
    tmp_path: Path,
) -> None:
    cfg, clock = smsc_config(
        7200.0,
        MORNING_CAIRO,
        behaviour=quiz_behaviour(),
        **QUIZ_PEOPLE,
    )
    async with topology(tmp_path, cfg, clock) as t:
        assert t.smsc.subscribers is not None
        numbers = t.smsc.subscribers.population.sample(1000, random.Random(5))
        await run_quiz(t, numbers, timeout=60)
        counts = await check_quiz(t, numbers, min_complete=200)
        # The traffic had the realistic mess in it, and it was handled: replies that
        # name no option (re-asked), opt-outs, long replies in concatenated parts.
        invalid = str(QUIZ.nodes["q1.invalid"].actions[0].text.source)  # type: ignore[attr-defined]
        [(reasked,)] = t.platform_rows(
            "SELECT count(*) FROM msgs WHERE direction='out' AND text = ?", invalid
        )
        assert reasked > 0
        assert t.platform.service.stats.opt_outs > 0
        bind = t.platform.binds[0].stats
        assert bind.mo_parts > 0
        assert bind.receipts_unmatched == 0 and bind.refused == 0 and bind.timeouts == 0
        print(f"quiz: {counts['complete']} complete answer sheets, {reasked} re-asked")


# ----------------------------------------------------------------------------- broadcast


async def test_broadcast_to_10000_through_the_api_yields_10000_receipts_at_the_smsc(
    tmp_path: Path,
) -> None:
    # Every handset on and every number in service: one receipt per message, at once.
    cfg, clock = smsc_config(
        600.0,
        unassigned_share=0.0,
        barred_share=0.0,
        availability_mix={"always": 1.0, "night_off": 0.0, "often_off": 0.0, "dead": 0.0},
        behaviour=BehaviourConfig(unprompted_reply_probability=0.0),
    )
    text = "وزارة التضامن الاجتماعي: صرف دعم تكافل وكرامة لشهر ديسمبر يبدأ الأحد"
    async with topology(tmp_path, cfg, clock) as t:
        assert t.smsc.subscribers is not None
        numbers = t.smsc.subscribers.population.sample(10_000, random.Random(9))
        started = time.monotonic()
        ids = []
        for i in range(0, len(numbers), 100):
            b = await t.post(
                "/api/v2/broadcasts.json",
                {"text": text, "urns": [f"tel:+{n}" for n in numbers[i : i + 100]]},
            )
            ids.append(b["id"])
        await until(lambda: t.smsc.stats().receipts_delivered >= 10_000, 60, "10,000 receipts")
        elapsed = time.monotonic() - started
        await settle(lambda: activity(t), quiet=0.5, timeout=20)
        st = t.smsc.stats()
        # A few people answer a broadcast with STOP: their confirmation is the only other
        # MT, or the catch-all's answer to a STOP it does not know ("إيقاف الرسائل").
        # Every MT the SMSC accepted was receipted DELIVRD to the platform.
        service = t.platform.service.stats
        confirmations = service.replies
        assert confirmations == service.opt_outs + service.caught and service.opt_outs
        assert st.accepted == 10_000 + confirmations
        assert st.receipts_delivered == st.accepted
        assert st.receipts_by_stat == {"DELIVRD": st.accepted}
        engine = t.smsc.subscribers
        for n in numbers:  # each number got the broadcast exactly once
            got = [e.text for e in engine.store.history(n) if e.direction == "mt"]
            assert got.count(text) == 1, (n, got)
        rows = t.platform_rows(
            "SELECT status, count(*) FROM msgs WHERE broadcast_id IS NOT NULL GROUP BY status"
        )
        assert dict(rows) == {"delivered": 10_000}
        assert t.platform.binds[0].stats.receipts_unmatched == 0
        listed = await t.get_all("/api/v2/broadcasts.json")
        assert {b["id"] for b in listed} == set(ids)
        assert all(b["status"] == "sent" for b in listed)
        print(f"10,000 broadcast messages receipted in {elapsed:.1f}s")


# ----------------------------------------------------------------------------- opt-out


def mt_texts(t: Topology, number: str) -> list[str]:
    return [e.text for e in t.history(number) if e.direction == "mt"]


async def broadcast_and_wait(t: Topology, text: str, numbers: list[str], expect: int) -> None:
    before = t.smsc.stats().accepted
    await t.post("/api/v2/broadcasts.json", {"text": text, "urns": [f"tel:+{n}" for n in numbers]})
    await until(lambda: t.smsc.stats().accepted >= before + expect, 10, f"{expect} MT")
    await asyncio.sleep(0.3)  # and no more than that
    assert t.smsc.stats().accepted == before + expect


async def contact_status(t: Topology, number: str) -> str:
    [c] = await t.get_all("/api/v2/contacts.json", urn=f"tel:+{number}")
    return str(c["status"])


async def test_stop_stops_further_messages_and_writing_again_opts_back_in(
    tmp_path: Path,
) -> None:
    cfg, clock = smsc_config(
        600.0,
        unassigned_share=0.0,
        barred_share=0.0,
        opted_out_share=0.0,
        availability_mix={"always": 1.0, "night_off": 0.0, "often_off": 0.0, "dead": 0.0},
        behaviour=BehaviourConfig(unprompted_reply_probability=0.0),
    )
    async with topology(tmp_path, cfg, clock) as t:
        assert t.smsc.subscribers is not None
        a, b, c = t.smsc.subscribers.population.sample(3, random.Random(1))
        # flows.json: the seed campaigns, each result with its categories.
        flows = {f["uuid"]: f for f in await t.get_all("/api/v2/flows.json")}
        assert len(flows) == len(FLOWS)
        quiz = flows[QUIZ.uuid]
        assert [r["key"] for r in quiz["results"]] == [q.result for q in QUIZ.questions]
        assert quiz["results"][0]["categories"] == ["correct", "wrong", "other"]
        await broadcast_and_wait(t, "رسالة أولى", [a, b, c], 3)
        # a writes STOP, c writes إلغاء: each gets the one confirmation, nothing else.
        t.smsc.inject_mo(a, "STOP")
        t.smsc.inject_mo(c, "إلغاء")
        await until(lambda: len(mt_texts(t, a)) == 2 and len(mt_texts(t, c)) == 2, 10, "confirm")
        assert "إلغاء اشتراكك" in mt_texts(t, a)[-1]
        assert await contact_status(t, a) == "stopped"
        assert await contact_status(t, c) == "stopped"
        await broadcast_and_wait(t, "رسالة ثانية", [a, b, c], 1)
        assert mt_texts(t, b)[-1] == "رسالة ثانية"
        assert mt_texts(t, a)[-1] != "رسالة ثانية" and mt_texts(t, c)[-1] != "رسالة ثانية"
        # A flow start skips the stopped contacts too.
        await t.post("/api/v2/flow_starts.json", {"flow": QUIZ.uuid, "urns": [f"tel:+{a}"]})
        await asyncio.sleep(0.5)
        assert len(mt_texts(t, a)) == 2
        # a writes again: opted back in, and the next broadcast reaches a (not c).
        t.smsc.inject_mo(a, "مرحبا")
        await until(lambda: t.platform.service.stats.mo == 3, 10, "a's message")
        assert await contact_status(t, a) == "active"
        await broadcast_and_wait(t, "رسالة ثالثة", [a, b, c], 2)
        assert mt_texts(t, a)[-1] == "رسالة ثالثة"
        assert mt_texts(t, c)[-1] != "رسالة ثالثة"


# ----------------------------------------------------------------------------- Kannel


@pytest.mark.kannel
async def test_quiz_and_broadcast_through_real_kannel(tmp_path: Path) -> None:
    kannel_required()
    cfg, clock = smsc_config(
        7200.0,
        MORNING_CAIRO,
        behaviour=quiz_behaviour(),
        **QUIZ_PEOPLE,
    )
    async with topology(tmp_path, cfg, clock, kannel=True) as t:
        assert t.smsc.subscribers is not None and t.platform.kannel is not None
        numbers = t.smsc.subscribers.population.sample(200, random.Random(8))
        await run_quiz(t, numbers, timeout=60)
        await check_quiz(t, numbers, min_complete=50, ordered=False)
        k = t.platform.kannel.stats
        assert k.mo > 0 and k.dlr > 0 and k.sendsms_errors == 0
        # Receipts reached the platform through Kannel's dlr-url: statuses moved on.
        rows = dict(
            t.platform_rows(
                "SELECT status, count(*) FROM msgs WHERE direction='out' GROUP BY status"
            )
        )
        assert rows.get("delivered", 0) > 0.8 * sum(rows.values()), rows
        # A broadcast through Kannel to 300 more subscribers: each reaches the SMSC once.
        others = [
            n
            for n in t.smsc.subscribers.population.sample(600, random.Random(81))
            if n not in set(numbers)
        ][:300]
        before = t.smsc.stats().accepted
        for i in range(0, 300, 100):
            await t.post(
                "/api/v2/broadcasts.json",
                {
                    "text": "Takaful: payment on Sunday",
                    "urns": [f"tel:+{n}" for n in others[i : i + 100]],
                },
            )
        await until(lambda: t.smsc.stats().accepted >= before + 300, 20, "300 MT via Kannel")
        for n in others:
            counters = t.smsc.subscribers.store.counters(n)
            assert counters is not None and counters.mt >= 1, n


# ----------------------------------------------------------------------------- restart


async def test_a_restarted_platform_resumes_waiting_runs_and_reset_starts_clean(
    tmp_path: Path,
) -> None:
    cfg, clock = smsc_config(
        600.0,
        unassigned_share=0.0,
        barred_share=0.0,
        availability_mix={"always": 1.0, "night_off": 0.0, "often_off": 0.0, "dead": 0.0},
        behaviour=BehaviourConfig(
            reply_probability={"eager": 0.0, "normal": 0.0, "rare": 0.0, "never": 0.0},
            unprompted_reply_probability=0.0,
        ),
    )
    db = tmp_path / "platform.sqlite3"
    async with SmscServer(cfg, clock=clock) as smsc:
        assert smsc.subscribers is not None
        [a] = smsc.subscribers.population.sample(1, random.Random(3))
        settings = PlatformConfig(api_port=0, tps=0, binds=[SmppBindConfig(port=smsc.port)])

        def texts() -> list[str]:
            assert smsc.subscribers is not None
            return [e.text for e in smsc.subscribers.store.history(a) if e.direction == "mt"]

        first = PlatformRuntime(settings, TOKEN, reset=True, database=db)
        await first.start()
        smsc.inject_mo(a, "مسابقة")
        await until(lambda: len(texts()) == 2, 10, "intro and q1")
        await first.stop()

        second = PlatformRuntime(settings, TOKEN, database=db)
        await second.start()
        try:
            smsc.inject_mo(a, "١")  # the right answer to q1, to the new process
            await until(lambda: len(texts()) == 3, 10, "q2")
            assert texts()[2].startswith(QUIZ.questions[1].text)
            headers = {"Authorization": f"Token {TOKEN}"}
            async with (
                aiohttp.ClientSession(headers=headers) as http,
                http.get(f"{second.url}/api/v2/runs.json") as resp,
            ):
                [run] = (await resp.json())["results"]
            assert run["exit_type"] is None and run["values"]["q1"]["category"] == "correct"
            assert second.store.contact_by_urn(f"tel:+{a}") is not None
        finally:
            await second.stop()

        third = PlatformRuntime(settings, TOKEN, reset=True, database=db)
        await third.start()
        try:
            assert third.store.contact_count == 0 and third.service.engine.waiting == 0
        finally:
            await third.stop()


# ----------------------------------------------------------------------------- operators


async def test_one_bind_per_operator_and_prefixes_route_numbers_to_binds(
    tmp_path: Path,
) -> None:
    cfg = SmscConfig(
        # Each SMSC account refuses (ESME_RMSGQFUL) a submit beyond its window: the
        # platform must keep to the bind's window itself (aiosmpplib has none).
        operators=[
            OperatorConfig(name="vodafone", port=0, accounts=[AccountConfig(window=8)]),
            OperatorConfig(name="orange", port=0, accounts=[AccountConfig(window=10)]),
        ],
        population=PopulationConfig(
            enabled=True,
            size=1_000_000,
            seed=11,
            unassigned_share=0.0,
            barred_share=0.0,
            ported_share=0.0,
            availability_mix={"always": 1.0, "night_off": 0.0, "often_off": 0.0, "dead": 0.0},
        ),
        behaviour=BehaviourConfig(unprompted_reply_probability=0.0),
        time_scale=600.0,
    )
    async with SmscServer(cfg, clock=SimClock(600.0, start=NOON_CAIRO)) as smsc:
        assert smsc.subscribers is not None
        binds = [
            SmppBindConfig(operator="vodafone", port=smsc.address("vodafone")[1], window=8),
            SmppBindConfig(operator="orange", port=smsc.address("orange")[1], prefixes=["012"]),
        ]
        rt = PlatformRuntime(
            PlatformConfig(api_port=0, tps=0, binds=binds),
            TOKEN,
            reset=True,
            database=tmp_path / "p",
        )
        await rt.start()
        try:
            numbers = smsc.subscribers.population.sample(400, random.Random(4))
            orange = [n for n in numbers if n.startswith("2012")]
            assert 0 < len(orange) < len(numbers)
            for n in numbers:
                c, _ = rt.store.get_or_create_contact(f"tel:+{n}", time.time())
                rt.service.queue_msg(c, "routing check")
            await until(lambda: rt.sender.stats.delivered == len(numbers), 20, "receipts")
            # 012 numbers went through the orange bind, everything else the default one.
            assert smsc.operator("orange").stats.accepted == len(orange)
            assert smsc.operator("vodafone").stats.accepted == len(numbers) - len(orange)
            by_bind = {b.name: b.stats.accepted for b in rt.binds}
            assert by_bind == {"orange": len(orange), "vodafone": len(numbers) - len(orange)}
            assert smsc.stats().queue_full == 0 and smsc.stats().rejected == 0
            # Each operator receipts to its own bind; receipts found their messages.
            assert all(b.stats.receipts_unmatched == 0 for b in rt.binds)
        finally:
            await rt.stop()


# ----------------------------------------------------------------------------- reconnect


async def test_after_the_smsc_restarts_the_bind_comes_back_and_nothing_is_stuck(
    tmp_path: Path,
) -> None:
    port = free_port()
    slow = SmscConfig(operators=[OperatorConfig(port=port, response_latency=0.3)])
    smsc = SmscServer(slow)
    await smsc.start()
    bind = SmppBindConfig(port=port, window=10, response_timeout=1.0)
    rt = PlatformRuntime(
        PlatformConfig(api_port=0, tps=0, retry_delay=0.1, binds=[bind]),
        TOKEN,
        reset=True,
        database=tmp_path / "p",
    )
    await rt.start()
    second: SmscServer | None = None
    try:
        msgs = []
        for i in range(40):
            c, _ = rt.store.get_or_create_contact(f"tel:+2010{i:08d}", time.time())
            msgs.append(rt.service.queue_msg(c, "reconnect check"))
        await asyncio.sleep(0.1)  # a window's worth is in flight, unanswered
        await smsc.stop(drain_timeout=0.1)
        second = SmscServer(SmscConfig(operators=[OperatorConfig(port=port)]))
        await second.start()
        final = (MsgStatus.DELIVERED, MsgStatus.FAILED)
        await until(lambda: all(m.status in final for m in msgs[10:]), 20, "the rest")
        await asyncio.sleep(1.5)  # the response timeout of anything still in flight
        # Nothing waits forever: every message was answered by one SMSC or the other, or
        # timed out and went again; the window was not leaked by the lost connection.
        assert all(m.status in (*final, MsgStatus.WIRED) for m in msgs), Counter(
            m.status for m in msgs
        )
        assert second.stats().accepted >= 30
        assert rt.binds[0].bound
        # The window in flight at the drop was answered by the first SMSC or timed out.
        assert rt.binds[0].stats.timeouts + smsc.stats().accepted >= 10
    finally:
        await rt.stop()
        if second is not None:
            await second.stop()
