"""What happened to the subscribers a run touched, in a few dozen bytes each.

Profiles are derived, never stored (see ``population``); only what a run changes is kept
here: per touched subscriber a row of counters in parallel ``array`` columns behind one
``dict`` (MSISDN as int -> row), and a history of messages in one global ring of
``history_size`` events, each event linking back to the same subscriber's previous one.
Memory is bounded by touched subscribers × a fixed row plus the ring, however chatty
anybody is: no object, deque or list per subscriber. ``history`` follows the back-links
from the newest event and stops at ``per_subscriber`` entries or at the first event the
ring has overwritten.

``TouchedStore`` is the C implementation of that class (``_cstate.c``, same API and
results, built by ``build_ctraits.py``) when it is built and neither ``SMSIM_NO_CSTATE``
nor ``SMSIM_NO_CTRAITS`` is set; else ``PyTouchedStore``, the Python class below, which
is also the reference the C code is tested against.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

_NAN = float("nan")
_TEXT_CACHE = 4096  # distinct texts shared between events before the cache is reset
_MAX_STATS = 127  # outcome codes that fit the event's kind byte (7 bits)
_ID_TEXT = -2  # message id column: the id is in the side dict (not a plain decimal)
_NO_ID = -1


@dataclass(frozen=True, slots=True)
class Counters:
    """One touched subscriber's counters; times are simulated seconds."""

    mt: int
    mo: int
    last_mt_time: float | None
    last_mo_time: float | None
    #: None: never opted in or out during the run (the profile's ``opted_out`` holds).
    opted_out: bool | None
    opted_at: float | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    direction: Literal["mt", "mo"]
    time: float
    text: str
    message_id: str | None = None
    #: The receipt's stat (DELIVRD, EXPIRED, ...) of an MT, once recorded.
    outcome: str | None = None
    #: When the MT reached that final state (delivered to the handset, expired, ...),
    #: simulated seconds; None until an outcome with a time is recorded.
    done_time: float | None = None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Totals over the run (not only what the ring still holds)."""

    touched: int
    mt: int
    mo: int
    #: Outcomes recorded, by stat.
    outcomes: dict[str, int]
    #: Touched subscribers opted out now (explicitly, during the run).
    opted_out: int
    opt_outs: int
    opt_ins: int
    #: Events in the history ring now, and its capacity.
    events: int
    history_size: int


def _key(msisdn: str) -> int | str:
    """A plain decimal number is keyed as an int (8 bytes in the column); anything else
    (alphanumeric, leading zero, too long for int64) by its string, so keys never
    collide."""
    if msisdn.isascii() and msisdn.isdigit() and msisdn[0] != "0" and len(msisdn) < 19:
        return int(msisdn)
    return msisdn


def _message_id(message_id: str | None) -> int:
    """A message id as the history keeps it: a plain decimal as its int (8 bytes),
    ``_NO_ID`` for none, ``_ID_TEXT`` for anything else (then kept by slot aside)."""
    if message_id is None:
        return _NO_ID
    if (
        message_id.isascii()
        and message_id.isdigit()
        and len(message_id) < 19
        and (message_id[0] != "0" or message_id == "0")
    ):
        return int(message_id)
    return _ID_TEXT


class PyTouchedStore:
    """Counters and bounded message history of touched subscribers only.

    Callers pass the canonical MSISDN (``numbering.normalize``); other spellings of the
    same number are other keys.
    """

    __slots__ = (
        "_capacity",
        "_ev_done",
        "_ev_id",
        "_ev_id_text",
        "_ev_kind",
        "_ev_prev",
        "_ev_text",
        "_ev_time",
        "_head",
        "_last_mo",
        "_last_mt",
        "_looked_up",
        "_mo",
        "_msisdn",
        "_mt",
        "_n_mo",
        "_n_mt",
        "_n_opted_out",
        "_opt_ins",
        "_opt_outs",
        "_opted",
        "_opted_at",
        "_other_keys",
        "_outcomes",
        "_per_subscriber",
        "_rows",
        "_seq",
        "_stat_codes",
        "_stat_names",
        "_texts",
    )

    def __init__(self, history_size: int = 1_000_000, per_subscriber: int = 8) -> None:
        if history_size < 0 or per_subscriber < 0:
            raise ValueError("history_size and per_subscriber must be >= 0")
        self._capacity = history_size
        self._per_subscriber = per_subscriber
        # One row per touched subscriber, columns in arrays (no object per subscriber).
        self._rows: dict[int | str, int] = {}
        self._other_keys: dict[int, str] = {}  # row -> address not keyed by an int
        self._msisdn = array("q")  # the key as an int, -1 for an address in _other_keys
        self._mt = array("I")
        self._mo = array("I")
        self._last_mt = array("d")  # NaN: never
        self._last_mo = array("d")
        self._opted = array("b")  # -1 no decision here, 0 opted in, 1 opted out
        self._opted_at: dict[int, float] = {}  # row -> time, for the few who opted
        self._head = array("q")  # sequence number of the newest event, -1 none
        # The history ring: event ``seq`` lives in slot ``seq % capacity`` while
        # ``seq >= self._seq - capacity``; columns grow up to the capacity, then wrap.
        self._seq = 0
        self._ev_time = array("d")
        self._ev_done = array("d")  # an MT's outcome time, NaN: none (or an MO)
        self._ev_prev = array("q")  # the same subscriber's previous event's seq, -1 none
        self._ev_kind = array("B")  # bit 0: 0 MT, 1 MO; bits 1-7: outcome code
        self._ev_text: list[str] = []
        self._ev_id = array("q")  # decimal message id, or _NO_ID / _ID_TEXT
        self._ev_id_text: dict[int, str] = {}  # slot -> message id that isn't decimal
        # A broadcast gives thousands of events the same text: share one string.
        self._texts: dict[str, str] = {}
        self._stat_codes: dict[str, int] = {}
        self._stat_names: list[str] = [""]
        self._n_mt = self._n_mo = 0
        self._n_opted_out = self._opt_outs = self._opt_ins = 0
        self._outcomes: dict[str, int] = {}
        #: The last ``mt_count`` lookup (msisdn, key, row, rows then): the SMSC asks the
        #: count for a message's fate and records the message next, for the same string.
        self._looked_up: tuple[str, int | str, int | None, int] = ("", "", None, 0)

    # --- recording -----------------------------------------------------------------------

    def _touch(self, msisdn: str) -> int:
        key = _key(msisdn)
        row = self._rows.get(key)
        return self._add(key) if row is None else row

    def _add(self, key: int | str) -> int:
        row = self._rows[key] = len(self._msisdn)
        if isinstance(key, int):
            self._msisdn.append(key)
        else:
            self._msisdn.append(-1)
            self._other_keys[row] = key
        self._mt.append(0)
        self._mo.append(0)
        self._last_mt.append(_NAN)
        self._last_mo.append(_NAN)
        self._opted.append(-1)
        self._head.append(-1)
        return row

    def _row(self, msisdn: str) -> int | None:
        return self._rows.get(_key(msisdn))

    def _push(self, row: int, time: float, kind: int, text: str, message_id: str | None) -> None:
        capacity = self._capacity
        if not capacity:
            return
        seq = self._seq
        self._seq = seq + 1
        head = self._head
        prev = head[row]
        head[row] = seq
        texts = self._texts
        shared = texts.get(text)
        if shared is None:
            if len(texts) >= _TEXT_CACHE:
                texts.clear()
            texts[text] = shared = text
        mid = _message_id(message_id)
        if seq < capacity:
            slot = seq
            self._ev_time.append(time)
            self._ev_done.append(_NAN)
            self._ev_prev.append(prev)
            self._ev_kind.append(kind)
            self._ev_text.append(shared)
            self._ev_id.append(mid)
        else:
            slot = seq % capacity
            self._ev_time[slot] = time
            self._ev_done[slot] = _NAN
            self._ev_prev[slot] = prev
            self._ev_kind[slot] = kind
            self._ev_text[slot] = shared
            self._ev_id[slot] = mid
            if self._ev_id_text:
                self._ev_id_text.pop(slot, None)
        if mid == _ID_TEXT:
            assert message_id is not None
            self._ev_id_text[slot] = message_id

    def record_mt(
        self,
        msisdn: str,
        time: float,
        text: str,
        message_id: str | None = None,
        outcome: str | None = None,
        done_time: float | None = None,
    ) -> int:
        """A (whole, reassembled) MT reached the SMSC for ``msisdn``; with ``outcome`` its
        receipt stat is known already (``record_outcome`` in one step). Returns how many
        MTs the subscriber had before this one."""
        rows = self._rows
        seen, key, row, n_rows = self._looked_up
        if seen is not msisdn or (row is None and n_rows != len(rows)):
            key = _key(msisdn)  # _touch, inlined: this runs per message
            row = rows.get(key)
        capacity = self._capacity
        head = self._head
        seq = self._seq
        if row is None:
            # First touch, the common case at scale: the row's columns appended as they
            # end up (``_add`` then the updates below, in one step).
            before = 0
            row = rows[key] = len(self._msisdn)
            if isinstance(key, int):
                self._msisdn.append(key)
            else:
                self._msisdn.append(-1)
                self._other_keys[row] = key
            self._mt.append(1)
            self._mo.append(0)
            self._last_mt.append(time)
            self._last_mo.append(_NAN)
            self._opted.append(-1)
            head.append(seq if capacity else -1)
            prev = -1
        else:
            before = self._mt[row]
            self._mt[row] = before + 1
            self._last_mt[row] = time
            prev = head[row]
            if capacity:
                head[row] = seq
        self._n_mt += 1
        kind = 0
        if outcome is not None:
            outcomes = self._outcomes
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            code = self._stat_codes.get(outcome)
            kind = (self._code(outcome) if code is None else code) << 1
        if not capacity:
            return before
        # _push, inlined with the outcome's time (one event per MT, the hot path).
        self._seq = seq + 1
        texts = self._texts
        shared = texts.get(text)
        if shared is None:
            if len(texts) >= _TEXT_CACHE:
                texts.clear()
            texts[text] = shared = text
        mid = _message_id(message_id)
        done = _NAN if done_time is None or not kind else done_time
        if seq < capacity:
            slot = seq
            self._ev_time.append(time)
            self._ev_done.append(done)
            self._ev_prev.append(prev)
            self._ev_kind.append(kind)
            self._ev_text.append(shared)
            self._ev_id.append(mid)
        else:
            slot = seq % capacity
            self._ev_time[slot] = time
            self._ev_done[slot] = done
            self._ev_prev[slot] = prev
            self._ev_kind[slot] = kind
            self._ev_text[slot] = shared
            self._ev_id[slot] = mid
            if self._ev_id_text:
                self._ev_id_text.pop(slot, None)
        if mid == _ID_TEXT:
            assert message_id is not None
            self._ev_id_text[slot] = message_id
        return before

    def mt_count(self, msisdn: str) -> int:
        """MTs recorded for ``msisdn`` (0 when untouched)."""
        # _key, inlined (per message)
        if msisdn.isascii() and msisdn.isdigit() and msisdn[0] != "0" and len(msisdn) < 19:
            key: int | str = int(msisdn)
        else:
            key = msisdn
        rows = self._rows
        row = rows.get(key)
        self._looked_up = (msisdn, key, row, len(rows))
        return 0 if row is None else self._mt[row]

    @property
    def opt_decisions(self) -> int:
        """Opt-outs and opt-ins recorded (0: every profile's ``opted_out`` still holds)."""
        return self._opt_outs + self._opt_ins

    def _code(self, stat: str) -> int:
        """The 7-bit code of an outcome stat (0 once the table is full: not kept)."""
        code = self._stat_codes.get(stat)
        if code is None:
            if len(self._stat_names) > _MAX_STATS:
                return 0
            code = self._stat_codes[stat] = len(self._stat_names)
            self._stat_names.append(stat)
        return code

    def record_mo(self, msisdn: str, time: float, text: str) -> None:
        """``msisdn`` sent ``text`` to the platform."""
        key = _key(msisdn)
        row = self._rows.get(key)
        if row is None:
            row = self._add(key)
        self._mo[row] += 1
        self._last_mo[row] = time
        self._n_mo += 1
        self._push(row, time, 1, text, None)

    def record_outcome(self, msisdn: str, stat: str, done_time: float | None = None) -> None:
        """The receipt stat of the subscriber's newest MT that has none yet (looked for
        among their last ``per_subscriber`` events), and when it was reached; always
        counted in ``aggregate``."""
        self._outcomes[stat] = self._outcomes.get(stat, 0) + 1
        row = self._row(msisdn)
        if row is None or not self._capacity:
            return
        code = self._code(stat)
        if not code:
            return
        capacity, kinds, prevs = self._capacity, self._ev_kind, self._ev_prev
        oldest = self._seq - capacity
        seq = self._head[row]
        for _ in range(self._per_subscriber):
            if seq < 0 or seq < oldest:
                return
            slot = seq % capacity
            if kinds[slot] == 0:  # an MT without an outcome
                kinds[slot] = code << 1
                if done_time is not None:
                    self._ev_done[slot] = done_time
                return
            seq = prevs[slot]

    def amend_mt(
        self,
        msisdn: str,
        message_id: str,
        *,
        text: str | None = None,
        outcome: str | None = None,
        done_time: float | None = None,
    ) -> bool:
        """Correct what was recorded of the subscriber's MT ``message_id`` (cancel_sm:
        DELETED; replace_sm: the new text and outcome), looked for among their last
        ``per_subscriber`` events; False when it is no longer there."""
        row = self._row(msisdn)
        capacity = self._capacity
        if row is None or not capacity:
            return False
        oldest = self._seq - capacity
        seq = self._head[row]
        for _ in range(self._per_subscriber):
            if seq < 0 or seq < oldest:
                return False
            slot = seq % capacity
            kind, mid = self._ev_kind[slot], self._ev_id[slot]
            same = (
                self._ev_id_text.get(slot) == message_id
                if mid == _ID_TEXT
                else str(mid) == message_id
            )
            if not kind & 1 and mid != _NO_ID and same:
                break
            seq = self._ev_prev[slot]
        else:
            return False
        if text is not None:
            texts = self._texts
            shared = texts.get(text)
            if shared is None:
                if len(texts) >= _TEXT_CACHE:
                    texts.clear()
                texts[text] = shared = text
            self._ev_text[slot] = shared
        if outcome is not None:
            old = self._stat_names[kind >> 1] if kind >> 1 else None
            if old is not None and self._outcomes.get(old):
                self._outcomes[old] -= 1
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            self._ev_kind[slot] = self._code(outcome) << 1
        if done_time is not None:
            self._ev_done[slot] = done_time
        return True

    def opt_out(self, msisdn: str, time: float) -> None:
        """``msisdn`` asked to receive nothing more (STOP / إلغاء)."""
        self._set_opted(msisdn, time, 1)

    def opt_in(self, msisdn: str, time: float) -> None:
        """``msisdn`` asked to receive messages again."""
        self._set_opted(msisdn, time, 0)

    def _set_opted(self, msisdn: str, time: float, value: int) -> None:
        row = self._touch(msisdn)
        before = self._opted[row]
        self._opted[row] = value
        self._opted_at[row] = time
        self._n_opted_out += (value == 1) - (before == 1)
        if value:
            self._opt_outs += 1
        else:
            self._opt_ins += 1

    # --- reading -------------------------------------------------------------------------

    def is_opted_out(self, msisdn: str) -> bool | None:
        """True/False when the subscriber opted out/in during the run; None when untouched
        or undecided, so the caller falls back to the profile."""
        if msisdn.isascii() and msisdn.isdigit() and msisdn[0] != "0" and len(msisdn) < 19:
            row = self._rows.get(int(msisdn))  # _row, inlined: once per reply decided
        else:
            row = self._rows.get(msisdn)
        if row is None:
            return None
        value = self._opted[row]
        return None if value < 0 else value == 1

    def counters(self, msisdn: str) -> Counters | None:
        """The subscriber's counters, or None when untouched."""
        row = self._row(msisdn)
        if row is None:
            return None
        last_mt, last_mo, opted = self._last_mt[row], self._last_mo[row], self._opted[row]
        return Counters(
            mt=self._mt[row],
            mo=self._mo[row],
            last_mt_time=None if last_mt != last_mt else last_mt,  # NaN: never
            last_mo_time=None if last_mo != last_mo else last_mo,
            opted_out=None if opted < 0 else opted == 1,
            opted_at=self._opted_at.get(row),
        )

    def history(self, msisdn: str, limit: int = 8) -> list[HistoryEntry]:
        """The subscriber's newest events still in the ring, at most ``limit`` and
        ``per_subscriber``, oldest first."""
        row = self._row(msisdn)
        capacity = self._capacity
        if row is None or not capacity:
            return []
        oldest = self._seq - capacity
        names, id_text = self._stat_names, self._ev_id_text
        out: list[HistoryEntry] = []
        seq = self._head[row]
        for _ in range(min(limit, self._per_subscriber)):
            if seq < 0 or seq < oldest:
                break
            slot = seq % capacity
            kind, mid, done = self._ev_kind[slot], self._ev_id[slot], self._ev_done[slot]
            out.append(
                HistoryEntry(
                    direction="mo" if kind & 1 else "mt",
                    time=self._ev_time[slot],
                    text=self._ev_text[slot],
                    message_id=id_text[slot] if mid == _ID_TEXT else None if mid < 0 else str(mid),
                    outcome=names[kind >> 1] if kind >> 1 else None,
                    done_time=None if done != done else done,  # NaN: none
                )
            )
            seq = self._ev_prev[slot]
        out.reverse()
        return out

    def aggregate(self) -> Aggregate:
        return Aggregate(
            touched=len(self._rows),
            mt=self._n_mt,
            mo=self._n_mo,
            outcomes=dict(self._outcomes),
            opted_out=self._n_opted_out,
            opt_outs=self._opt_outs,
            opt_ins=self._opt_ins,
            events=min(self._seq, self._capacity),
            history_size=self._capacity,
        )

    @property
    def per_subscriber(self) -> int:
        """Most events ``history`` returns for one subscriber."""
        return self._per_subscriber

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, msisdn: object) -> bool:
        return isinstance(msisdn, str) and self._row(msisdn) is not None

    def __iter__(self) -> Iterator[str]:
        """The touched subscribers' MSISDNs, in the order they were first touched."""
        other = self._other_keys
        for row, number in enumerate(self._msisdn):
            yield other[row] if number < 0 else str(number)


_CTouchedStore: type[PyTouchedStore] | None = None
try:  # the optional C implementation (build_ctraits.py builds it)
    if os.environ.get("SMSIM_NO_CSTATE") or os.environ.get("SMSIM_NO_CTRAITS"):
        raise ImportError("SMSIM_NO_CSTATE or SMSIM_NO_CTRAITS is set")
    from . import _cstate

    _cstate.bind(Counters, HistoryEntry, Aggregate)
    _CTouchedStore = _cstate.TouchedStore  # type: ignore[assignment]
except ImportError:  # pragma: no cover - depends on the build
    pass

if TYPE_CHECKING:
    TouchedStore = PyTouchedStore
else:
    TouchedStore = _CTouchedStore or PyTouchedStore
