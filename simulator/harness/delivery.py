"""The delivery that follows a campaign manager's action: how many of its numbers got an
MT and a receipt, and when the last one did (issue 5's "time to last receipt").

Sans-IO, three pieces:

- ``DeliveryTracker`` (the SMSC side, in the channel hub): told by a TRACK frame that
  action ``i`` is about to send to population indices ``[start, start + count)``, it
  keeps one byte per number of the action (got an MT; every MT that asked for a receipt
  has had it handed to the platform, once; receipts still owed) and a few counters.
  Nothing is kept or done per message when no action is tracked.
- ``DeliveryView`` (the Locust side): the latest PROGRESS of every SMSC side (one per
  part of a partitioned run; each part sees only the numbers it owns), added up.
- ``judge``: from the view's totals to the requests Locust reports per action.

A number counts as receipted the first time each MT it got (asking for a receipt) has
had its receipt accepted by the platform (deliver_sm answered with status 0): a flow's
later messages to it do not make it unreceipted again. A number shared with an earlier
action (``same_participants_as``) counts its MTs for the latest tracked action, and each
receipt for the latest one that is owed one for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .frames import Progress

#: The per-number byte: got an MT; receipted (once); receipts still owed (saturating).
_REACHED = 0x40
_DONE = 0x80
_OWED = 0x3F


@dataclass(slots=True)
class ActionDelivery:
    """One tracked action on one SMSC side."""

    action: int
    start: int
    count: int
    #: When the TRACK came (the tracker's clock).
    tracked_at: float
    flags: bytearray
    reached: int = 0
    receipted: int = 0
    mts: int = 0
    receipts: int = 0
    #: When the last number was first reached / receipted; None: not yet.
    last_mt: float | None = None
    last_receipt: float | None = None

    def progress(self, now: float) -> Progress:
        return Progress(
            self.action,
            self.reached,
            self.receipted,
            self.mts,
            self.receipts,
            now - self.last_mt if self.last_mt is not None else -1.0,
            now - self.last_receipt if self.last_receipt is not None else -1.0,
        )

    def to_json(self) -> dict[str, Any]:
        """For the run's summary: counts, and times from the TRACK."""
        return {
            "action": self.action,
            "numbers": self.count,
            "reached": self.reached,
            "receipted": self.receipted,
            "mts": self.mts,
            "receipts": self.receipts,
            "last_mt_after": None if self.last_mt is None else self.last_mt - self.tracked_at,
            "last_receipt_after": (
                None if self.last_receipt is None else self.last_receipt - self.tracked_at
            ),
        }


class DeliveryTracker:
    """``index_of``: a number (international, digits) to its population index, or -1."""

    __slots__ = ("_index_of", "_latest_first", "actions", "dirty")

    def __init__(self, index_of: Callable[[str], int]) -> None:
        self._index_of = index_of
        self.actions: dict[int, ActionDelivery] = {}
        self._latest_first: list[ActionDelivery] = []
        #: Counts moved since the owner last cleared it (after sending the progress).
        self.dirty = False

    def track(self, action: int, start: int, count: int, now: float) -> None:
        """Follow action ``action`` from now (again: nothing changes)."""
        if action in self.actions or count <= 0:
            return
        a = ActionDelivery(action, start, count, now, bytearray(count))
        self.actions[action] = a
        self._latest_first.insert(0, a)
        self.dirty = True

    def _find(self, number: str) -> tuple[ActionDelivery, int] | None:
        i = self._index_of(number)
        if i < 0:
            return None
        for a in self._latest_first:
            k = i - a.start
            if 0 <= k < a.count:
                return a, k
        return None

    def on_mt(self, number: str, wants_receipt: bool, now: float) -> None:
        """An MT part for ``number`` was accepted (call only while ``actions``)."""
        hit = self._find(number)
        if hit is None:
            return
        a, k = hit
        a.mts += 1
        f = a.flags[k]
        if not f & _REACHED:
            f |= _REACHED
            a.reached += 1
            a.last_mt = now
        if wants_receipt and f & _OWED != _OWED:
            f += 1
        a.flags[k] = f
        self.dirty = True

    def on_receipt(self, number: str, now: float) -> None:
        """A receipt for an MT to ``number`` was accepted by the platform: it pays the
        latest tracked action that is owed one for that number (an earlier action's
        late receipt still completes it after a follow-up to the same numbers began)."""
        i = self._index_of(number)
        if i < 0:
            return
        first: ActionDelivery | None = None
        for a in self._latest_first:
            k = i - a.start
            if not 0 <= k < a.count:
                continue
            if first is None:
                first = a
            f = a.flags[k]
            if f & _OWED:
                a.receipts += 1
                f -= 1
                if not f & (_OWED | _DONE):
                    f |= _DONE
                    a.receipted += 1
                    a.last_receipt = now
                a.flags[k] = f
                self.dirty = True
                return
        if first is not None:  # owed nowhere (an MT from before the TRACK, a duplicate)
            first.receipts += 1
            self.dirty = True

    def progress(self, now: float) -> list[Progress]:
        return [a.progress(now) for a in self.actions.values()]

    def to_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for _, a in sorted(self.actions.items())]


#: The counts ``merge_json`` adds up over the SMSC sides.
_COUNTS = ("reached", "receipted", "mts", "receipts")


def merge_json(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every SMSC side's ``to_json``, one entry per action: counts added up, the latest
    times (each from that side's TRACK, which the sides got milliseconds apart)."""
    out: dict[int, dict[str, Any]] = {}
    for part in parts:
        for one in part:
            a = out.setdefault(
                int(one["action"]),
                {"action": one["action"], "numbers": one["numbers"], **dict.fromkeys(_COUNTS, 0)},
            )
            for k in _COUNTS:
                a[k] += int(one[k])
            for k in ("last_mt_after", "last_receipt_after"):
                a[k] = _later(a.get(k), one[k])
    for a in out.values():
        a["complete"] = a["receipted"] >= a["numbers"]
    return [out[k] for k in sorted(out)]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One action's delivery over every SMSC side; times on the receiver's clock."""

    reached: int = 0
    receipted: int = 0
    mts: int = 0
    receipts: int = 0
    last_mt_at: float | None = None
    last_receipt_at: float | None = None


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(slots=True)
class DeliveryView:
    """The latest PROGRESS of each of ``parts`` SMSC sides, with its times turned into
    the receiver's clock (arrival minus age: no clock is shared between hosts)."""

    parts: int
    _latest: list[dict[int, tuple[Progress, float | None, float | None]]] = field(
        default_factory=list
    )

    #: Parts that answered a TRACK with nothing: they cannot follow numbers (no
    #: population), so no action's delivery can be judged.
    blind: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._latest = [{} for _ in range(self.parts)]

    def update(self, part: int, items: list[Progress], now: float) -> None:
        if not items:
            self.blind.add(part)
            return
        latest = self._latest[part]
        for p in items:
            mt_at = now - p.mt_age if p.mt_age >= 0 else None
            receipt_at = now - p.receipt_age if p.receipt_age >= 0 else None
            old = latest.get(p.action)
            if old is not None:  # the same last number: its time as first heard
                if p.reached == old[0].reached:
                    mt_at = old[1]
                if p.receipted == old[0].receipted:
                    receipt_at = old[2]
            latest[p.action] = (p, mt_at, receipt_at)

    def acked(self, action: int) -> bool:
        """Every SMSC side has answered action ``action``'s TRACK (or cannot follow)."""
        return all(
            action in latest or part in self.blind for part, latest in enumerate(self._latest)
        )

    def total(self, action: int) -> Delivery:
        reached = receipted = mts = receipts = 0
        mt_at: float | None = None
        receipt_at: float | None = None
        for latest in self._latest:
            got = latest.get(action)
            if got is None:
                continue
            p, m, r = got
            reached += p.reached
            receipted += p.receipted
            mts += p.mts
            receipts += p.receipts
            mt_at = _later(mt_at, m)
            receipt_at = _later(receipt_at, r)
        return Delivery(reached, receipted, mts, receipts, mt_at, receipt_at)


#: Locust's request type for the delivery of an action.
REQUEST_TYPE = "DELIVERY"


@dataclass(frozen=True, slots=True)
class Report:
    """One Locust request event: ``response_time`` in ms, ``length`` in numbers,
    ``error`` None for a success."""

    name: str
    response_time: float
    length: int
    error: str | None


def action_label(action: int, kind: str, numbers: int) -> str:
    return f"actions[{action}] {kind} to {numbers:,}"


def judge(
    label: str, numbers: int, delivery: Delivery, started: float, now: float, final: bool
) -> list[Report] | None:
    """The requests to report for one action (``numbers`` posted at ``started``), or None
    while it is not complete and not ``final`` (its deadline passed, or the load ended).

    Two per action: the time to the last MT reaching the SMSC side (the platform's
    sending) and the time to the last receipt reaching the platform; each ``length`` is
    how many numbers got there. An incomplete one is a failure saying how many are
    missing, timed at ``now``.
    """
    if delivery.receipted < numbers and not final:
        return None
    after = now - started

    def one(what: str, got: int, at: float | None, missing: str) -> Report:
        if got >= numbers and at is not None:
            return Report(f"{label}: time to last {what}", (at - started) * 1000.0, got, None)
        return Report(
            f"{label}: time to last {what}",
            after * 1000.0,
            got,
            f"{numbers - got:,} of {numbers:,} numbers {missing} after {after:.1f}s",
        )

    return [
        one("MT", delivery.reached, delivery.last_mt_at, "got no MT"),
        one("receipt", delivery.receipted, delivery.last_receipt_at, "without a receipt"),
    ]
