"""Handset availability and the fate of an MT: every outcome path and its timing."""

from __future__ import annotations

import calendar
import random
from collections import Counter

import pytest

from simulator.config import DeliveryConfig, PopulationConfig
from simulator.smpp.constants import MessageState
from simulator.smpp.times import SmppTimeError, format_smpp_time, parse_smpp_time
from simulator.subscribers.delivery import DeliveryModel, handset_on, local_hour, next_on
from simulator.subscribers.population import Population
from simulator.subscribers.profile import (
    Availability,
    DelayProfile,
    Digits,
    Operator,
    Responsiveness,
    Script,
    Subscriber,
)

NOON_CAIRO = calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0))  # 12:00 in Cairo
MIDNIGHT_CAIRO = calendar.timegm((2026, 11, 23, 22, 0, 0, 0, 0, 0))  # 00:00 in Cairo


def sub(availability: Availability = Availability.ALWAYS, **kw: object) -> Subscriber:
    base: dict[str, object] = dict(
        msisdn="201001234567",
        index=7,
        operator=Operator.VODAFONE,
        prefix_operator=Operator.VODAFONE,
        assigned=True,
        barred=False,
        governorate="Cairo",
        female=True,
        literate=True,
        script=Script.ARABIC,
        digits=Digits.ARABIC_INDIC,
        responsiveness=Responsiveness.NORMAL,
        delay_profile=DelayProfile.FAST,
        availability=availability,
        opted_out=False,
        takaful=True,
        karama=False,
        entropy=0x1234_5678_9ABC_DEF0,
    )
    base.update(kw)
    return Subscriber(**base)  # type: ignore[arg-type]


model = DeliveryModel(DeliveryConfig())


def test_always_on_is_delivered_after_a_network_delay() -> None:
    fate = model.fate(sub(), NOON_CAIRO, "", salt=0)
    assert fate.state is MessageState.DELIVERED
    assert 0 < fate.delay < 60 and fate.attempts == 1 and fate.err == 0


def test_unassigned_number_is_undeliverable_with_its_error() -> None:
    fate = model.fate(sub(assigned=False), NOON_CAIRO, "", salt=0)
    assert (fate.state, fate.err) == (MessageState.UNDELIVERABLE, 1)
    assert fate.delay < 60


def test_barred_line_is_rejected() -> None:
    fate = model.fate(sub(barred=True), NOON_CAIRO, "", salt=0)
    assert (fate.state, fate.err) == (MessageState.REJECTED, 13)


def test_dead_sim_expires_at_the_validity_period() -> None:
    fate = model.fate(sub(Availability.DEAD), NOON_CAIRO, "", salt=0)
    assert fate.state is MessageState.EXPIRED and fate.err == 27
    assert fate.delay == 3 * 86400
    assert fate.attempts == 1 + len(DeliveryConfig().retry_schedule)


def test_validity_period_from_the_submit_is_honoured() -> None:
    relative = "000000020000000R"  # two hours
    fate = model.fate(sub(Availability.DEAD), NOON_CAIRO, relative, salt=0)
    assert fate.state is MessageState.EXPIRED and fate.delay == 7200
    absolute = format_smpp_time(NOON_CAIRO + 600)
    assert model.fate(sub(Availability.DEAD), NOON_CAIRO, absolute, 0).delay == pytest.approx(600)


def test_night_off_handset_gets_it_on_a_retry_in_the_morning() -> None:
    s = sub(Availability.NIGHT_OFF)
    assert not handset_on(s, MIDNIGHT_CAIRO)
    fate = model.fate(s, MIDNIGHT_CAIRO, "", salt=0)
    assert fate.state is MessageState.DELIVERED and fate.attempts > 1
    delivered_at = MIDNIGHT_CAIRO + fate.delay
    assert 5.5 <= local_hour(delivered_at) <= 12  # morning, after the retries caught it on


def test_night_off_handset_expires_when_validity_ends_before_morning() -> None:
    fate = model.fate(sub(Availability.NIGHT_OFF), MIDNIGHT_CAIRO, "000000010000000R", salt=0)
    assert fate.state is MessageState.EXPIRED and fate.delay == 3600


def test_often_off_mixes_retries_and_is_deterministic() -> None:
    fates = [
        model.fate(sub(Availability.OFTEN_OFF, entropy=e), NOON_CAIRO, "", 0) for e in range(400)
    ]
    again = [
        model.fate(sub(Availability.OFTEN_OFF, entropy=e), NOON_CAIRO, "", 0) for e in range(400)
    ]
    assert fates == again
    first_try = sum(f.attempts == 1 for f in fates) / len(fates)
    assert 0.3 < first_try < 0.5  # each 2-hour block is on with probability 0.4
    assert any(f.attempts > 2 for f in fates)
    # About seven distinct two-hour blocks in the retry schedule: 0.6**7 ~ 3 % never on.
    expired = sum(f.state is MessageState.EXPIRED for f in fates) / len(fates)
    assert 0.0 < expired < 0.08
    assert {f.state for f in fates} == {MessageState.DELIVERED, MessageState.EXPIRED}


def test_network_delay_median_follows_config() -> None:
    delays = sorted(model.network_delay(sub(entropy=e), 0) for e in range(5001))
    assert delays[2500] == pytest.approx(3.0, rel=0.1)


def test_smpp_times() -> None:
    assert parse_smpp_time("", 0) is None
    assert parse_smpp_time("261123120000008+", 0) == NOON_CAIRO
    assert parse_smpp_time("000001000000000R", 100.0) == 100.0 + 86400
    with pytest.raises(SmppTimeError):
        parse_smpp_time("2611231200", 0)
    with pytest.raises(SmppTimeError):
        parse_smpp_time("261399120000008+", 0)
    assert parse_smpp_time(format_smpp_time(NOON_CAIRO + 0.5), 0) == NOON_CAIRO + 0.5


def test_next_on_is_the_first_minute_the_handset_is_on_again() -> None:
    pop = Population(PopulationConfig(enabled=True, size=5_000, seed=4))
    rng = random.Random(2)
    checked = Counter[str]()
    for i in range(pop.size):
        sub = pop.profile_at(i)
        ts = 1_795_000_000.0 + rng.uniform(0, 86400)
        back = next_on(sub, ts)
        if not sub.assigned or sub.availability is Availability.DEAD:
            assert back is None
            continue
        assert back is not None and back >= ts and handset_on(sub, back)
        assert all(not handset_on(sub, t) for t in range(int(ts), int(back) - 1, 60))
        checked[sub.availability.value] += 1
    assert min(checked.values()) > 100 and len(checked) == 3
