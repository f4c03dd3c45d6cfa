"""The delivery that follows a campaign manager's action, sans-IO: the SMSC side's
per-number counting, the Locust side's sum over parts, what is reported, the frames
between them and the server's receipt hook."""

from __future__ import annotations

import pytest

from simulator.harness.delivery import (
    Delivery,
    DeliveryTracker,
    DeliveryView,
    action_label,
    judge,
    merge_json,
)
from simulator.harness.frames import (
    HEADER,
    FrameError,
    FrameReader,
    FrameType,
    Progress,
    Progresses,
    Track,
    encode_progress,
    encode_track,
)
from simulator.smsc.server import _receipt_hook

#: Population index of each number: 100 + index.
NUMBERS = {f"2010{n:08d}": n - 100 for n in range(100, 120)}


def number(index: int) -> str:
    return f"2010{index + 100:08d}"


def tracker() -> DeliveryTracker:
    return DeliveryTracker(lambda n: NUMBERS.get(n, -1))


def test_a_number_is_receipted_once_every_mt_it_got_has_its_receipt() -> None:
    t = tracker()
    t.track(0, start=0, count=4, now=10.0)
    t.on_mt(number(0), True, 11.0)
    t.on_mt(number(1), True, 11.5)
    t.on_mt(number(1), True, 11.6)  # a second part: two receipts owed
    t.on_mt(number(2), False, 11.7)  # asks for no receipt: never receipted
    t.on_receipt(number(0), 12.0)
    t.on_receipt(number(1), 12.5)
    (p,) = t.progress(13.0)
    assert (p.reached, p.receipted, p.mts, p.receipts) == (3, 1, 4, 2)
    assert p.mt_age == pytest.approx(13.0 - 11.7) and p.receipt_age == pytest.approx(1.0)
    t.on_receipt(number(1), 14.0)
    t.on_receipt(number(1), 14.5)  # a duplicate: nothing owed, nothing changes
    t.on_mt(number(0), True, 15.0)  # a flow's follow-up: still receipted
    (p,) = t.progress(16.0)
    assert (p.reached, p.receipted, p.mts, p.receipts) == (3, 2, 5, 4)
    assert p.receipt_age == pytest.approx(2.0)
    (j,) = t.to_json()
    assert j["last_receipt_after"] == pytest.approx(4.0)
    assert j["last_mt_after"] == pytest.approx(1.7)


def test_only_tracked_numbers_count_and_the_latest_action_owns_a_shared_one() -> None:
    t = tracker()
    t.on_mt(number(0), True, 1.0)  # nothing tracked yet
    t.track(0, start=0, count=4, now=2.0)
    t.on_receipt(number(0), 2.5)  # for an MT before the TRACK: counted, not owed
    t.track(1, start=2, count=2, now=3.0)  # a follow-up to numbers 2 and 3
    t.track(1, start=0, count=20, now=3.5)  # told again: the first one holds
    for i in (1, 2, 3, 5):
        t.on_mt(number(i), True, 4.0)
    t.on_mt("201099999999", True, 4.0)  # not in the population
    by_action = {p.action: p for p in t.progress(5.0)}
    a0 = by_action[0]
    assert (a0.reached, a0.receipted, a0.mts, a0.receipts) == (1, 0, 1, 1)
    assert (by_action[1].reached, by_action[1].mts) == (2, 2)
    assert by_action[0].receipt_age < 0  # none yet


def test_a_late_receipt_of_an_earlier_action_still_completes_it() -> None:
    t = tracker()
    t.track(0, start=0, count=2, now=1.0)
    t.on_mt(number(0), True, 1.5)
    t.on_mt(number(1), True, 1.5)
    t.on_receipt(number(0), 2.0)
    t.track(1, start=0, count=2, now=3.0)  # a follow-up to the same two numbers
    t.on_mt(number(0), True, 3.5)
    t.on_receipt(number(1), 4.0)  # action 0's, number 1 was off for a while
    t.on_receipt(number(0), 4.5)  # action 1's
    by_action = {p.action: p for p in t.progress(5.0)}
    a0, a1 = by_action[0], by_action[1]
    assert (a0.reached, a0.receipted, a0.mts, a0.receipts) == (2, 2, 2, 2)
    assert (a1.reached, a1.receipted, a1.mts, a1.receipts) == (1, 1, 1, 1)
    assert a0.receipt_age == pytest.approx(1.0) and a1.receipt_age == pytest.approx(0.5)


def test_the_view_adds_up_the_parts_on_the_receivers_clock() -> None:
    v = DeliveryView(2)
    assert not v.acked(0)
    v.update(0, [Progress(0, 0, 0, 0, 0, -1.0, -1.0)], now=100.0)
    assert not v.acked(0)
    v.update(1, [Progress(0, 0, 0, 0, 0, -1.0, -1.0)], now=100.0)
    assert v.acked(0) and v.total(0) == Delivery()
    v.update(0, [Progress(0, 3, 2, 3, 2, 0.5, 0.25)], now=101.0)
    v.update(1, [Progress(0, 2, 2, 2, 2, 0.1, 0.75)], now=101.0)
    total = v.total(0)
    assert (total.reached, total.receipted, total.mts, total.receipts) == (5, 4, 5, 4)
    assert total.last_mt_at == pytest.approx(100.9)
    assert total.last_receipt_at == pytest.approx(100.75)
    # Later frames with the same counts keep the times first heard (no drift by delay).
    v.update(0, [Progress(0, 3, 2, 3, 2, 5.0, 4.0)], now=105.01)
    assert v.total(0).last_receipt_at == pytest.approx(100.75)
    assert v.total(1) == Delivery()
    assert not v.blind


def test_a_part_that_cannot_follow_numbers_answers_with_nothing() -> None:
    v = DeliveryView(2)
    v.update(0, [Progress(0, 0, 0, 0, 0, -1.0, -1.0)], now=1.0)
    assert not v.acked(0)
    v.update(1, [], now=1.0)
    assert v.acked(0) and v.blind == {1}


def test_judge_reports_times_when_complete_and_failures_naming_the_missing() -> None:
    label = action_label(0, "broadcast", 40)
    assert label == "actions[0] broadcast to 40"
    done = Delivery(40, 40, 41, 41, last_mt_at=12.0, last_receipt_at=13.5)
    mt, receipt = judge(label, 40, done, started=10.0, now=14.0, final=False) or []
    assert (mt.name, mt.response_time, mt.length, mt.error) == (
        f"{label}: time to last MT",
        pytest.approx(2000.0),
        40,
        None,
    )
    assert (receipt.response_time, receipt.length, receipt.error) == (
        pytest.approx(3500.0),
        40,
        None,
    )
    partial = Delivery(40, 28, 40, 28, last_mt_at=12.0, last_receipt_at=13.0)
    assert judge(label, 40, partial, started=10.0, now=14.0, final=False) is None
    mt, receipt = judge(label, 40, partial, started=10.0, now=16.0, final=True) or []
    assert mt.error is None and mt.length == 40
    assert receipt.error == "12 of 40 numbers without a receipt after 6.0s"
    assert receipt.length == 28 and receipt.response_time == pytest.approx(6000.0)
    nothing = judge(label, 40, Delivery(), started=10.0, now=12.0, final=True) or []
    assert [r.error for r in nothing] == [
        "40 of 40 numbers got no MT after 2.0s",
        "40 of 40 numbers without a receipt after 2.0s",
    ]


def test_the_summary_merges_the_parts_per_action() -> None:
    a, b = tracker(), tracker()
    for t in (a, b):
        t.track(0, start=0, count=4, now=1.0)
    a.on_mt(number(0), True, 2.0)
    a.on_receipt(number(0), 3.0)
    for i in (1, 2, 3):
        b.on_mt(number(i), True, 2.5)
        b.on_receipt(number(i), 4.0)
    (m,) = merge_json([a.to_json(), b.to_json()])
    assert m == {
        "action": 0,
        "numbers": 4,
        "reached": 4,
        "receipted": 4,
        "mts": 4,
        "receipts": 4,
        "last_mt_after": 1.5,
        "last_receipt_after": 3.0,
        "complete": True,
    }
    assert merge_json([]) == []


def test_track_and_progress_frames_round_trip() -> None:
    items = [Progress(0, 1, 2, 3, 4, 0.5, -1.0), Progress(7, 10**6, 9, 8, 7, 1.25, 2.5)]
    frames = FrameReader().feed(encode_track(3, 1000, 250) + encode_progress(items))
    assert frames == [Track(3, 1000, 250), Progresses(items)]
    assert FrameReader().feed(encode_progress([])) == [Progresses([])]
    with pytest.raises(FrameError):
        FrameReader().feed(HEADER.pack(HEADER.size + 4, FrameType.TRACK, 1) + b"\0" * 4)
    with pytest.raises(FrameError):
        FrameReader().feed(HEADER.pack(HEADER.size, FrameType.PROGRESS, 1))


def test_the_receipt_hook_calls_only_observers_that_have_one() -> None:
    class Mt:
        def on_mo(self, source: str) -> None: ...

    seen: list[tuple[str, object]] = []

    class Receipts(Mt):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_receipt(self, receipt: object) -> None:
            seen.append((self.name, receipt))

    assert _receipt_hook([Mt(), Mt()]) is None
    one = Receipts("a")
    assert _receipt_hook([Mt(), one]) == one.on_receipt
    hook = _receipt_hook([Receipts("a"), Mt(), Receipts("b")])
    assert hook is not None
    hook("r")  # type: ignore[arg-type]
    assert seen == [("a", "r"), ("b", "r")]
