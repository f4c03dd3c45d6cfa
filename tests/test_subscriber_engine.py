"""The subscriber engine inside a running SMSC, seen from SMPP clients: replies on the
serving operator's listener, receipts for every fate with their stat, err and dates on
the simulated clock, the observability API a scenario asserts with, STOP, and
spontaneous traffic with its daily shape."""

from __future__ import annotations

import asyncio
import calendar
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from simulator.clock import SimClock
from simulator.config import (
    BehaviourConfig,
    DeliveryConfig,
    OperatorConfig,
    PopulationConfig,
    SmscConfig,
)
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import RECEIPT_STAT, EsmClass, MessageState, Tag
from simulator.smpp.pdu import CancelSm, DeliverSm, ReplaceSm, SubmitSm
from simulator.smpp.segmentation import Concat, parse_udh, split_message
from simulator.smpp.text import alphabet_of, choose_coding, decode_text
from simulator.smsc.handsets import MtRecorder
from simulator.smsc.scheduler import TimerQueue
from simulator.smsc.server import SmscServer
from simulator.smsc.store import Message
from simulator.subscribers.behaviour import BehaviourModel, Prompt, Reply, ReplyKind, is_stop
from simulator.subscribers.delivery import DeliveryModel, handset_on, local_hour
from simulator.subscribers.engine import SPONTANEOUS, SubscriberEngine
from simulator.subscribers.population import Population
from simulator.subscribers.profile import Availability, Responsiveness, Subscriber

pytestmark = pytest.mark.timeout(60)

CAIRO = ZoneInfo("Africa/Cairo")

NOON_CAIRO = calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0))
THREE_AM_CAIRO = calendar.timegm((2026, 11, 23, 1, 0, 0, 0, 0, 0))
MIDNIGHT_CAIRO = calendar.timegm((2026, 11, 22, 22, 0, 0, 0, 0, 0))
QUESTION = "هل وصلك دعم تكافل هذا الشهر؟ ١) نعم ٢) لا"
OPERATORS = ("vodafone", "orange", "etisalat", "we")

#: Everyone answers, at once, handsets always on: replies are many and quick.
EAGER = {
    "responsiveness_mix": {"eager": 1.0},
    "delay_mix": {"fast": 1.0},
    "availability_mix": {"always": 1.0},
    "unassigned_share": 0.0,
    "barred_share": 0.0,
    "opted_out_share": 0.0,
}
EAGER_BEHAVIOUR = BehaviourConfig(
    reply_probability={"eager": 1.0}, delay_median={"fast": 5.0}, delay_sigma=0.5
)


def submit(to: str, text: str = QUESTION, **kw: Any) -> SubmitSm:
    coding, payload = choose_coding(text)
    return SubmitSm(
        source_addr="1442",
        source_addr_ton=3,
        destination_addr=to,
        dest_addr_ton=1,
        dest_addr_npi=1,
        data_coding=coding,
        short_message=payload,
        registered_delivery=1,
        **kw,
    )


async def send_all(client: EsmeClient, pdus: list[SubmitSm]) -> list[str]:
    futures = []
    for pdu in pdus:
        await client.wait_for_slot()
        futures.append(client.send_nowait(pdu))
    resps = await asyncio.gather(*futures)
    assert all(r.command_status == 0 for r in resps)
    return [r.message_id for r in resps]  # type: ignore[attr-defined]


async def until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def is_receipt(pdu: DeliverSm) -> bool:
    return bool(pdu.esm_class & EsmClass.DELIVERY_RECEIPT)


def ends_a_text(pdu: DeliverSm) -> bool:
    """An MO deliver_sm that is a whole text or the last part of one."""
    if is_receipt(pdu):
        return False
    if not pdu.esm_class & EsmClass.UDHI:
        return True
    info, _, _ = parse_udh(pdu.short_message)
    return info is not None and info.seq == info.total


# --- replies go through the serving operator's listener --------------------------------------


async def test_replies_arrive_on_the_serving_operators_binds_ported_included() -> None:
    cfg = SmscConfig(
        operators=[OperatorConfig(name=name, port=0) for name in OPERATORS],
        population=PopulationConfig(enabled=True, size=200_000, seed=11, ported_share=0.3, **EAGER),
        behaviour=EAGER_BEHAVIOUR,
        time_scale=600.0,
    )
    smsc = SmscServer(cfg, clock=SimClock(600.0, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    got: dict[str, list[DeliverSm]] = {name: [] for name in OPERATORS}
    clients = {}
    for name in OPERATORS:
        clients[name] = await EsmeClient.connect(
            *smsc.address(name),
            on_deliver=lambda pdu, name=name: got[name].append(pdu) or 0,  # type: ignore[func-returns-value]
        )
    numbers = engine.population.sample(400, random.Random(5))
    try:
        # Everything is submitted through Vodafone's listener: the MT route says nothing
        # about where a reply comes from.
        await send_all(clients["vodafone"], [submit(n) for n in numbers])
        await until(
            lambda: (
                engine.summary().pending_replies == 0
                and sum(1 for pdus in got.values() for p in pdus if ends_a_text(p))
                >= engine.summary().sent
            ),
            20,
        )
    finally:
        for client in clients.values():
            await client.unbind()
        await smsc.stop()

    mo = {name: [p for p in pdus if not is_receipt(p)] for name, pdus in got.items()}
    texts = sum(1 for pdus in mo.values() for p in pdus if ends_a_text(p))
    assert texts == engine.summary().sent >= len(numbers)
    ported = Counter[str]()
    for name, pdus in mo.items():
        assert pdus, f"no reply came through {name}"
        for pdu in pdus:
            sub = engine.population.profile(pdu.source_addr)
            assert sub.operator.value == name, (pdu.source_addr, sub.operator, name)
            assert engine.listener_for(pdu.source_addr) == name
            assert pdu.destination_addr == "1442"
            if sub.prefix_operator is not sub.operator:
                ported[name] += 1
    # A ported number's reply comes through its new operator, not its prefix's.
    assert sum(ported.values()) > 0.15 * texts
    # Receipts still go to the account the message was submitted on.
    assert sum(map(is_receipt, got["vodafone"])) == len(numbers)
    assert not any(is_receipt(p) for name in OPERATORS[1:] for p in got[name])


def _attached(cfg: SmscConfig, operators: list[str]) -> tuple[SubscriberEngine, list[Any]]:
    engine = SubscriberEngine(cfg, SimClock(1.0, start=NOON_CAIRO))
    sent: list[Any] = []
    engine.attach(
        schedule=lambda due, fn, arg: None,
        loop_time=lambda: 0.0,
        inject=lambda *a, **kw: sent.append((a, kw)),
        operators=operators,
    )
    return engine, sent


def test_listener_mapping_and_fallback() -> None:
    pop = PopulationConfig(enabled=True, size=10_000, seed=3, listeners={"orange": "mobinil"})
    cfg = SmscConfig(
        operators=[OperatorConfig(name="vodafone", port=0), OperatorConfig(name="mobinil")],
        population=pop,
    )
    engine, _ = _attached(cfg, ["vodafone", "mobinil"])
    by_operator = {}
    for i in range(2000):
        sub = engine.population.profile_at(i)
        by_operator.setdefault(sub.operator.value, engine.listener_for(sub.msisdn))
    # Named after the operator; mapped; neither: the first listener.
    assert by_operator == {
        "vodafone": "vodafone",
        "orange": "mobinil",
        "etisalat": "vodafone",
        "we": "vodafone",
    }
    with pytest.raises(ValueError, match="no operator named"):
        SmscConfig(population=PopulationConfig(listeners={"orange": "nowhere"}))
    with pytest.raises(ValueError, match="unknown operators"):
        PopulationConfig(listeners={"mobinil": "egypt"})


# --- every fate's receipt, on the simulated clock ---------------------------------------------


def _find(pop: Population, pred: Callable[[Subscriber], bool]) -> Subscriber:
    for i in range(pop.size):
        sub = pop.profile_at(i)
        if pred(sub):
            return sub
    raise AssertionError("no such subscriber")


def _receipt_fields(pdu: DeliverSm) -> dict[str, str]:
    text = pdu.short_message.decode("ascii")
    head = text.split(" text:")[0]
    head = head.replace("submit date:", "submit_date:").replace("done date:", "done_date:")
    return dict(part.split(":", 1) for part in head.split())


def _date(text: str) -> float:
    """A receipt date: the SMSC's local time, Cairo's by default."""
    return datetime.strptime(text, "%y%m%d%H%M").replace(tzinfo=CAIRO).timestamp()


async def test_every_fate_gives_its_receipt_stat_err_and_dates_on_the_simulated_clock() -> None:
    scale = 20_000.0
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=200_000, seed=21),
        delivery=DeliveryConfig(validity=6 * 3600),
        time_scale=scale,
    )
    # The people are picked before the clock starts (at 20,000x a second of searching on
    # a loaded machine is 5.5 simulated hours); the SMSC derives the same ones.
    pop = Population(cfg.population)
    delivery = DeliveryModel(cfg.delivery)
    ok = lambda s: s.assigned and not s.barred  # noqa: E731

    def retried(sub: Subscriber, at: float = THREE_AM_CAIRO) -> bool:
        fate = delivery.fate(sub, at, "", 0)
        return fate.state is MessageState.DELIVERED and fate.attempts > 1

    def off_till_late(sub: Subscriber) -> bool:
        """Still off at 06:30: its MT, sent first, has 3.5 simulated hours (0.63 s here)
        from the clock's start to still find the handset off on a loaded box."""
        return retried(sub) and retried(sub, THREE_AM_CAIRO + 3.5 * 3600)

    dead = _find(pop, lambda s: ok(s) and s.availability is Availability.DEAD)
    cases: dict[str, tuple[Subscriber, str]] = {
        # Off at 03:00, on again in the morning: delivered on a retry.
        "night": (_find(pop, lambda s: ok(s) and s.availability is Availability.NIGHT_OFF and off_till_late(s)), ""),
        "on": (_find(pop, lambda s: ok(s) and s.availability is Availability.ALWAYS), ""),
        "unassigned": (_find(pop, lambda s: not s.assigned), ""),
        "outside": (pop.profile(next(f"2015{i:08d}" for i in range(10**8) if f"2015{i:08d}" not in pop)), ""),
        "barred": (_find(pop, lambda s: s.assigned and s.barred), ""),
        # Never on: EXPIRED at the submit's validity period (2 h) or the default (6 h).
        "dead_2h": (dead, "000000020000000R"),
        "dead_default": (
            _find(pop, lambda s: ok(s) and s.availability is Availability.DEAD and s != dead),
            "",
        ),
    }  # fmt: skip
    smsc = SmscServer(cfg, clock=SimClock(scale, start=THREE_AM_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    arrived: dict[str, float] = {}
    receipts: dict[str, DeliverSm] = {}

    def on_deliver(pdu: DeliverSm) -> int:
        if is_receipt(pdu):
            receipts[pdu.source_addr] = pdu
            arrived[pdu.source_addr] = time.monotonic()
        return 0

    client = await EsmeClient.connect("127.0.0.1", smsc.port, on_deliver=on_deliver)
    try:
        sent_at = {}
        ids = {}
        for name, (sub, validity) in cases.items():
            sent_at[name] = time.monotonic()
            (ids[name],) = await send_all(client, [submit(sub.msisdn, validity_period=validity)])
        await until(lambda: len(receipts) == len(cases), 15)
    finally:
        await client.unbind()
        await smsc.stop()

    expected_stat = {
        "on": ("DELIVRD", 0),
        "unassigned": ("UNDELIV", 1),
        "outside": ("UNDELIV", 1),
        "barred": ("REJECTD", 13),
        "night": ("DELIVRD", 0),
        "dead_2h": ("EXPIRED", 27),
        "dead_default": ("EXPIRED", 27),
    }
    for name, (sub, validity) in cases.items():
        (mt,) = engine.received_by(sub.msisdn)
        fate = engine.delivery.fate(sub, mt.time, validity, 0)
        stat, err = expected_stat[name]
        assert RECEIPT_STAT[fate.state] == stat, name
        pdu = receipts[sub.msisdn]
        fields = _receipt_fields(pdu)
        assert (fields["stat"], int(fields["err"])) == (stat, err), (name, fields)
        assert fields["id"] == ids[name] == pdu.tlvs[Tag.RECEIPTED_MESSAGE_ID]
        assert fields["dlvrd"] == ("001" if stat == "DELIVRD" else "000")
        assert pdu.tlvs[Tag.MESSAGE_STATE] == fate.state
        if err:
            assert pdu.tlvs[Tag.NETWORK_ERROR_CODE] == bytes((3, 0, err))
        else:
            assert Tag.NETWORK_ERROR_CODE not in pdu.tlvs
        # What the engine recorded: the outcome and exactly when it took effect.
        assert (mt.outcome, mt.done_time) == (stat, mt.time + fate.delay)
        # The receipt's dates are on the simulated clock: the submit date is the SMSC's
        # acceptance, the done date the fate's delay later (plus what the real timer was
        # late by, times the scale), to the minute.
        real = arrived[sub.msisdn] - sent_at[name]
        assert _date(fields["submit_date"]) == 60 * (mt.time // 60)
        done = _date(fields["done_date"])
        assert mt.time + fate.delay - 60 <= done <= mt.time + real * scale + 60, name
        # Time compression: the receipt arrives after fate.delay / scale real seconds (never
        # before; the upper bound only catches a timer on the wrong clock: a loaded box
        # runs timers late by seconds, so it is not a latency check).
        assert fate.delay / scale - 0.05 <= real <= fate.delay / scale + 10.0, (name, real)
    night = engine.delivery.fate(
        cases["night"][0], engine.received_by(cases["night"][0].msisdn)[0].time, "", 0
    )
    assert night.attempts > 1 and night.delay >= 3600  # fmt: skip
    assert engine.delivery.fate(cases["dead_2h"][0], 0.0, "000000020000000R", 0).delay == 7200
    assert engine.delivery.fate(cases["dead_default"][0], 0.0, "", 0).delay == 6 * 3600
    summary = engine.summary()
    assert summary.outcome_total("UNDELIV") == 2 and summary.outcome_total("EXPIRED") == 2
    assert summary.outcome_total("REJECTD") == 1 and summary.outcome_total("DELIVRD") == 2


# --- what a scenario asks ---------------------------------------------------------------------


async def test_every_participant_got_the_next_question_within_30_s() -> None:
    """The platform's side is played by the client: each answer to question 1 is
    followed at once by question 2 to that number. The scenario's assertion is made
    with the engine's API only (received_by / sent_by / summary)."""
    scale = 20.0  # 30 simulated seconds leave the platform 1.5 real seconds
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=100_000, seed=4, **EAGER),
        behaviour=EAGER_BEHAVIOUR,
        delivery=DeliveryConfig(network_delay=1.0, network_delay_sigma=0.3),
        time_scale=scale,
    )
    smsc = SmscServer(cfg, clock=SimClock(scale, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    q2 = "السؤال ٢: كم مرة تغسل يديك يوميا؟ ١) مرة ٢) خمس مرات"
    answered: list[str] = []
    tasks: list[asyncio.Task[list[str]]] = []
    loop = asyncio.get_running_loop()
    client: EsmeClient | None = None

    def on_deliver(pdu: DeliverSm) -> int:
        if not is_receipt(pdu) and pdu.source_addr not in answered:
            answered.append(pdu.source_addr)
            assert client is not None
            tasks.append(loop.create_task(send_all(client, [submit(pdu.source_addr, q2)])))
        return 0

    client = await EsmeClient.connect("127.0.0.1", smsc.port, on_deliver=on_deliver)
    numbers = engine.population.sample(150, random.Random(9))
    try:
        await send_all(client, [submit(n) for n in numbers])
        await until(lambda: len(answered) == len(numbers), 15)
        await until(lambda: engine.summary().received == 2 * len(numbers), 15)
    finally:
        await client.unbind()
        await smsc.stop()

    late = []
    for number in numbers:
        first_mt, second_mt = engine.received_by(number)[:2]
        answer = engine.sent_by(number)[0]
        assert first_mt.text == QUESTION and second_mt.text == q2
        assert first_mt.done_time is not None and second_mt.done_time is not None
        assert first_mt.done_time <= answer.time <= second_mt.time <= second_mt.done_time
        if second_mt.done_time - answer.time > 30:
            late.append(number)
    assert not late
    summary = engine.summary()
    assert summary.received == 2 * len(numbers)
    assert summary.outcome_total("DELIVRD") == 2 * len(numbers)
    assert summary.sent == sum(len(engine.sent_by(n)) for n in numbers) >= len(numbers)
    assert sum(summary.replies_by_responsiveness.values()) == summary.sent
    assert set(summary.replies_by_responsiveness) == {"eager"}
    assert sum(sum(k.values()) for k in summary.replies.values()) == summary.sent
    assert summary.touched == len(numbers) and summary.population == 100_000


def test_history_is_bounded_per_subscriber() -> None:
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=1000, history_per_subscriber=3))
    engine, _ = _attached(cfg, ["egypt"])
    number = engine.population.msisdn(0)
    for i in range(5):
        engine.store.record_mt(number, float(i), f"m{i}")
    engine.store.record_mo(number, 9.0, "reply")
    assert [e.text for e in engine.received_by("0" + number[2:])] == ["m3", "m4"]
    assert [e.text for e in engine.sent_by("+" + number)] == ["reply"]
    assert [e.text for e in engine.received_by(number, limit=1)] == ["m4"]
    assert engine.received_by(engine.population.msisdn(1)) == []


async def test_stop_opts_out_and_nothing_more_is_answered() -> None:
    scale = 600.0
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=50_000, seed=8, **EAGER),
        behaviour=EAGER_BEHAVIOUR.model_copy(update={"stop_share": 1.0}),
        time_scale=scale,
    )
    smsc = SmscServer(cfg, clock=SimClock(scale, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    mo: list[DeliverSm] = []
    client = await EsmeClient.connect(
        "127.0.0.1",
        smsc.port,
        on_deliver=lambda p: 0 if is_receipt(p) else mo.append(p) or 0,  # type: ignore[func-returns-value]
    )
    numbers = engine.population.sample(40, random.Random(2))
    try:
        await send_all(client, [submit(n) for n in numbers])
        await until(lambda: len(mo) == len(numbers), 15)
        await send_all(client, [submit(n, "سؤال جديد: ١) نعم ٢) لا") for n in numbers])
        await until(lambda: engine.summary().received == 2 * len(numbers), 5)
        # Replies come within seconds of simulated time; wait ten simulated minutes.
        await asyncio.sleep(600 / scale)
    finally:
        await client.unbind()
        await smsc.stop()
    assert all(is_stop(decode_text(p.short_message, p.data_coding)) for p in mo)
    assert len(mo) == len(numbers)
    summary = engine.summary()
    assert summary.opted_out == len(numbers)
    assert summary.reply_total("stop") == len(numbers) == summary.sent
    for n in numbers:
        assert engine.store.is_opted_out(n) is True
        assert len(engine.received_by(n)) == 2 and len(engine.sent_by(n)) == 1


# --- spontaneous traffic ----------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_spontaneous_traffic_follows_the_rate_and_the_daily_shape() -> None:
    size, per_day, step = 200_000, 0.5, 60.0
    cfg = SmscConfig(
        population=PopulationConfig(enabled=True, size=size, seed=5),
        behaviour=BehaviourConfig(spontaneous_per_day=per_day),
    )
    mono = FakeMonotonic()
    engine = SubscriberEngine(cfg, SimClock(1.0, start=MIDNIGHT_CAIRO, monotonic=mono))
    sent: list[tuple[str, str, dict[str, Any]]] = []
    engine.attach(
        schedule=lambda due, fn, arg: None,
        loop_time=mono,
        inject=lambda source, text, **kw: sent.append((source, text, kw)),
        operators=list(OPERATORS),
    )
    by_hour = Counter[int]()
    assert engine.spontaneous_tick() == 0  # the first tick only starts the count
    for _ in range(int(86400 / step)):
        mono.t += step
        by_hour[int(local_hour(engine.clock.now())) % 24] += engine.spontaneous_tick()
    assert sum(by_hour.values()) == len(sent) == engine.spontaneous_sent

    # Who can send at each hour: assigned, not barred, handset on (estimated from a
    # sample; its sampling error is part of the tolerance).
    pop = engine.population
    sample = [pop.profile_at(i) for i in random.Random(1).sample(range(size), 5_000)]
    sample = [s for s in sample if s.assigned and not s.barred]
    n_sample = 5_000
    shape = cfg.behaviour.spontaneous_shape
    mean_shape = sum(shape) / 24
    for hour in range(24):
        # Averaged over the hour: handsets come on and go off at minutes of their own.
        times = [MIDNIGHT_CAIRO + hour * 3600 + 150 + 300 * k for k in range(12)]
        p = sum(handset_on(s, at) for s in sample for at in times) / (n_sample * len(times))
        expected = size * per_day / 24 * shape[hour] / mean_shape * p
        tol = 5 * math.sqrt(expected) + expected * 5 * math.sqrt((1 - p) / (p * n_sample))
        assert abs(by_hour[hour] - expected) < tol, (hour, by_hour[hour], expected)
    # The evening peak is many times the small hours.
    assert by_hour[21] > 10 * by_hour[3]

    for source, text, kw in sent[:2000]:
        sub = pop.profile(source)
        assert sub.index >= 0 and sub.assigned and not sub.barred
        assert kw["operator"] == sub.operator.value and kw["destination"] == "1442"
        assert isinstance(text, str)
    summary = engine.summary()
    assert summary.spontaneous == summary.reply_total(SPONTANEOUS) == len(sent)
    assert engine.store.aggregate().mo == len(sent)
    assert len({t for _, t, _ in sent}) > 50  # not one canned text


def test_the_daily_shape_comes_from_the_config() -> None:
    mono = FakeMonotonic()
    night_owls = [0.0] * 24
    night_owls[2] = 1.0  # everything between 02:00 and 03:00 Cairo time
    cfg = SmscConfig(
        population=PopulationConfig(enabled=True, size=100_000, seed=5),
        behaviour=BehaviourConfig(spontaneous_per_day=0.2, spontaneous_shape=night_owls),
    )
    engine = SubscriberEngine(cfg, SimClock(1.0, start=MIDNIGHT_CAIRO, monotonic=mono))
    engine.attach(
        schedule=lambda *a: None, loop_time=mono, inject=lambda *a, **k: None, operators=["egypt"]
    )
    by_hour = Counter[int]()
    engine.spontaneous_tick()
    for _ in range(24 * 12):
        mono.t += 300
        by_hour[int(local_hour(engine.clock.now())) % 24] += engine.spontaneous_tick()
    assert all(n == 0 for hour, n in by_hour.items() if hour != 2)
    # A whole day's 20,000 attempts in one hour (fewer sent: handsets off at night).
    assert 0.3 * 20_000 < by_hour[2] < 20_000
    with pytest.raises(ValueError, match="24 hourly weights"):
        BehaviourConfig(spontaneous_shape=[1.0] * 23)


def test_spontaneous_traffic_is_off_by_default() -> None:
    mono = FakeMonotonic()
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=100_000))
    engine = SubscriberEngine(cfg, SimClock(1.0, start=NOON_CAIRO, monotonic=mono))
    engine.attach(
        schedule=lambda *a: None,
        loop_time=mono,
        inject=lambda *a, **k: None,
        operators=["egypt"],
    )
    engine.spontaneous_tick()
    mono.t += 86400
    assert engine.spontaneous_tick() == 0


# --- a message in parts reaches a pluggable model whole ---------------------------------------


class EchoLength:
    """A scripted model (a scenario's own): answers every message with its length."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def react(self, sub: Subscriber, text: str, received_at: float, seq: int) -> list[Reply]:
        self.seen.append((text, seq))
        return [Reply(2.0, f"len {len(text)} #{seq}", ReplyKind.FEEDBACK)]

    def spontaneous_text(self, sub: Subscriber, rng: random.Random) -> str:
        return "hello"


async def test_a_three_part_message_reaches_a_plugged_in_model_once_and_whole() -> None:
    scale = 600.0
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=20_000, seed=6, **EAGER),
        time_scale=scale,
    )
    smsc = SmscServer(cfg, clock=SimClock(scale, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    model = EchoLength()
    engine.behaviour = model
    long_text = (
        "وزارة التضامن الاجتماعي: نذكركم بأن صرف دعم تكافل وكرامة يبدأ يوم الأحد القادم "
        "في جميع مكاتب البريد. برجاء إحضار بطاقة الرقم القومي. هل تعرف أقرب مكتب بريد؟ "
        "١) نعم ٢) لا"
    )
    coding, payload = choose_coding(long_text)
    parts = split_message(payload, alphabet_of(coding), Concat.UDH8, 77)
    assert len(parts) == 3
    mo: list[DeliverSm] = []
    client = await EsmeClient.connect(
        "127.0.0.1",
        smsc.port,
        on_deliver=lambda p: 0 if is_receipt(p) else mo.append(p) or 0,  # type: ignore[func-returns-value]
    )
    numbers = engine.population.sample(5, random.Random(3))
    try:
        for number in numbers:
            ids = await send_all(
                client,
                [
                    SubmitSm(
                        source_addr="1442",
                        source_addr_ton=3,
                        destination_addr=number,
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        esm_class=EsmClass.UDHI,
                        data_coding=coding,
                        short_message=part.body,
                        registered_delivery=1 if part.seq == 1 else 0,
                    )
                    for part in parts
                ],
            )
            (mt,) = engine.received_by(number)
            assert mt.text == long_text and mt.message_id == ids[0]
        await until(lambda: len(mo) == len(numbers), 10)
    finally:
        await client.unbind()
        await smsc.stop()
    assert model.seen == [(long_text, 0)] * len(numbers)
    assert sorted(p.source_addr for p in mo) == sorted(numbers)
    assert {decode_text(p.short_message, p.data_coding) for p in mo} == {f"len {len(long_text)} #0"}
    assert engine.summary().reply_total("feedback") == len(numbers)


def test_describe_gives_profile_name_counters_and_history() -> None:
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=1000, seed=2))
    engine, _ = _attached(cfg, ["egypt"])
    number = engine.population.msisdn(7)
    assert engine.describe(number)["counters"] is None
    engine.store.record_mt(number, 5.0, "q", "42", "DELIVRD", 8.0)
    engine.store.record_mo(number, 9.0, "1")
    info = engine.describe("0" + number[2:])
    sub = engine.population.profile(number)
    assert info["profile"]["msisdn"] == number and info["profile"]["index"] == 7
    assert info["profile"]["operator"] == sub.operator.value
    assert info["name"] == engine.population.name(number) and len(info["name"].split()) >= 3
    assert info["counters"]["mt"] == 1 and info["counters"]["mo"] == 1
    assert [(e["direction"], e["text"], e["done_time"]) for e in info["history"]] == [
        ("mt", "q", 8.0),
        ("mo", "1", None),
    ]


async def test_every_number_form_a_gateway_sends_reaches_the_same_person() -> None:
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=50_000, seed=12),
        time_scale=600.0,
    )
    smsc = SmscServer(cfg, clock=SimClock(600.0, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    sub = _find(
        engine.population,
        lambda s: s.assigned and not s.barred and s.availability is Availability.ALWAYS,
    )
    national = "0" + sub.msisdn[2:]
    forms = [(sub.msisdn, 1), (national, 2), ("+" + sub.msisdn, 1), (national[1:], 2)]
    receipts: list[DeliverSm] = []
    client = await EsmeClient.connect(
        "127.0.0.1",
        smsc.port,
        on_deliver=lambda p: receipts.append(p) or 0 if is_receipt(p) else 0,  # type: ignore[func-returns-value]
    )
    try:
        for addr, ton in forms:
            pdu = submit(addr, "info: no question here")
            pdu.dest_addr_ton = ton
            await send_all(client, [pdu])
        await until(lambda: len(receipts) == len(forms), 10)
    finally:
        await client.unbind()
        await smsc.stop()
    assert [e.text for e in engine.received_by(sub.msisdn)] == ["info: no question here"] * 4
    assert all(b"stat:DELIVRD" in r.short_message for r in receipts)
    # Each receipt names the handset as the submit did.
    assert sorted(r.source_addr for r in receipts) == sorted(a for a, _ in forms)
    assert engine.summary().touched == 1


def test_waiting_replies_share_a_timer_per_slot_and_never_go_early() -> None:
    mono = FakeMonotonic()
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=10_000, seed=1, **EAGER))
    engine = SubscriberEngine(cfg, SimClock(1.0, start=NOON_CAIRO, monotonic=mono))
    engine.behaviour = EchoLength()  # every message: one reply 2.0 simulated s later
    timers: list[tuple[float, Callable[[Any], None], Any]] = []
    sent: list[tuple[str, str]] = []
    engine.attach(
        schedule=lambda due, fn, arg: timers.append((due, fn, arg)),
        loop_time=mono,
        inject=lambda source, text, **kw: sent.append((source, text)),
        operators=["egypt"],
    )
    numbers = [engine.population.msisdn(i) for i in range(6)]
    wanted = []
    delivered = []
    for i, number in enumerate(numbers):
        mono.t = 0.3 * i  # submits 0.3 s apart; reply due network delay + 2 s later
        msg = Message(str(i + 1), "rapidpro", "1442", 3, 0, number, 1, 1, 0, 0, b"q?",
                      1, engine.clock.now())  # fmt: skip
        out = engine.outcome(msg)
        msg.planned_state, msg.planned_time = out.state, msg.submit_time + out.delay
        engine.on_mt(msg)
        delivered.append(mono.t + out.delay)  # when each reaches the handset
        wanted.append(mono.t + out.delay + 2.0)  # when each reply is due, real seconds
    # Nothing is read before it reaches the handset: the messages wait, per slot too.
    assert engine.summary().pending_replies == 0
    assert sorted(due for due, _, _ in timers) == sorted({float(math.ceil(d)) for d in delivered})
    arrivals = sorted(timers, key=lambda t: t[0])
    timers.clear()
    for due, fn, key in arrivals:
        before = engine.summary().pending_replies
        mono.t = due
        fn(key)
        in_slot = [d for d in delivered if due - 1 < d <= due]
        assert engine.summary().pending_replies - before == len(in_slot)
    assert engine.summary().pending_replies == len(numbers)
    # One timer per one-second slot, at the slot's end: never before a reply in it.
    assert sorted(due for due, _, _ in timers) == sorted({float(math.ceil(w)) for w in wanted})
    for due, fn, key in sorted(timers, key=lambda t: t[0]):
        before = len(sent)
        mono.t = due
        fn(key)
        in_slot = [w for w in wanted if due - 1 < w <= due]
        assert len(sent) - before == len(in_slot)
        assert all(w <= due < w + 1 for w in in_slot)
    assert sorted(s for s, _ in sent) == sorted(numbers)
    assert engine.summary().pending_replies == 0
    assert {t for _, t in sent} == {"len 2 #0"}


# --- a BehaviourModel's replies: delays drawn at arrival, texts written when due ------------

#: One of each question kind (and none), Arabic and English.
LAZY_TEXTS = (
    QUESTION,
    "قيمي خدمة صرف تكافل وكرامة من ١ إلى ٥",
    "Did your children go to school this week? Reply YES or NO",
    "للتطوع مع الجمعيات الأهلية أرسل تطوع إلى 1442",
    "شاركنا رأيك في خدمات وزارة التضامن الاجتماعي",
    "info: no question here",
)
#: Opted out, never responsive, slow: STOP and replies waiting for hours in the mix.
LAZY_POPULATION = {
    **EAGER,
    "responsiveness_mix": {"eager": 0.5, "normal": 0.2, "never": 0.3},
    "delay_mix": {"fast": 0.4, "normal": 0.3, "slow": 0.3},
    "opted_out_share": 0.2,
}


class CountingModel(BehaviourModel):
    """The default model (its ``react`` untouched: the engine takes the fast path), noting
    what the engine asked at arrival (``timing``) and counting the texts written
    (``_what``, which ``react`` and ``reply_text`` both go through)."""

    def __init__(self, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.timed: list[tuple[Subscriber, str, float, int]] = []
        self.written = 0
        self.kept = 0  # texts written from the very profile timed (kept, not derived)
        self._timed_ids: set[int] = set()  # of the profiles in ``timed`` (alive there)

    def timing(
        self, sub: Subscriber, text: str, received_at: float, seq: int
    ) -> tuple[Prompt, int, tuple[float, ...]] | None:
        self.timed.append((sub, text, received_at, seq))
        self._timed_ids.add(id(sub))
        return super().timing(sub, text, received_at, seq)

    def reply_text(self, sub: Subscriber, prompt: Prompt, seed: int, part: int) -> Any:
        self.kept += id(sub) in self._timed_ids
        return super().reply_text(sub, prompt, seed, part)

    def _what(self, *args: Any) -> Any:
        self.written += 1
        return super()._what(*args)


def _lazy_engine(
    model: BehaviourModel, start: float = THREE_AM_CAIRO
) -> tuple[SubscriberEngine, FakeMonotonic, TimerQueue, list[tuple[str, str, str, float]]]:
    """An engine at x1 from ``start`` (03:00 Cairo: every reply waits for the morning)
    on a fake loop clock and a real timer heap; the MO it injects as (number, text,
    destination, simulated time)."""
    mono = FakeMonotonic()
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=20_000, seed=11,
                                                 **LAZY_POPULATION))  # fmt: skip
    engine = SubscriberEngine(cfg, SimClock(1.0, start=start, monotonic=mono))
    engine.behaviour = model
    timers = TimerQueue()
    sent: list[tuple[str, str, str, float]] = []
    engine.attach(
        schedule=lambda due, fn, arg: timers.push(due, fn, arg) and None,
        loop_time=mono,
        inject=lambda n, text, **kw: sent.append((n, text, kw["destination"], engine.clock.now())),
        operators=list(OPERATORS),
    )
    # Whoever opted out before the run opts in again for some: they reach the model,
    # which has them send STOP only (at opted_out_stop), as it does the never-responsive.
    for i in range(0, 20_000, 2):
        if engine.population.profile_at(i).opted_out:
            engine.store.opt_in(engine.population.msisdn(i), 0.0)
    return engine, mono, timers, sent


def _submit_all(engine: SubscriberEngine, mono: FakeMonotonic, timers: TimerQueue,
                numbers: dict[str, str], tag: str) -> None:  # fmt: skip
    """Each number gets every LAZY_TEXTS message from its source (``numbers``), 1 ms
    apart, the heap run as they go (arrivals, and any reply due meanwhile)."""
    for k, text in enumerate(LAZY_TEXTS):
        coding, payload = choose_coding(text)
        for i, (number, source) in enumerate(numbers.items()):
            mono.t += 0.001
            msg = Message(f"{tag}-{k}-{i}", "rapidpro", source, 3, 0, number, 1, 1, 0, coding,
                          payload, 1, engine.clock.now())  # fmt: skip
            out = engine.outcome(msg)
            msg.planned_state, msg.planned_time = out.state, msg.submit_time + out.delay
            engine.on_mt(msg)
            timers.run_due(mono.t)


def _run_all(mono: FakeMonotonic, timers: TimerQueue) -> None:
    while (due := timers.next_due()) is not None:
        mono.t = max(mono.t, due)
        timers.run_due(mono.t)


Expected = list[tuple[str, str, str, float, Reply, Subscriber]]


def _oracle(model: CountingModel, sources: dict[str, str], **knobs: Any) -> list[Expected]:
    """What ``react`` of a fresh model like ``model`` decides for each arrival the engine
    asked ``model`` about, per arrival: (number, text, destination, due, reply, sender)."""
    fresh = BehaviourModel(**knobs)
    return [
        [(sub.msisdn, r.text, sources[sub.msisdn], at + r.delay, r, sub)
         for r in fresh.react(sub, text, at, seq)]
        for sub, text, at, seq in model.timed
    ]  # fmt: skip


def _match(sent: list[tuple[str, str, str, float]], expected: Expected) -> None:
    """The MO injected are the replies expected, each sent within a slot (1 s) after due."""
    assert sorted(s[:3] for s in sent) == sorted(e[:3] for e in expected)
    for got, want in zip(sorted(sent), sorted(e[:4] for e in expected), strict=True):
        assert want[3] <= got[3] < want[3] + 1.0 + 1e-6, (got, want)


#: The knobs of the models of these tests: many two-part replies, and STOP.
LAZY_KNOBS: dict[str, Any] = {"double_share": 0.2, "opted_out_stop": 0.5, "never_stop": 0.3}


@pytest.mark.parametrize("start", [THREE_AM_CAIRO, NOON_CAIRO])
def test_replies_written_when_due_are_the_ones_react_decides(start: float) -> None:
    """The differential proof of the fast path: every MO the engine sends, its text
    written only when due, is one ``react`` decides for that arrival, at its time;
    two-part replies and STOP from the opted-out and never-responsive included. At
    03:00 every reply waits hours (its profile derived again when due); at noon the
    quick ones are written from the profile kept."""
    model = CountingModel(**LAZY_KNOBS)
    engine, mono, timers, sent = _lazy_engine(model, start)
    sources = {engine.population.msisdn(i): "7070" if i % 4 else "1442" for i in range(0, 3_000, 3)}
    _submit_all(engine, mono, timers, sources, "a")
    _run_all(mono, timers)
    assert engine.summary().pending_replies == 0
    per_arrival = _oracle(model, sources, **LAZY_KNOBS)
    expected = [e for es in per_arrival for e in es]
    _match(sent, expected)
    assert model.written == len(sent)  # once each: when due
    # The same by kind, operator and responsiveness, and in each sender's history.
    kinds = Counter((sub.operator, sub.responsiveness, r.kind.value) for *_, r, sub in expected)
    assert engine.mo_counts == kinds
    assert engine.summary().sent == len(sent)
    kept = 0  # the history keeps each sender's newest entries, MT and MO together
    for number in list(sources)[:100]:
        mine = sorted((s[3], s[1]) for s in sent if s[0] == number)
        history = sorted((e.time, e.text) for e in engine.sent_by(number))
        assert history == mine[len(mine) - len(history) :]
        kept += len(history)
    assert kept > 20
    # Not vacuous: two-part replies, STOP from both kinds of silent people, waits of hours.
    stops = [sub for *_, r, sub in expected if r.kind is ReplyKind.STOP]
    assert sum(sub.opted_out for sub in stops) > 5
    assert sum(sub.responsiveness is Responsiveness.NEVER for sub in stops) > 5
    assert sum(len(es) == 2 for es in per_arrival) > 20
    assert max(e[4].delay for e in expected) > 3 * 3600
    assert {s[2] for s in sent} == {"1442", "7070"}
    if start == THREE_AM_CAIRO:
        assert model.kept == 0
    else:
        assert 0.05 * len(sent) < model.kept < 0.95 * len(sent)


def test_replies_not_yet_due_have_no_text_yet() -> None:
    """At arrival only the delays are drawn: until a reply is due its text is not
    written (the model writes as many texts as replies went out), however many wait."""
    model = CountingModel(**LAZY_KNOBS)
    engine, mono, timers, sent = _lazy_engine(model)
    sources = {engine.population.msisdn(i): "1442" for i in range(0, 3_000, 3)}
    _submit_all(engine, mono, timers, sources, "a")
    timers.run_due(mono.t + 5.0)  # every arrival (fates take ~ms), a few quick replies
    waiting = engine.summary().pending_replies
    assert waiting > 1000 and len(sent) < waiting
    assert model.written == len(sent)
    _run_all(mono, timers)
    assert engine.summary().pending_replies == 0
    assert len(sent) == model.written >= waiting


def test_replies_waiting_when_the_model_changes_are_written_by_the_one_that_timed_them() -> None:
    """Replies keep the model that drew their delays: one set in the meantime writes
    only its own, also when they wait in the same slot as the first one's."""
    first, second = CountingModel(**LAZY_KNOBS), CountingModel(bare_share=1.0, yes_share=0.0)
    engine, mono, timers, sent = _lazy_engine(first)
    sources = {engine.population.msisdn(i): "1442" for i in range(0, 3_000, 3)}
    _submit_all(engine, mono, timers, sources, "a")
    engine.behaviour = second
    _submit_all(engine, mono, timers, sources, "b")
    assert second.written > 0  # some of its replies landed in a slot of the first's
    _run_all(mono, timers)
    expected = [e for es in _oracle(first, sources, **LAZY_KNOBS) for e in es]
    expected += [e for es in _oracle(second, sources, bare_share=1.0, yes_share=0.0) for e in es]
    _match(sent, expected)


class Shouting(BehaviourModel):
    """A model with its own ``react``: the engine must ask it, not the fast path."""

    def react(self, sub: Subscriber, text: str, received_at: float, seq: int) -> list[Reply]:
        return [
            Reply(r.delay, r.text.upper() + "!", r.kind, r.value)
            for r in super().react(sub, text, received_at, seq)
        ]


def test_a_model_with_its_own_react_decides_its_replies_whole() -> None:
    model = Shouting(**LAZY_KNOBS)
    engine, mono, timers, sent = _lazy_engine(model)  # type: ignore[arg-type]
    sources = {engine.population.msisdn(i): "1442" for i in range(0, 600, 3)}
    _submit_all(engine, mono, timers, sources, "a")
    _run_all(mono, timers)
    assert sent and all(text.endswith("!") for _, text, _, _ in sent)


# --- cancel_sm, replace_sm and alert_notification with the subscribers on -------------------

#: The question as replace_sm rewrites it (same data_coding as the original: UCS-2).
NEW_QUESTION = "تصحيح: هل استلمت دعم كرامة هذا الشهر؟ ١) نعم ٢) لا"


async def _echo_smsc() -> tuple[SmscServer, SubscriberEngine, EchoLength]:
    """Started SMSC at x600 whose handsets take 600 simulated seconds (one real second to
    cancel or replace), its engine, and the EchoLength model behind its people."""
    scale = 600.0
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=20_000, seed=8, **EAGER),
        delivery=DeliveryConfig(network_delay=600.0, network_delay_sigma=0.0),
        time_scale=scale,
    )
    smsc = SmscServer(cfg, clock=SimClock(scale, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    model = EchoLength()
    engine.behaviour = model
    return smsc, engine, model


async def test_a_cancelled_message_is_never_read_and_a_replaced_one_is_read_anew() -> None:
    # 600 simulated seconds to each handset at x600: one real second to cancel or replace.
    smsc, engine, model = await _echo_smsc()
    kept, cancelled, replaced, long_cancelled = engine.population.sample(4, random.Random(9))
    receipts: dict[str, list[DeliverSm]] = {}
    mo: list[DeliverSm] = []

    def on_deliver(pdu: DeliverSm) -> int:
        if is_receipt(pdu):
            receipts.setdefault(pdu.source_addr, []).append(pdu)
        else:
            mo.append(pdu)
        return 0

    client = await EsmeClient.connect("127.0.0.1", smsc.port, on_deliver=on_deliver)
    coding, payload = choose_coding(QUESTION * 3)
    parts = split_message(payload, alphabet_of(coding), Concat.UDH8, 41)
    assert len(parts) > 1
    try:
        ids = await send_all(client, [submit(kept), submit(cancelled), submit(replaced)])
        await send_all(
            client,
            [
                SubmitSm(
                    source_addr="1442",
                    source_addr_ton=3,
                    destination_addr=long_cancelled,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    esm_class=EsmClass.UDHI,
                    data_coding=coding,
                    short_message=part.body,
                    registered_delivery=1,
                )
                for part in parts
            ],
        )
        resp = await client.request(CancelSm(message_id=ids[1], source_addr="1442"))
        assert resp.command_status == 0
        resp = await client.request(
            ReplaceSm(
                message_id=ids[2],
                source_addr="1442",
                registered_delivery=1,
                short_message=NEW_QUESTION.encode("utf-16-be"),
            )
        )
        assert resp.command_status == 0
        # Without a message_id: every pending part from 1442 to that handset.
        resp = await client.request(
            CancelSm(source_addr="1442", destination_addr=long_cancelled, dest_addr_ton=1)
        )
        assert resp.command_status == 0
        await until(lambda: len(mo) >= 2, 10)
        # Well past every planned delivery (and a reply 2 s after it): nothing more comes.
        await asyncio.sleep(1.5)
    finally:
        await client.unbind()
        await smsc.stop()
    # Read: the kept message as sent, the replaced one with its new text, each once.
    assert sorted(model.seen) == sorted([(QUESTION, 0), (NEW_QUESTION, 0)])
    answers = {p.source_addr: decode_text(p.short_message, p.data_coding) for p in mo}
    assert len(mo) == 2
    assert answers == {kept: f"len {len(QUESTION)} #0", replaced: f"len {len(NEW_QUESTION)} #0"}
    # The SMSC's side: no receipt after cancel_sm; the replaced text quoted in its receipt.
    assert set(receipts) == {kept, replaced}
    assert b"stat:DELIVRD" in receipts[replaced][0].short_message
    quoted = NEW_QUESTION[:20].encode("ascii", "replace")  # Appendix B's text: ASCII
    assert receipts[replaced][0].short_message.endswith(b" text:" + quoted)
    # What the engine recorded: the cancelled ones DELETED, the replaced one's new text.
    (mt,) = engine.received_by(cancelled)
    assert (mt.text, mt.outcome) == (QUESTION, "DELETED")
    assert mt.done_time is not None and mt.done_time < mt.time + 600
    (mt,) = engine.received_by(long_cancelled)
    assert (mt.text, mt.outcome) == (QUESTION * 3, "DELETED")
    (mt,) = engine.received_by(replaced)
    assert (mt.text, mt.outcome) == (NEW_QUESTION, "DELIVRD")
    assert engine.sent_by(cancelled) == [] and engine.sent_by(long_cancelled) == []
    summary = engine.summary()
    assert summary.outcome_total("DELIVRD") == 2
    assert summary.outcome_total("DELETED") == 1 + len(parts)
    assert summary.pending_replies == 0


async def test_an_alert_notification_follows_a_failed_set_dpf_message_when_the_handset_is_on() -> (
    None
):
    scale = 10_000.0
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=200_000, seed=21),
        time_scale=scale,
    )
    # Pick the people before the clock starts: at 10,000x, a second spent searching on
    # a loaded machine is three simulated hours, and "off for the first hour" no longer
    # holds when the submits land. The SMSC derives the same people from the config.
    pop = Population(cfg.population)
    validity = "000000001000000R"  # 10 minutes: every retry by then finds the handset off

    def off_until_failure(s: Subscriber) -> bool:
        # Off for the first three hours, whenever in them the submit lands (at 10,000x
        # connecting and submitting on a loaded box can take a simulated hour).
        return (
            s.assigned
            and not s.barred
            and all(not handset_on(s, THREE_AM_CAIRO + t) for t in range(0, 3 * 3600, 60))
        )

    night = _find(pop, lambda s: s.availability is Availability.NIGHT_OFF and off_until_failure(s))
    often = _find(pop, lambda s: s.availability is Availability.OFTEN_OFF and off_until_failure(s))
    dead = _find(pop, lambda s: s.availability is Availability.DEAD and off_until_failure(s))
    quiet = _find(
        pop,
        lambda s: s.availability is Availability.NIGHT_OFF and off_until_failure(s) and s != night,
    )
    smsc = SmscServer(cfg, clock=SimClock(scale, start=THREE_AM_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    assert engine.population.profile(night.msisdn) == night
    dpf = {Tag.SET_DPF: 1}
    seen: dict[str, float] = {}
    client = await EsmeClient.connect("127.0.0.1", smsc.port)
    try:
        await send_all(
            client,
            [
                submit(night.msisdn, validity_period=validity, tlvs=dpf),
                submit(often.msisdn, validity_period=validity, tlvs=dpf),
                submit(dead.msisdn, validity_period=validity, tlvs=dpf),
                submit(quiet.msisdn, validity_period=validity),  # no set_dpf: no alert
            ],
        )

        def arrived() -> bool:
            for alert in client.alerts:
                seen.setdefault(alert.source_addr, smsc.clock.now())
            return len(seen) >= 2

        await until(arrived, 15)
        await until(lambda: smsc.clock.now() > THREE_AM_CAIRO + 9 * 3600, 10)  # all are on
    finally:
        await client.unbind()
        await smsc.stop()
    assert sorted(seen) == sorted([night.msisdn, often.msisdn])
    assert len(client.alerts) == 2
    for sub in (night, often):
        (alert,) = [a for a in client.alerts if a.source_addr == sub.msisdn]
        assert alert.esme_addr == "1442" and alert.esme_addr_ton == 3
        assert alert.tlvs[Tag.MS_AVAILABILITY_STATUS] == 0
        (mt,) = engine.received_by(sub.msisdn)
        failed_at = int(mt.time + 600)
        assert mt.outcome == "EXPIRED" and mt.done_time == mt.time + 600
        # Sent when the handset came back on: on then, off every minute from the failure
        # until shortly before (the loop's latency, times the scale, is the slack).
        at = seen[sub.msisdn]
        assert handset_on(sub, at)
        slack = 0.5 * scale
        assert all(not handset_on(sub, t) for t in range(failed_at, int(at - slack), 60))
        assert at - failed_at > 1800, "the handset was off for a while"
    # The dead SIM's flag stays pending: its handset never comes back.
    assert smsc.operator().delivery_pending_flags() == {dead.msisdn: ["rapidpro"]}
    assert engine.alerts_planned == 2


async def test_a_replaced_part_of_a_long_message_is_read_in_its_place() -> None:
    smsc, engine, model = await _echo_smsc()
    (number,) = engine.population.sample(1, random.Random(4))
    words = ["أ" * 60, "ب" * 60, "ت" * 60]
    coding, payload = choose_coding("".join(words))
    parts = split_message(payload, alphabet_of(coding), Concat.UDH8, 9)
    assert len(parts) == 3
    mo: list[DeliverSm] = []
    client = await EsmeClient.connect(
        "127.0.0.1",
        smsc.port,
        on_deliver=lambda p: 0 if is_receipt(p) else mo.append(p) or 0,  # type: ignore[func-returns-value]
    )
    try:
        ids = await send_all(
            client,
            [
                SubmitSm(
                    source_addr="1442",
                    source_addr_ton=3,
                    destination_addr=number,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    esm_class=EsmClass.UDHI,
                    data_coding=coding,
                    short_message=part.body,
                    registered_delivery=1,
                )
                for part in parts
            ],
        )
        udh = parts[1].body[: 1 + parts[1].body[0]]
        new_middle = "ث" * 60
        resp = await client.request(
            ReplaceSm(
                message_id=ids[1],
                source_addr="1442",
                registered_delivery=1,
                short_message=udh + new_middle.encode("utf-16-be"),
            )
        )
        assert resp.command_status == 0
        await until(lambda: len(mo) == 1, 10)
        await asyncio.sleep(0.3)
    finally:
        await client.unbind()
        await smsc.stop()
    first, _, last = (decode_text(parse_udh(part.body)[2], coding) for part in parts)
    text = first + new_middle + last  # the handset joins the parts as they are now
    assert model.seen == [(text, 0)]
    (mt,) = engine.received_by(number)
    assert (mt.text, mt.outcome, mt.message_id) == (text, "DELIVRD", ids[0])


def test_the_mt_log_and_the_history_hold_what_the_engine_was_given() -> None:
    """A one-part message takes the engine's own path (no ``ReceivedMt`` per message):
    the SMSC's MT log still shows it as ``MtRecorder`` alone would, and every fate's
    stat reaches the history; a concatenated one goes through the reassembler."""
    cfg = SmscConfig(population=PopulationConfig(enabled=True, size=50_000, seed=3))
    engine, _ = _attached(cfg, list(OPERATORS))
    plain = MtRecorder()
    pop = engine.population
    sent: list[Message] = []
    for i in range(300):
        to = pop.msisdn(i) if i % 3 else "0" + pop.msisdn(i)[2:]  # national form too
        coding, payload = choose_coding(f"msg {i}")
        msg = Message(str(9_000 + i), "rapidpro", "1442", 3, 0, to, 1, 1, 0, coding,
                      payload, 1, NOON_CAIRO + i)  # fmt: skip
        out = engine.outcome(msg)
        msg.planned_state, msg.planned_time = out.state, msg.submit_time + out.delay
        engine.on_mt(msg)
        plain.on_mt(msg)
        sent.append(msg)
    coding, payload = choose_coding("word " * 60)
    udh = split_message(payload, alphabet_of(coding), Concat.UDH8, 5)
    assert len(udh) > 1
    for n, part in enumerate(udh):
        msg = Message(str(20_000 + n), "rapidpro", "1442", 3, 0, pop.msisdn(1000), 1, 1,
                      EsmClass.UDHI, coding, part.body, 1, NOON_CAIRO + 400)  # fmt: skip
        out = engine.outcome(msg)
        msg.planned_state, msg.planned_time = out.state, msg.submit_time + out.delay
        engine.on_mt(msg)
        plain.on_mt(msg)
    assert engine.recorder.messages() == plain.messages()
    assert engine.recorder.messages(sent[4].destination_addr) == plain.messages(
        sent[4].destination_addr
    )
    assert engine.recorder.completed == plain.completed == 301
    for msg in sent:
        (entry,) = engine.received_by(msg.destination_addr)
        assert entry.text == f"msg {sent.index(msg)}"
        assert entry.message_id == msg.message_id
        assert entry.outcome == RECEIPT_STAT[MessageState(msg.planned_state)]
        assert entry.done_time == msg.planned_time
    assert sum(engine.summary().outcome_total(s) for s in RECEIPT_STAT.values()) == 300 + len(udh)
