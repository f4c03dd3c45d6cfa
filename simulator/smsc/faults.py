"""Fault injection: which request, bind or receipt an operator's SMSC gets wrong, and when.

Sans-IO like the SMPP core: the plan is told the time and asked questions ("refuse this
submit?", "delay this response?"); the server and the operators act on the answers and
schedule the one-shot kinds (bind drops, outages, malformed PDUs). Each rule draws from
its own generator, seeded from (seed, rule id, kind), so a run replayed with the same
seed and the same traffic hits the same messages. With no rule of a kind, its question
costs one truth test on the hot path.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from simulator.config import FAULT_ACTIONS, FaultKind, FaultRule
from simulator.smpp.constants import STAT_STATE, Status, status_code
from simulator.subscribers.numbering import normalize

#: Digits of a canonical Egyptian mobile number (``2010XXXXXXXX``).
_MSISDN_DIGITS = 12
_DEFAULT_STATUS = {
    FaultKind.SUBMIT_ERROR: int(Status.ESME_RSYSERR),
    FaultKind.BIND_REFUSE: int(Status.ESME_RBINDFAIL),
}


def _prefix(text: str) -> str:
    """A destination prefix in the canonical international form (``015`` -> ``2015``)."""
    p = text.strip().lstrip("+")
    if p.startswith("00"):
        p = p[2:]
    elif p.startswith("0"):
        p = "20" + p[1:]
    if not p.isdigit():
        raise ValueError(f"number prefix {text!r} is not digits")
    return p


def _numbers(specs: list[str]) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """Prefixes, and ranges ``LO-HI`` whose ends are numbers or prefixes of them (``0155-0156``
    is every number from 2015500000000 to 2015699999999: LO padded with 0s, HI with 9s)."""
    prefixes: list[str] = []
    ranges: list[tuple[int, int]] = []
    for spec in specs:
        lo_text, dash, hi_text = spec.strip().partition("-")
        if dash:
            lo = _prefix(lo_text).ljust(_MSISDN_DIGITS, "0")
            hi = _prefix(hi_text).ljust(_MSISDN_DIGITS, "9")
            if len(lo) != _MSISDN_DIGITS or len(hi) != _MSISDN_DIGITS or lo > hi:
                raise ValueError(f"number range {spec!r}: low to high, up to 12 digits each")
            ranges.append((int(lo), int(hi)))
        else:
            prefixes.append(_prefix(spec))
    return tuple(prefixes), tuple(ranges)


@dataclass(slots=True, eq=False)
class Fault:
    """A rule placed on the plan's clock: on from ``start`` to ``end`` (loop seconds)."""

    id: int
    rule: FaultRule
    name: str
    start: float
    end: float
    status: int
    prefixes: tuple[str, ...]
    ranges: tuple[tuple[int, int], ...]
    rng: random.Random
    #: How many times it acted (requests refused or delayed, binds dropped, PDUs sent).
    hits: int = 0
    #: Set when the rule was removed: its scheduled actions do nothing.
    removed: bool = False
    #: receipt_fail: the message_state it ends in.
    state: int = 0

    def on(self, now: float) -> bool:
        return self.start <= now < self.end and not self.removed

    def applies(self, operator: str, account: str | None) -> bool:
        rule = self.rule
        return (rule.operator is None or rule.operator == operator) and (
            rule.account is None or rule.account == account
        )

    def matches(self, dest: str) -> bool:
        """Every destination for a rule without numbers; else a number in them (an empty
        ``dest``, submit_multi's, is in none)."""
        if not self.prefixes and not self.ranges:
            return True
        number = normalize(dest)
        if number is None:
            return False
        if number.startswith(self.prefixes):
            return True
        n = int(number)
        return any(lo <= n <= hi for lo, hi in self.ranges)

    def draw(self) -> bool:
        """Whether this occurrence is hit (the rule's share, from its own generator)."""
        share = self.rule.share
        return share >= 1.0 or (share > 0.0 and self.rng.random() < share)

    def describe(self, now: float) -> dict[str, object]:
        """The control API's view of the rule."""
        return {
            "id": self.id,
            "name": self.name,
            "active": self.on(now),
            "starts_in": max(0.0, self.start - now),
            "ends_in": None if self.end == float("inf") else max(0.0, self.end - now),
            "hits": self.hits,
            "rule": self.rule.model_dump(mode="json", exclude_defaults=True),
        }


class FaultPlan:
    """Every fault rule of one SMSC process, by kind, and the questions the hot path asks."""

    __slots__ = ("_by_kind", "_next_id", "active", "faults", "seed")

    def __init__(self, seed: int = 1442) -> None:
        self.seed = seed
        self.faults: dict[int, Fault] = {}
        #: Any rule at all: the one attribute the hot path reads when there is none.
        self.active = False
        self._next_id = 1
        self._by_kind: dict[FaultKind, list[Fault]] = {k: [] for k in FaultKind}

    # --- rules ------------------------------------------------------------------------------

    def add(self, rule: FaultRule, now: float) -> Fault:
        """Place ``rule`` on the clock (its ``start`` counted from ``now``); ValueError when
        its status or numbers do not parse."""
        fid = self._next_id
        status = _DEFAULT_STATUS.get(rule.kind, 0)
        if rule.status is not None:
            status = status_code(rule.status)
        prefixes, ranges = _numbers(rule.numbers)
        start = now + rule.start
        end = float("inf") if rule.duration is None else start + rule.duration
        fault = Fault(
            fid,
            rule,
            rule.name or f"{rule.kind.value}-{fid}",
            start,
            end,
            status,
            prefixes,
            ranges,
            random.Random(f"{self.seed}/{fid}/{rule.kind.value}"),
        )
        if rule.kind is FaultKind.RECEIPT_FAIL:
            fault.state = int(STAT_STATE[rule.stat])
        self._next_id += 1
        self.faults[fid] = fault
        self._by_kind[rule.kind].append(fault)
        self.active = True
        return fault

    def remove(self, fid: int) -> Fault | None:
        fault = self.faults.pop(fid, None)
        if fault is not None:
            fault.removed = True
            self._by_kind[fault.rule.kind].remove(fault)
            self.active = bool(self.faults)
        return fault

    def clear(self) -> int:
        ids = list(self.faults)
        for fid in ids:
            self.remove(fid)
        return len(ids)

    def expire(self, now: float) -> list[Fault]:
        """Take out the rules whose time is over; returns them (for one log line each)."""
        done = [f for f in self.faults.values() if f.end <= now]
        for fault in done:
            self.remove(fault.id)
        return done

    def has(self, kind: FaultKind) -> bool:
        return bool(self._by_kind[kind])

    @staticmethod
    def is_action(kind: FaultKind) -> bool:
        return kind in FAULT_ACTIONS

    # --- questions (hot path) ---------------------------------------------------------------

    def _first(
        self, kind: FaultKind, now: float, operator: str, account: str | None, dest: str = ""
    ) -> Fault | None:
        for fault in self._by_kind[kind]:
            if (
                fault.on(now)
                and fault.applies(operator, account)
                and fault.matches(dest)
                and fault.draw()
            ):
                fault.hits += 1
                return fault
        return None

    def submit_error(self, now: float, operator: str, account: str | None, dest: str) -> int:
        """The status to refuse this submit with; 0: accept it."""
        if not self._by_kind[FaultKind.SUBMIT_ERROR]:
            return 0
        fault = self._first(FaultKind.SUBMIT_ERROR, now, operator, account, dest)
        return fault.status if fault is not None else 0

    def bind_refusal(self, now: float, operator: str, account: str | None) -> int:
        """The status to refuse this bind with; 0: go on."""
        if not self._by_kind[FaultKind.BIND_REFUSE]:
            return 0
        fault = self._first(FaultKind.BIND_REFUSE, now, operator, account)
        return fault.status if fault is not None else 0

    def response_delay(self, now: float, operator: str, account: str | None) -> float:
        """Extra seconds before this request is answered."""
        if not self._by_kind[FaultKind.RESPONSE_DELAY]:
            return 0.0
        fault = self._first(FaultKind.RESPONSE_DELAY, now, operator, account)
        return fault.rule.delay if fault is not None else 0.0

    def enquire_link(self, now: float, operator: str, account: str | None) -> float | None:
        """Seconds before this enquire_link is answered; None: never."""
        if not self._by_kind[FaultKind.ENQUIRE_LINK]:
            return 0.0
        fault = self._first(FaultKind.ENQUIRE_LINK, now, operator, account)
        if fault is None:
            return 0.0
        return None if fault.rule.drop else fault.rule.delay

    def receipt_delay(self, now: float, operator: str, account: str | None) -> float:
        if not self._by_kind[FaultKind.RECEIPT_DELAY]:
            return 0.0
        fault = self._first(FaultKind.RECEIPT_DELAY, now, operator, account)
        return fault.rule.delay if fault is not None else 0.0

    def receipt_duplicate(self, now: float, operator: str, account: str | None) -> bool:
        if not self._by_kind[FaultKind.RECEIPT_DUPLICATE]:
            return False
        return self._first(FaultKind.RECEIPT_DUPLICATE, now, operator, account) is not None

    def receipt_failure(
        self, now: float, operator: str, account: str | None, dest: str
    ) -> tuple[int, int] | None:
        """(message_state, err) this message ends in instead of its own fate; None: its own."""
        if not self._by_kind[FaultKind.RECEIPT_FAIL]:
            return None
        fault = self._first(FaultKind.RECEIPT_FAIL, now, operator, account, dest)
        return (fault.state, fault.rule.err) if fault is not None else None

    def down(self, now: float, operator: str) -> Fault | None:
        """The outage this operator is in, if any (its connections are closed at once)."""
        for fault in self._by_kind[FaultKind.OUTAGE]:
            if fault.on(now) and (fault.rule.operator is None or fault.rule.operator == operator):
                return fault
        return None


def malformed_pdu(form: str, sequence_number: int) -> bytes:
    """One PDU that a client must not accept as it is, for the ``malformed`` fault:

    - ``unknown_command``: a well-framed header with a command_id SMPP 3.4 does not
      define (the client should answer generic_nack ESME_RINVCMDID);
    - ``bad_body``: a deliver_sm whose body ends inside its first C-string (no NUL: the
      client should answer with an error status, ESME_RINVMSGLEN or generic_nack);
    - ``bad_length``: a header whose command_length (8) is below the header's own 16
      octets: the stream cannot be framed any more, the client should close;
    - ``truncated``: the first half of a deliver_sm; the SMSC then closes the connection,
      as a link that dies mid-PDU.
    """
    if form == "unknown_command":
        return struct.pack(">IIII", 16, 0x0000_0111, 0, sequence_number)
    if form == "bad_body":
        body = b"\x00\x01\x012010"  # service_type "", source TON/NPI, source_addr cut short
        return struct.pack(">IIII", 16 + len(body), 0x0000_0005, 0, sequence_number) + body
    if form == "bad_length":
        return struct.pack(">IIII", 8, 0x0000_0005, 0, sequence_number)
    if form == "truncated":
        return struct.pack(">IIII", 64, 0x0000_0005, 0, sequence_number) + b"\x00\x01\x01"
    raise ValueError(f"unknown malformed form {form!r}")
