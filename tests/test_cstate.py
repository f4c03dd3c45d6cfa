"""The C ``TouchedStore`` (``_cstate``, optional) behaves exactly as ``PyTouchedStore``.

Skipped when the extension is not built (``build_ctraits.py``) or is switched off
(``SMSIM_NO_CSTATE=1`` or ``SMSIM_NO_CTRAITS=1``). The main test is differential: the
same random operations (thousands, every public method, with ring wrap-around, small
``per_subscriber``, non-decimal addresses and message ids, more outcome stats than the
7-bit codes hold, texts past the sharing cache, amendments of cancelled and replaced
MTs, opt-outs and opt-ins) go to both, each return value is compared, and so is the
whole state (counters, history, aggregate, iteration) now and then.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import weakref
from typing import Any

import pytest

from simulator.subscribers import state
from simulator.subscribers.state import Aggregate, Counters, HistoryEntry, PyTouchedStore

CStore: Any = state._CTouchedStore  # the C class, or None
pytestmark = pytest.mark.skipif(CStore is None, reason="_cstate not built or switched off")

ADDRESSES = [f"2010{i:08d}" for i in range(40)] + [
    "999999999999999999",  # 18 digits: the largest int key
    "1000000000000000000",  # 19 digits: a string key
    "9223372036854775807",
    "0201012345678",  # leading zero
    "0",
    "",
    "1",
    "1442",
    "RapidPro",
    "+201012345678",
    "٢٠١٠١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "2010 1234",
    "20101234567a",
]
IDS = [None, "0", "7", "00", "0042", "1f3a", "ABC", "", "999999999999999999",
       "1000000000000000000", "6f1c2d3e-0000-4000-8000-000000000001", "٣"]  # fmt: skip
STATS = ["DELIVRD", "EXPIRED", "UNDELIV", "REJECTD", "DELETED"] + [f"S{i}" for i in range(200)]


def same_state(c: Any, py: PyTouchedStore) -> None:
    assert len(c) == len(py)
    assert list(c) == list(py)
    assert c.aggregate() == py.aggregate()
    assert c.opt_decisions == py.opt_decisions
    assert c.per_subscriber == py.per_subscriber
    for a in ADDRESSES:
        assert (a in c) == (a in py)
        assert c.counters(a) == py.counters(a)
        assert c.is_opted_out(a) == py.is_opted_out(a)
        assert c.mt_count(a) == py.mt_count(a)
        hc, hp = c.history(a, 10_000), py.history(a, 10_000)
        assert hc == hp
        # the same text objects: shared (or not) the same way
        assert all(x.text is y.text for x, y in zip(hc, hp, strict=True))


def run_ops(history_size: int, per_subscriber: int, n: int, seed: int) -> None:
    rng = random.Random(seed)
    c = CStore(history_size, per_subscriber=per_subscriber)
    py = PyTouchedStore(history_size, per_subscriber=per_subscriber)
    recorded: list[tuple[str, str]] = []  # (msisdn, message_id) of MTs with an id
    n_stats = rng.choice([6, 40, len(STATS)])
    t = 0.0

    def addr() -> str:
        # mostly a few chatty numbers, so histories fill and wrap
        return rng.choice(ADDRESSES[:6] if rng.random() < 0.5 else ADDRESSES)

    def text() -> str:
        r = rng.random()
        if r < 0.3:
            return ("broadcast " + "!")[:-1]  # equal texts, distinct objects
        if r < 0.6:
            return f"t{rng.randrange(20)}"
        return f"u{rng.randrange(10**9)}"  # fills the sharing cache

    def stat() -> str:
        return rng.choice(STATS[:n_stats])

    def maybe_time() -> float | None:
        return None if rng.random() < 0.3 else t + rng.random() * 100

    for step in range(n):
        t += rng.random()
        op = rng.randrange(100)
        a = addr()
        if op < 35:
            mid = rng.choice(IDS) if rng.random() < 0.3 else str(rng.randrange(10**6))
            x = text()
            out = stat() if rng.random() < 0.6 else None
            done = maybe_time()
            if rng.random() < 0.5:  # as the engine does: the count first, same string
                assert c.mt_count(a) == py.mt_count(a)
                if rng.random() < 0.2:  # another subscriber touched in between
                    b = addr()
                    c.record_mo(b, t, "between")
                    py.record_mo(b, t, "between")
            args = (a, t, x, mid, out, done)
            if rng.random() < 0.3:
                assert c.record_mt(a, t, x, message_id=mid, outcome=out, done_time=done) == (
                    py.record_mt(a, t, x, message_id=mid, outcome=out, done_time=done)
                )
            else:
                assert c.record_mt(*args) == py.record_mt(*args)
            if mid is not None:
                recorded.append((a, mid))
        elif op < 45:
            x = text()
            assert c.record_mo(a, t, x) is None
            py.record_mo(a, t, x)
        elif op < 60:
            s, done = stat(), maybe_time()
            if rng.random() < 0.5:
                assert c.record_outcome(a, s, done) is None
                py.record_outcome(a, s, done)
            else:
                assert c.record_outcome(a, s) is None
                py.record_outcome(a, s)
        elif op < 72:
            if recorded and rng.random() < 0.8:
                a, mid = rng.choice(recorded[-50:])
            else:
                mid = rng.choice([m for m in IDS if m is not None])
            kind = rng.randrange(4)
            kw: dict[str, Any] = {}
            if kind == 0:  # cancel_sm
                kw = {"outcome": "DELETED", "done_time": maybe_time()}
            elif kind == 1:  # replace_sm
                kw = {"text": text(), "outcome": stat(), "done_time": maybe_time()}
            elif kind == 2:
                kw = {"text": text()}
            assert c.amend_mt(a, mid, **kw) == py.amend_mt(a, mid, **kw)
        elif op < 77:
            assert c.opt_out(a, t) is None
            py.opt_out(a, t)
        elif op < 80:
            assert c.opt_in(a, t) is None
            py.opt_in(a, t)
        elif op < 84:
            assert c.is_opted_out(a) == py.is_opted_out(a)
        elif op < 88:
            assert c.counters(a) == py.counters(a)
        elif op < 94:
            limit = rng.choice([0, 1, 2, 3, 8, 50, -1])
            assert c.history(a, limit) == py.history(a, limit)
        elif op < 96:
            assert c.aggregate() == py.aggregate()
        elif op < 98:
            assert (a in c) == (a in py)
            assert len(c) == len(py)
        else:
            assert list(c) == list(py)
        if step % 500 == 499:
            same_state(c, py)
    same_state(c, py)


@pytest.mark.parametrize(
    ("history_size", "per_subscriber"),
    [(0, 8), (1, 1), (2, 8), (5, 3), (17, 8), (64, 0), (200, 5), (1_000, 300), (100_000, 8)],
)
def test_random_operations_match_python(history_size: int, per_subscriber: int) -> None:
    for seed in range(3):
        run_ops(history_size, per_subscriber, 3_000, seed * 1_000 + history_size)


def test_more_stats_than_codes_match_python() -> None:
    """Past 127 distinct stats the outcome is not kept in the history, only counted."""
    c, py = CStore(50), PyTouchedStore(50)
    for i in range(300):
        a = ADDRESSES[i % 7]
        for store in (c, py):
            store.record_mt(a, float(i), "q", str(i), f"S{i}" if i % 2 else None, i + 0.5)
            store.record_outcome(a, f"R{i}", float(i))
            store.amend_mt(a, str(i), outcome=f"A{i}")
    same_state(c, py)
    assert len(c.aggregate().outcomes) == 150 + 300 + 300


@pytest.mark.parametrize("distinct", [state._TEXT_CACHE - 1, state._TEXT_CACHE])
def test_the_text_cache_resets_as_in_python(distinct: int) -> None:
    """``distinct`` texts, an equal copy of the first (shared), one more text, another
    copy: shared again unless that text was the 4097th, which reset the cache."""
    c, py = CStore(10_000), PyTouchedStore(10_000)
    texts = [f"text {i}" for i in range(distinct + 1)]
    copies = [("text 0" + "!")[:-1] for _ in range(2)]  # equal, distinct objects
    for store in (c, py):
        for i, x in enumerate(texts[:distinct]):
            store.record_mt(ADDRESSES[1 + i % 30], float(i), x)
        store.record_mt(ADDRESSES[0], 1e6, copies[0])
        store.record_mt(ADDRESSES[0], 1e6, texts[distinct])  # one more: resets at 4096
        store.record_mt(ADDRESSES[0], 1e6, copies[1])
    hc, hp = c.history(ADDRESSES[0]), py.history(ADDRESSES[0])
    assert [x.text is y.text for x, y in zip(hc, hp, strict=True)] == [True] * 3
    assert hp[0].text is texts[0]
    assert (hp[2].text is texts[0]) == (distinct < state._TEXT_CACHE)
    same_state(c, py)


def test_the_constructor_checks_its_arguments() -> None:
    assert CStore is not None
    for bad in ({"history_size": -1}, {"per_subscriber": -1}):
        with pytest.raises(ValueError):
            CStore(**bad)
    with pytest.raises(TypeError):
        CStore(1.5)
    store = CStore(history_size=3, per_subscriber=2)
    assert store.per_subscriber == 2 and store.aggregate().history_size == 3
    assert CStore().aggregate() == PyTouchedStore().aggregate()


def test_the_readers_return_state_dataclasses() -> None:
    store = CStore()
    store.record_mt(ADDRESSES[0], 1.0, "x", "1", "DELIVRD", 2.0)
    assert type(store.counters(ADDRESSES[0])) is Counters
    assert type(store.history(ADDRESSES[0])[0]) is HistoryEntry
    assert type(store.aggregate()) is Aggregate
    assert state.TouchedStore is CStore


def test_a_switched_off_extension_leaves_the_python_class() -> None:
    for var in ("SMSIM_NO_CSTATE", "SMSIM_NO_CTRAITS"):
        out = subprocess.run(
            [sys.executable, "-c", "from simulator.subscribers import state as s;"
             "print(s.TouchedStore is s.PyTouchedStore, s._CTouchedStore)"],
            env={**os.environ, var: "1"}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert out.stdout.split() == ["True", "None"]


def test_overwritten_and_released_objects_are_not_leaked() -> None:
    store = CStore(history_size=10)
    text, mid, stat = "x" * 50 + "!", "id-" + "7" * 20, "ST" + "A" * 10
    before = [sys.getrefcount(o) for o in (text, mid, stat)]
    for i in range(1_000):
        store.record_mt(ADDRESSES[i % 3], float(i), text, mid, stat, 1.0)
        store.amend_mt(ADDRESSES[i % 3], mid, text=text, outcome=stat)
    # held now: the ring's references, the cache's, the stats'
    assert sys.getrefcount(text) > before[0]
    del store
    assert [sys.getrefcount(o) for o in (text, mid, stat)] == before


class _Text:
    """A text object the GC tracks, holding the store: a reference cycle."""

    store: Any = None


def test_a_cycle_through_the_store_is_collected() -> None:
    store = CStore(history_size=4)
    x = _Text()
    x.store = store
    store.record_mt(ADDRESSES[0], 1.0, x)
    ref = weakref.ref(x)
    del store, x
    gc.collect()
    assert ref() is None


def test_iteration_sees_rows_added_meanwhile_until_exhausted() -> None:
    c, py = CStore(), PyTouchedStore()
    for store in (c, py):
        store.record_mo(ADDRESSES[0], 1.0, "a")
    ic, ip = iter(c), iter(py)
    assert next(ic) == next(ip) == ADDRESSES[0]
    for store in (c, py):
        store.record_mo("RapidPro", 2.0, "b")
    assert list(ic) == list(ip) == ["RapidPro"]
    for store in (c, py):
        store.record_mo(ADDRESSES[1], 3.0, "c")
    assert list(ic) == list(ip) == []


def test_memory_per_touched_subscriber() -> None:
    """The C arrays (``__sizeof__``) stay well under 200 bytes a touched subscriber."""
    store = CStore()
    n = 100_000
    for i in range(n):
        store.record_mt(f"2010{i * 7919 % 10**8:08d}", 1.0, "broadcast", str(10**15 + i))
    assert len(store) == n
    assert sys.getsizeof(store) / n < 200


class _Recording:
    """A text whose hash records into the store: code run in the middle of record_mt."""

    def __init__(self, store: Any, address: str) -> None:
        self.store, self.address, self.calls = store, address, 0

    def __hash__(self) -> int:
        self.calls += 1
        if self.calls == 1:  # the text cache's look-up (its insertion hashes again)
            self.store.record_mo(self.address, 0.5, "meanwhile")
        return 1


def test_code_run_by_a_text_cannot_corrupt_the_store() -> None:
    """(The Python class would add the address twice here; the C one locates it again.)"""
    store = CStore(history_size=4)
    for address in (ADDRESSES[0], "RapidPro"):
        store.record_mt(address, 1.0, _Recording(store, address))
        assert list(store).count(address) == 1
        counters = store.counters(address)
        assert counters is not None and (counters.mt, counters.mo) == (1, 1)
        assert [e.direction for e in store.history(address)] == ["mo", "mt"]
