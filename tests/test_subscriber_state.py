"""TouchedStore: counters, opt-out, and history bounded per subscriber and globally.

Every test runs against both implementations: the Python class (``PyTouchedStore``) and
the C one (``_cstate``), the latter skipped when it is not built or switched off.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.subscribers import state
from simulator.subscribers.state import Aggregate, Counters, HistoryEntry, PyTouchedStore

A, B, C = "201012345678", "201112345678", "201512345678"

_C_STORE = pytest.mark.skipif(
    state._CTouchedStore is None, reason="_cstate not built or switched off"
)


@pytest.fixture(
    scope="module",  # a class, never mutated: hypothesis accepts a module-scoped fixture
    params=[PyTouchedStore, pytest.param(state._CTouchedStore, marks=_C_STORE)],
    ids=["python", "c"],
)
def store_cls(request: pytest.FixtureRequest) -> type[PyTouchedStore]:
    cls: type[PyTouchedStore] = request.param
    return cls


def test_untouched_subscribers_have_nothing(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    assert len(store) == 0
    assert store.counters(A) is None
    assert store.history(A) == []
    assert store.is_opted_out(A) is None
    assert A not in store
    assert list(store) == []


def test_counters_count_each_direction_and_remember_the_last_times(
    store_cls: type[PyTouchedStore],
) -> None:
    store = store_cls()
    store.record_mt(A, 100.0, "سؤال ١", "17")
    store.record_mt(A, 160.5, "سؤال ٢", "18")
    store.record_mo(A, 170.25, "١")
    store.record_mo(B, 5.0, "hi")
    assert store.counters(A) == Counters(
        mt=2, mo=1, last_mt_time=160.5, last_mo_time=170.25, opted_out=None, opted_at=None
    )
    assert store.counters(B) == Counters(
        mt=0, mo=1, last_mt_time=None, last_mo_time=5.0, opted_out=None, opted_at=None
    )
    assert len(store) == 2 and A in store and C not in store
    assert list(store) == [A, B]


def test_history_is_newest_last_with_ids_and_outcomes(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    store.record_mt(A, 1.0, "first", "1718000000000001")
    store.record_outcome(A, "DELIVRD")
    store.record_mo(A, 2.0, "reply")
    store.record_mt(A, 3.0, "second", "00ab-UUID")
    store.record_mt(A, 4.0, "third")
    store.record_outcome(A, "EXPIRED")  # the newest MT without an outcome: "third"
    store.record_outcome(A, "UNDELIV")  # then "second"
    assert store.history(A) == [
        HistoryEntry("mt", 1.0, "first", "1718000000000001", "DELIVRD"),
        HistoryEntry("mo", 2.0, "reply"),
        HistoryEntry("mt", 3.0, "second", "00ab-UUID", "UNDELIV"),
        HistoryEntry("mt", 4.0, "third", None, "EXPIRED"),
    ]
    assert store.history(A, limit=2) == store.history(A)[-2:]
    assert store.history(B) == []


def test_message_ids_round_trip_in_every_format(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    ids = ["0", "7", "1718000000000001", "9223372036854775807", "0042", "1f3a", "ABC",
           "123456789012345678901234", "6f1c2d3e-0000-4000-8000-000000000001"]  # fmt: skip
    for i, mid in enumerate(ids):
        store.record_mt(f"2010{i:08d}", float(i), "t", mid)
    assert [store.history(f"2010{i:08d}")[0].message_id for i in range(len(ids))] == ids


def test_per_subscriber_limit(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls(history_size=1_000, per_subscriber=3)
    for t in range(10):
        store.record_mt(A, float(t), f"m{t}")
    assert [e.text for e in store.history(A)] == ["m7", "m8", "m9"]
    assert [e.text for e in store.history(A, limit=50)] == ["m7", "m8", "m9"]
    assert [e.text for e in store.history(A, limit=1)] == ["m9"]
    assert store.counters(A) is not None and store.counters(A).mt == 10  # type: ignore[union-attr]


def test_the_global_ring_overwrites_the_oldest_events(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls(history_size=5, per_subscriber=8)
    store.record_mt(A, 0.0, "a0")
    store.record_mt(A, 1.0, "a1")
    store.record_mo(B, 2.0, "b0")
    for t in range(3, 6):
        store.record_mt(C, float(t), f"c{t}")
    # Six events in a ring of five: A's first is gone, the rest are intact.
    assert [e.text for e in store.history(A)] == ["a1"]
    assert [e.text for e in store.history(B)] == ["b0"]
    assert [e.text for e in store.history(C)] == ["c3", "c4", "c5"]
    for t in range(6, 11):
        store.record_mt(C, float(t), f"c{t}")
    assert store.history(A) == [] and store.history(B) == []
    assert [e.text for e in store.history(C)] == ["c6", "c7", "c8", "c9", "c10"]
    # Counters outlive the history.
    assert store.counters(A) == Counters(2, 0, 1.0, None, None, None)
    agg = store.aggregate()
    assert (agg.events, agg.history_size, agg.mt, agg.mo, agg.touched) == (5, 5, 10, 1, 3)


def test_an_outcome_does_not_land_on_an_overwritten_event(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls(history_size=2)
    store.record_mt(A, 0.0, "a")
    store.record_mt(B, 1.0, "b1")
    store.record_mt(B, 2.0, "b2")  # A's MT is overwritten, by an MT of B's
    store.record_outcome(A, "DELIVRD")
    store.record_mt(A, 3.0, "a2")
    assert store.history(A) == [HistoryEntry("mt", 3.0, "a2")]
    assert store.history(B) == [HistoryEntry("mt", 2.0, "b2")]
    assert store.aggregate().outcomes == {"DELIVRD": 1}


def test_no_history_at_all(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls(history_size=0)
    store.record_mt(A, 1.0, "x", "1")
    store.record_outcome(A, "DELIVRD")
    assert store.history(A) == []
    assert store.counters(A) == Counters(1, 0, 1.0, None, None, None)
    with pytest.raises(ValueError):
        store_cls(history_size=-1)


def test_opt_out_and_back_in(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    store.record_mt(A, 1.0, "x")
    assert store.is_opted_out(A) is None  # touched, undecided: the profile holds
    store.opt_out(A, 50.0)
    store.opt_out(A, 51.0)  # twice: still one subscriber opted out
    assert store.is_opted_out(A) is True
    counters = store.counters(A)
    assert counters is not None and counters.opted_out is True and counters.opted_at == 51.0
    store.opt_out(B, 60.0)  # opting out touches an untouched subscriber
    assert store.is_opted_out(B) is True and len(store) == 2
    assert store.aggregate().opted_out == 2
    store.opt_in(A, 70.0)
    assert store.is_opted_out(A) is False
    agg = store.aggregate()
    assert (agg.opted_out, agg.opt_outs, agg.opt_ins) == (1, 3, 1)


def test_aggregate_counts_directions_and_outcomes(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls(history_size=3)
    for i in range(10):
        m = f"2010{i:08d}"
        store.record_mt(m, float(i), "broadcast", str(i + 1))
        store.record_outcome(m, "DELIVRD" if i % 3 else "EXPIRED")
        if i % 2:
            store.record_mo(m, float(i) + 0.5, "1")
    assert store.aggregate() == Aggregate(
        touched=10,
        mt=10,
        mo=5,
        outcomes={"EXPIRED": 4, "DELIVRD": 6},
        opted_out=0,
        opt_outs=0,
        opt_ins=0,
        events=3,
        history_size=3,
    )


def test_addresses_that_are_not_plain_numbers_are_kept_apart(
    store_cls: type[PyTouchedStore],
) -> None:
    store = store_cls()
    for address in ("201012345678", "0201012345678", "1442", "RapidPro", "٢٠١٠١٢٣٤٥٦٧٨"):
        store.record_mo(address, 1.0, address)
    assert len(store) == 5
    assert list(store) == ["201012345678", "0201012345678", "1442", "RapidPro", "٢٠١٠١٢٣٤٥٦٧٨"]
    assert [store.history(a)[0].text for a in store] == list(store)


def test_broadcast_texts_are_shared_not_copied(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    text = "رسالة توعية من وزارة التضامن"
    for i in range(3):
        store.record_mt(f"2010{i:08d}", 1.0, (text + "!")[:-1])  # equal, distinct objects
    entries = [store.history(f"2010{i:08d}")[0].text for i in range(3)]
    assert entries[0] == text and entries[0] is entries[1] is entries[2]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=80),
    st.integers(1, 12),
    st.integers(1, 5),
)
def test_history_matches_a_naive_model(
    store_cls: type[PyTouchedStore], events: list[tuple[int, bool]], size: int, per: int
) -> None:
    """History = the subscriber's events among the last ``size`` overall, newest ``per``."""
    store = store_cls(history_size=size, per_subscriber=per)
    log: list[tuple[str, str, float]] = []
    for t, (who, is_mo) in enumerate(events):
        m = f"2010{who:08d}"
        if is_mo:
            store.record_mo(m, float(t), f"mo{t}")
        else:
            store.record_mt(m, float(t), f"mt{t}", str(t + 1))
        log.append((m, f"mo{t}" if is_mo else f"mt{t}", float(t)))
    kept = log[-size:]
    for who in range(6):
        m = f"2010{who:08d}"
        expected = [text for n, text, _ in kept if n == m][-per:]
        assert [e.text for e in store.history(m, limit=99)] == expected
        counters = store.counters(m)
        mine = [x for x in log if x[0] == m]
        if not mine:
            assert counters is None
            continue
        assert counters is not None
        assert counters.mt + counters.mo == len(mine)
        last_mt = [ts for n, text, ts in mine if text.startswith("mt")]
        assert counters.last_mt_time == (last_mt[-1] if last_mt else None)
    assert store.aggregate().events == min(len(events), size)


def test_times_survive_exactly(store_cls: type[PyTouchedStore]) -> None:
    store = store_cls()
    t = 1_795_000_000.123456
    store.record_mt(A, t, "x")
    assert store.history(A)[0].time == t
    assert store.counters(A).last_mt_time == t  # type: ignore[union-attr]
    assert not math.isnan(t)


def test_an_outcome_keeps_when_it_took_effect_and_a_reused_slot_forgets_it(
    store_cls: type[PyTouchedStore],
) -> None:
    store = store_cls(history_size=2)
    store.record_mt(A, 10.0, "q1", "1")
    store.record_outcome(A, "DELIVRD", 13.5)
    store.record_mo(A, 40.0, "1")
    assert store.history(A) == [
        HistoryEntry("mt", 10.0, "q1", "1", "DELIVRD", 13.5),
        HistoryEntry("mo", 40.0, "1"),
    ]
    store.record_mt(B, 50.0, "q1", "2")  # overwrites A's MT in the 2-event ring
    store.record_mt(B, 51.0, "q2", "3")  # and A's MO
    store.record_outcome(B, "EXPIRED")  # no time given: none recorded
    assert store.history(B) == [
        HistoryEntry("mt", 50.0, "q1", "2"),
        HistoryEntry("mt", 51.0, "q2", "3", "EXPIRED"),
    ]
