"""Black box: a client sends a numbered quiz question to 10,000 random subscribers over
SMPP; what comes back (receipts and replies) shows the configured mix, and every reply
is exactly the one the population, delivery and behaviour models decided."""

from __future__ import annotations

import asyncio
import calendar
import random
from collections import Counter

import pytest

from simulator.clock import SimClock
from simulator.config import BehaviourConfig, OperatorConfig, PopulationConfig, SmscConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass, MessageState
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smpp.segmentation import Reassembler, parse_udh
from simulator.smpp.text import choose_coding, decode_text
from simulator.smsc.server import SmscServer
from simulator.subscribers.behaviour import ReplyKind, is_stop, parse_number

pytestmark = pytest.mark.timeout(120)

NOON_CAIRO = calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0))
QUESTION = "كورونا: ما أهم وقاية؟ ١) غسل اليدين ٢) مضاد حيوي ٣) ماء ساخن"
SCALE = 7200.0  # two simulated hours per real second
N = 10_000


async def test_quiz_to_10k_random_subscribers_shows_the_configured_mix() -> None:
    cfg = SmscConfig(
        operators=[OperatorConfig(port=0)],
        population=PopulationConfig(enabled=True, size=1_000_000, seed=7),
        behaviour=BehaviourConfig(answer_keys={"كورونا": 1}),
        time_scale=SCALE,
    )
    smsc = SmscServer(cfg, clock=SimClock(SCALE, start=NOON_CAIRO))
    await smsc.start()
    engine = smsc.subscribers
    assert engine is not None
    replies: list[tuple[str, str]] = []

    parts = Reassembler()

    def on_deliver(pdu: DeliverSm) -> int:
        if pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
            return 0
        body = pdu.short_message
        if pdu.esm_class & EsmClass.UDHI:  # a long reply in parts
            info, _, body = parse_udh(body)
            assert info is not None
            whole = parts.add(pdu.source_addr, info.ref, info.total, info.seq, body, 0.0)
            if whole is None:
                return 0
            body = whole
        replies.append((pdu.source_addr, decode_text(body, pdu.data_coding)))
        return 0

    client = await EsmeClient.connect("127.0.0.1", smsc.port, on_deliver=on_deliver, window=50)
    numbers = engine.population.sample(N, random.Random(42))
    coding, payload = choose_coding(QUESTION)
    assert len(payload) <= 140  # one part
    pending = []
    for number in numbers:
        await client.wait_for_slot()
        pending.append(
            client.send_nowait(
                SubmitSm(
                    source_addr="1442",
                    source_addr_ton=3,
                    destination_addr=number,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    data_coding=coding,
                    short_message=payload,
                    registered_delivery=1,
                )
            )
        )
    assert all(r.command_status == 0 for r in await asyncio.gather(*pending))
    await asyncio.sleep(12)  # ~24 simulated hours
    cutoff = smsc.clock.now()
    receipts = [p for p in client.delivered if p.esm_class & EsmClass.DELIVERY_RECEIPT]
    await client.unbind()
    await smsc.stop()

    # --- what the models decided, computed independently of the SMPP path ---------------
    oracle: Counter[tuple[str, str]] = Counter()
    due_early: Counter[tuple[str, str]] = Counter()
    kinds: Counter[ReplyKind] = Counter()
    fates: Counter[MessageState] = Counter()
    eligible = decided = 0  # delivered and not opted out; of them, those who answer
    for number in numbers:
        sub = engine.population.profile(number)
        # The simulated time the SMSC accepted it (10,000 submits take simulated hours).
        submitted = next(e.time for e in engine.store.history(number) if e.direction == "mt")
        fate = engine.delivery.fate(sub, submitted, "", 0)
        fates[fate.state] += 1
        if fate.state is not MessageState.DELIVERED or sub.opted_out:
            continue
        received = submitted + fate.delay
        eligible += 1
        decided_replies = engine.behaviour.react(sub, QUESTION, received, 0)
        decided += bool(decided_replies)
        for reply in decided_replies:
            oracle[(number, reply.text)] += 1
            kinds[reply.kind] += 1
            if received + reply.delay < cutoff - 4 * 3600:
                due_early[(number, reply.text)] += 1

    got = Counter(replies)
    # Every reply that came over SMPP is one the models decided, once...
    assert not got - oracle, list((got - oracle).items())[:5]
    # ...and every reply due well before the cutoff arrived.
    assert not due_early - got, list((due_early - got).items())[:5]

    # --- the mix, against the configuration: each share within 5 standard errors of what
    # the configuration implies, for the sample it was measured on -------------------------
    pop, beh = cfg.population, cfg.behaviour

    def near(count: int, n: int, p: float) -> bool:
        return abs(count / n - p) < 5 * (p * (1 - p) / n) ** 0.5

    stats = Counter(p.short_message.split(b"stat:")[1][:7].decode() for p in receipts)
    assert near(stats["UNDELIV"], N, pop.unassigned_share)
    # Barred applies to assigned lines (an unassigned one is UNDELIV first).
    assert near(stats["REJECTD"], N, (1 - pop.unassigned_share) * pop.barred_share)
    assert stats["DELIVRD"] > 0.85 * N

    # No reply: who answers at all, among those the question reached. The never-responsive
    # only ever send STOP (at stop_share).
    never = pop.responsiveness_mix["never"] * beh.stop_share
    answer_rate = sum(
        pop.responsiveness_mix[r] * beh.reply_probability[r] for r in pop.responsiveness_mix
    )
    assert near(decided, eligible, answer_rate + never)
    # Wrong answers: the model's intent against the knowledge share...
    intended = kinds[ReplyKind.ANSWER] + kinds[ReplyKind.WRONG_ANSWER]
    assert near(kinds[ReplyKind.ANSWER], intended, beh.knowledge)
    # ...and what the platform would parse from the texts that came back (typos and long
    # texts move a few: a looser, fixed bound).
    answers = [parse_number(t) for _, t in replies]
    right, wrong = answers.count(1), sum(1 for a in answers if a in (2, 3))
    assert abs(right / (right + wrong) - beh.knowledge) < 0.05
    # Arabic-Indic digits: Arabic-script writers who type them, among replies with digits.
    with_digits = [t for _, t in replies if any(c.isdigit() for c in t)]
    indic = sum(any("٠" <= c <= "٩" for c in t) for t in with_digits)
    assert near(indic, len(with_digits), pop.script_mix["arabic"] * pop.arabic_indic_digits)
    # STOP: stop_share of the answers, plus the never-responsive's STOPs.
    stops = sum(is_stop(t) for _, t in replies)
    expected_stops = (beh.stop_share * answer_rate + never) / (answer_rate + never)
    assert near(stops, len(replies), expected_stops)
    assert kinds[ReplyKind.WRONG_ANSWER] and kinds[ReplyKind.TYPO] and kinds[ReplyKind.EMPTY]
    # Late replies exist: slow repliers answer hours after delivery.
    assert got.total() < oracle.total()
