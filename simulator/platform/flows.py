"""The reference platform's flow engine: RapidPro's messaging flows, small and sans-IO.

Flows are compiled once (``campaigns.load_flows`` builds them from YAML) into the frozen
``FlowDef`` / ``Node`` / ``Router`` records below; the engine then runs per incoming
message at thousands of messages a second, so nothing here parses YAML, compiles a regex
or scans all runs on the hot path. ``FlowEngine`` changes ``Contact`` and ``FlowRun``
records and says so with effects (``SendMsg``, ``RunChanged``, ``ContactChanged``,
``MsgHandled``); the caller persists and sends. Time is passed in (simulated Unix
seconds) and the only randomness (run uuids, random splits) comes from the seeded
``random.Random`` given to the engine, so a replay is identical.

RapidPro behaviours kept on purpose:
- keyword triggers match the first word of a message, case-insensitively; here Arabic is
  also normalised (alef forms, ى/ي, ة/ه, tatweel, harakat) but digits are not, so ``١``
  never matches a keyword ``1``;
- number tests (``has_number_eq`` ...) look at every number in the text and accept
  Arabic-Indic digits (``٢`` is 2), as goflow's do; the result's value is the match;
- a keyword of another flow interrupts a waiting run and starts that flow;
- a catch-all flow (RapidPro's "catch all" trigger), when there is one, starts for a
  message that no waiting run and no keyword takes; without one it goes to the inbox;
- an opt-out stops the contact and interrupts its run; a stopped contact who writes
  anything else is un-stopped and the message handled normally;
- a run's expiry restarts at each wait (``expire_after_minutes`` after the wait began).
"""

from __future__ import annotations

import heapq
import random
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .model import Contact, FlowRun

# --- text: normalisation, words, numbers ------------------------------------------------

_DROP: Final = (
    [chr(c) for c in range(0x0610, 0x061B)]  # Quranic annotation signs
    + [chr(c) for c in range(0x064B, 0x0660)]  # harakat, shadda, sukun
    + ["\u0670", "\u0640"]  # superscript alef, tatweel
    + [chr(c) for c in range(0x06D6, 0x06EE)]  # Quranic marks
    + [chr(c) for c in range(0x200B, 0x2010)]  # zero-width and direction marks
    + ["\u2066", "\u2067", "\u2068", "\u2069", "\ufeff"]
)
_NORMALISE: Final = str.maketrans(
    {
        **dict.fromkeys("أإآٱ", "ا"),
        "ى": "ي",
        "ی": "ي",  # Farsi ya, from some phone keyboards
        "ک": "ك",
        "ة": "ه",
        **dict.fromkeys(_DROP),
    }
)
#: A word: letters, digits and underscores, with inner apostrophes ("don't"), as goflow.
_WORD: Final = re.compile(r"\w+(?:'\w+)*")
#: A number: digits of any script, "," grouping, "." or "٫" decimals; a sign only at a
#: word's start (so "رقم-2" is 2, not -2). Digits glued to Latin letters are Franco-Arabic
#: letters ("ta2yeemy 3" is 3: the 2 is a hamza), as goflow's word-wise number tests see
#: them; Arabic letters don't glue ("ب1" is 1).
_NUMBER: Final = re.compile(r"(?:(?<!\S)[-+])?(?<![A-Za-z\d.,٫])\d[\d,]*(?:[.٫]\d+)?(?![A-Za-z\d])")
_ASCII_DIGITS: Final = str.maketrans(
    {**{chr(0x0660 + i): str(i) for i in range(10)}, **{chr(0x06F0 + i): str(i) for i in range(10)}}
)


def normalize(text: str) -> str:
    """Lower case; one spelling for alef / ya / ta marbuta; no tatweel or harakat.

    People type ``مسابقة``, ``مسابقه`` and ``مسـابقة`` for the same keyword.
    Digits are left alone: RapidPro's triggers do not equate ``١`` and ``1``.
    """
    return text.translate(_NORMALISE).lower()


def words(text: str) -> list[str]:
    """The normalised words of a text, as the word tests and triggers see them."""
    return _WORD.findall(normalize(text))


def first_word(text: str) -> str:
    """The normalised first word ("" if none): what keyword triggers look at."""
    m = _WORD.search(normalize(text))
    return m.group() if m else ""


def numbers(text: str) -> list[tuple[float, str]]:
    """Every number in a text with its ASCII spelling: ``"الإجابة ٢"`` → ``[(2.0, "2")]``."""
    found: list[tuple[float, str]] = []
    for raw in _NUMBER.findall(text):
        spelled = raw.replace(",", "").replace("٫", ".").translate(_ASCII_DIGITS)
        try:
            found.append((float(spelled), spelled.lstrip("+")))
        except ValueError:  # digits of a script float() does not read
            continue
    return found


class _Input:
    """One text being routed; words and numbers are computed once, only if a test asks."""

    __slots__ = ("_joined", "_numbers", "_tokens", "_tokset", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens: list[str] | None = None
        self._tokset: frozenset[str] | None = None
        self._joined: str | None = None
        self._numbers: list[tuple[float, str]] | None = None

    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = words(self.text)
        return self._tokens

    def tokset(self) -> frozenset[str]:
        if self._tokset is None:
            self._tokset = frozenset(self.tokens())
        return self._tokset

    def joined(self) -> str:
        if self._joined is None:
            self._joined = " " + " ".join(self.tokens()) + " "
        return self._joined

    def numbers(self) -> list[tuple[float, str]]:
        if self._numbers is None:
            self._numbers = numbers(self.text)
        return self._numbers


# --- router tests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Test:
    """A router case's test: ``match`` returns the matched value, or None."""

    def match(self, inp: _Input) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class HasNumber(Test):
    def match(self, inp: _Input) -> str | None:
        found = inp.numbers()
        return found[0][1] if found else None


@dataclass(frozen=True, slots=True)
class HasNumberEq(Test):
    value: float

    def match(self, inp: _Input) -> str | None:
        for num, spelled in inp.numbers():
            if num == self.value:
                return spelled
        return None


@dataclass(frozen=True, slots=True)
class HasNumberBetween(Test):
    low: float
    high: float

    def match(self, inp: _Input) -> str | None:
        for num, spelled in inp.numbers():
            if self.low <= num <= self.high:
                return spelled
        return None


@dataclass(frozen=True, slots=True)
class HasAnyWord(Test):
    words: frozenset[str]

    def match(self, inp: _Input) -> str | None:
        if self.words.isdisjoint(inp.tokset()):
            return None
        return " ".join(w for w in inp.tokens() if w in self.words)


@dataclass(frozen=True, slots=True)
class HasAllWords(Test):
    words: frozenset[str]

    def match(self, inp: _Input) -> str | None:
        if not self.words <= inp.tokset():
            return None
        return " ".join(w for w in inp.tokens() if w in self.words)


@dataclass(frozen=True, slots=True)
class HasPhrase(Test):
    #: The phrase's normalised words joined by single spaces.
    phrase: str

    def match(self, inp: _Input) -> str | None:
        return self.phrase if f" {self.phrase} " in inp.joined() else None


@dataclass(frozen=True, slots=True)
class HasText(Test):
    def match(self, inp: _Input) -> str | None:
        stripped = inp.text.strip()
        return stripped or None


@dataclass(frozen=True, slots=True)
class Regex(Test):
    #: Compiled once at load, case-insensitive, searched in the text as written.
    pattern: re.Pattern[str]

    def match(self, inp: _Input) -> str | None:
        m = self.pattern.search(inp.text)
        return m.group() if m else None


# --- templates --------------------------------------------------------------------------

#: ``@@`` is a literal "@"; ``@contact.x``, ``@fields.x``, ``@results.x[.category]``,
#: ``@input`` are references; any other "@" is text (an e-mail address, a handle).
_REF: Final = re.compile(
    r"@@|@(contact|fields|results)\.([A-Za-z_][A-Za-z0-9_]*)(\.category|\.value)?|@input\b"
)
CONTACT_ATTRIBUTES: Final = frozenset({"name", "urn", "uuid", "language", "msisdn"})


@dataclass(frozen=True, slots=True)
class Ref:
    kind: str  # "contact", "fields", "results", "category" or "input"
    name: str = ""


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Template:
    """A message text split once into literals and references, so rendering is a join."""

    source: str
    parts: tuple[str | Ref, ...]

    @classmethod
    def compile(cls, source: str) -> Template:
        """Parse ``source``; an unknown ``@contact.x`` raises ValueError."""
        parts: list[str | Ref] = []
        pos = 0
        for m in _REF.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            pos = m.end()
            whole, scope, name, suffix = m.group(), m.group(1), m.group(2), m.group(3)
            if whole == "@@":
                parts.append("@")
            elif whole == "@input":
                parts.append(Ref("input"))
            elif scope == "contact":
                if name not in CONTACT_ATTRIBUTES or suffix:
                    raise ValueError(
                        f"unknown reference '{whole}' (contact has "
                        f"{', '.join(sorted(CONTACT_ATTRIBUTES))})"
                    )
                parts.append(Ref("contact", name))
            elif scope == "fields":
                if suffix:
                    raise ValueError(f"unknown reference '{whole}'")
                parts.append(Ref("fields", name))
            else:
                parts.append(Ref("category" if suffix == ".category" else "results", name))
        if pos < len(source):
            parts.append(source[pos:])
        merged: list[str | Ref] = []
        for part in parts:  # "@@" leaves adjacent literals: join them
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] = merged[-1] + part
            else:
                merged.append(part)
        return cls(source, tuple(merged))

    @property
    def result_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Ref) and p.kind in _RESULT)

    def render(self, contact: Contact, run: FlowRun, input_text: str) -> str:
        parts = self.parts
        if len(parts) == 1 and isinstance(parts[0], str):
            return parts[0]
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif part.kind == "fields":
                out.append(_stringify(contact.fields.get(part.name)))
            elif part.kind == "results":
                out.append(_stringify(run.values.get(part.name, {}).get("value")))
            elif part.kind == "category":
                out.append(_stringify(run.values.get(part.name, {}).get("category")))
            elif part.kind == "contact":
                out.append(_stringify(getattr(contact, part.name)))
            else:
                out.append(input_text)
        return "".join(out)


_RESULT: Final = frozenset({"results", "category"})


# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """Something a node does on entry; ``apply`` changes the records and adds effects."""

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class SendAction(Action):
    text: Template

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        text = self.text.render(ctx.contact, run, ctx.input)
        ctx.effects.append(SendMsg(ctx.contact.id, text, run.flow_uuid))


@dataclass(frozen=True, slots=True)
class SaveResult(Action):
    name: str
    value: Template
    category: str = ""

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        value = self.value.render(ctx.contact, run, ctx.input)
        category = self.category or value
        run.values[self.name] = _result(value, category, ctx.input, run, ctx.now)


@dataclass(frozen=True, slots=True)
class SetField(Action):
    field: str
    #: A number is stored as a number (a counter to increment); text is a template.
    value: Template | int | float

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        value = self.value
        new = value.render(ctx.contact, run, ctx.input) if isinstance(value, Template) else value
        fields = ctx.contact.fields
        if fields.get(self.field, _MISSING) != new:
            fields[self.field] = new
            ctx.contact_dirty = True


@dataclass(frozen=True, slots=True)
class IncrementField(Action):
    """Adds ``by`` to a numeric field (a quiz score); a missing or non-number field is 0."""

    field: str
    by: int | float = 1

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        fields = ctx.contact.fields
        fields[self.field] = _as_number(fields.get(self.field)) + self.by
        ctx.contact_dirty = True


@dataclass(frozen=True, slots=True)
class AddGroup(Action):
    group: str

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        groups = ctx.contact.groups
        if self.group not in groups:
            groups.append(self.group)
            ctx.contact_dirty = True


@dataclass(frozen=True, slots=True)
class RemoveGroup(Action):
    group: str

    def apply(self, ctx: _Ctx, run: FlowRun) -> None:
        groups = ctx.contact.groups
        if self.group in groups:
            groups.remove(self.group)
            ctx.contact_dirty = True


_MISSING: Final = object()


def _as_number(value: Any) -> int | float:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int | float):
        return value
    found = numbers(str(value))
    if not found:
        return 0
    num = found[0][0]
    return int(num) if num.is_integer() else num


def _result(value: str, category: str, text: str, run: FlowRun, now: float) -> dict[str, Any]:
    node = run.path[-1][0] if run.path else ""
    return {"value": value, "category": category, "input": text, "node": node, "time": now}


# --- flow definitions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for the contact's reply; with a timeout, go to ``timeout_next`` when none came."""

    timeout_seconds: float | None = None
    timeout_next: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    #: None only in a random router.
    test: Test | None
    category: str
    next: str


@dataclass(frozen=True, slots=True)
class Router:
    """Picks an exit: the first case whose test matches, else ``other``.

    After a wait it routes the reply; without one it routes ``operand`` (a template such
    as ``@fields.quiz_score``). A random router picks a case with the engine's rng.
    """

    cases: tuple[Case, ...]
    other_next: str | None = None
    other_category: str = "Other"
    result: str | None = None
    operand: Template | None = None
    random: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    """Actions on entry, then a wait (+ router), a router, ``next``, or the run's end."""

    id: str
    actions: tuple[Action, ...] = ()
    wait: Wait | None = None
    router: Router | None = None
    next: str | None = None

    def exits(self) -> tuple[str, ...]:
        """The nodes this one can lead to (for validation and reachability)."""
        out: list[str] = []
        if self.next is not None:
            out.append(self.next)
        if self.wait is not None and self.wait.timeout_next is not None:
            out.append(self.wait.timeout_next)
        if self.router is not None:
            out.extend(c.next for c in self.router.cases)
            if self.router.other_next is not None:
                out.append(self.router.other_next)
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class QuizQuestion:
    """A multiple-choice question: the answer key the subscriber simulation reads."""

    node: str
    #: The run result holding the answer ("correct", "wrong" or "other").
    result: str
    text: str
    options: tuple[str, ...]
    #: The right option's number, 1-based.
    correct: int
    score_field: str


@dataclass(frozen=True, slots=True)
class FlowDef:
    uuid: str
    name: str
    #: Normalised single words; the first word of a message starts the flow.
    keywords: tuple[str, ...]
    expire_after_minutes: float
    start: str
    nodes: Mapping[str, Node]
    questions: tuple[QuizQuestion, ...] = ()
    #: Free-form data for scenarios (a series and its order, a topic, ...).
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: The file it came from, for messages.
    source: str = ""
    #: Started by any message that no waiting run and no keyword takes (at most one).
    catch_all: bool = False

    @property
    def answer_key(self) -> dict[str, int]:
        """Result name → the correct option's number, for a quiz flow."""
        return {q.result: q.correct for q in self.questions}


# --- effects ----------------------------------------------------------------------------


class Handling(StrEnum):
    """What became of an incoming message (RapidPro: handled by a flow, or the inbox)."""

    RESUMED = "resumed"  # a reply to the contact's waiting run
    TRIGGERED = "triggered"  # its first word started a flow
    CAUGHT = "caught"  # no run waited and no keyword matched: the catch-all flow started
    OPTED_OUT = "opted_out"  # an opt-out keyword
    UNHANDLED = "unhandled"  # nothing to do with it: the inbox
    IGNORED = "ignored"  # the contact is blocked


@dataclass(frozen=True, slots=True)
class MsgHandled:
    """First effect of every ``handle_message``: how to mark the incoming message."""

    contact_id: int
    handling: Handling
    flow_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class SendMsg:
    contact_id: int
    text: str
    #: None for the platform's own messages (the opt-out confirmation).
    flow_uuid: str | None


@dataclass(frozen=True, slots=True)
class RunChanged:
    """The run was created, moved on, or exited. The engine's live record: persist it (or
    copy it) before the next call; an exited run is no longer touched."""

    run: FlowRun


@dataclass(frozen=True, slots=True)
class ContactChanged:
    """Fields, groups or the stopped flag changed (once per call, after the rest)."""

    contact: Contact


Effect = MsgHandled | SendMsg | RunChanged | ContactChanged

DEFAULT_OPT_OUT_KEYWORDS: Final = ("stop", "إلغاء", "الغاء", "وقف", "unsubscribe")
DEFAULT_OPT_OUT_REPLIES: Final[Mapping[str, str]] = {
    "ara": (
        "تم إلغاء اشتراكك في رسائل منصة 1442 لوزارة التضامن الاجتماعي. "
        "لإعادة الاشتراك أرسل أي رسالة إلى 1442."
    ),
    "eng": (
        "You are unsubscribed from the Ministry of Social Solidarity's 1442 messages. "
        "Send any message to 1442 to subscribe again."
    ),
}


def prize_draw(
    contacts_in_group: Iterable[Contact], winners: int, rng: random.Random
) -> list[Contact]:
    """Draw ``winners`` distinct contacts (e.g. the quiz's full scores), in draw order.

    Sorted by id first so the draw depends on the seed, not on the store's order;
    blocked contacts are not eligible. Fewer candidates than prizes: all of them win.
    """
    if winners < 0:
        raise ValueError("winners must be >= 0")
    eligible = sorted({c.id: c for c in contacts_in_group if not c.blocked}.values(), key=_by_id)
    return rng.sample(eligible, min(winners, len(eligible)))


def _by_id(contact: Contact) -> int:
    return contact.id


# --- the engine -------------------------------------------------------------------------

_TIMEOUT: Final = 0
_EXPIRY: Final = 1
#: Non-wait steps one call may take; the loader rejects loops without a wait, so only a
#: hand-built flow can get here.
_MAX_STEPS: Final = 1000
#: Rebuild the deadline heap once this many of its entries are stale (and half of it).
_COMPACT_AT: Final = 4096


class _Ctx:
    """One call's work for one contact: the effects so far and whether it changed."""

    __slots__ = ("contact", "contact_dirty", "effects", "input", "now")

    def __init__(self, contact: Contact, now: float, text: str, effects: list[Effect]) -> None:
        self.contact = contact
        self.now = now
        self.input = text
        self.effects = effects
        self.contact_dirty = False

    def finish(self) -> None:
        if self.contact_dirty:
            self.contact.modified_on = self.now
            self.effects.append(ContactChanged(self.contact))
            self.contact_dirty = False


class _Active:
    """A waiting run, its flow and contact, and the times of its live heap entries."""

    __slots__ = ("contact", "expiry_at", "flow", "run", "timeout_at")

    def __init__(self, run: FlowRun, flow: FlowDef, contact: Contact) -> None:
        self.run = run
        self.flow = flow
        self.contact = contact
        self.timeout_at: float | None = None
        self.expiry_at: float | None = None


class _Seen:
    """Contact ids that have been in a flow: one bit each (ids are dense store ids)."""

    __slots__ = ("bits", "other")

    _DENSE_LIMIT: Final = 1 << 32

    def __init__(self) -> None:
        self.bits = bytearray()
        self.other: set[int] = set()

    def add(self, i: int) -> None:
        if not 0 <= i < self._DENSE_LIMIT:
            self.other.add(i)
            return
        byte = i >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))
        self.bits[byte] |= 1 << (i & 7)

    def __contains__(self, i: int) -> bool:
        if not 0 <= i < self._DENSE_LIMIT:
            return i in self.other
        byte = i >> 3
        return byte < len(self.bits) and bool(self.bits[byte] >> (i & 7) & 1)


class FlowEngine:
    """Runs compiled flows for many contacts; sans-IO, deterministic, one thread.

    Keeps only the waiting runs in memory (contact id → run) and a heap of their
    deadlines (wait timeouts, expiries) so ``tick`` touches what is due, never all runs.
    Every call returns the effects of what it did, in order.
    """

    def __init__(
        self,
        flows: Iterable[FlowDef],
        *,
        rng: random.Random,
        opt_out_keywords: Iterable[str] = DEFAULT_OPT_OUT_KEYWORDS,
        opt_out_replies: Mapping[str, str] = DEFAULT_OPT_OUT_REPLIES,
    ) -> None:
        self._rng = rng
        self._flows: dict[str, FlowDef] = {}
        self._triggers: dict[str, FlowDef] = {}
        self._catch_all: FlowDef | None = None
        self._opt_out = frozenset(normalize(k) for k in opt_out_keywords)
        self._opt_out_replies = dict(opt_out_replies)
        for flow in flows:
            if flow.uuid in self._flows:
                raise ValueError(f"two flows with uuid {flow.uuid}")
            self._flows[flow.uuid] = flow
            if flow.catch_all:
                if self._catch_all is not None:
                    raise ValueError(
                        f"two catch-all flows: {self._catch_all.name!r} and {flow.name!r}"
                    )
                self._catch_all = flow
            for keyword in flow.keywords:
                other = self._triggers.get(keyword)
                if other is not None:
                    raise ValueError(
                        f"keyword {keyword!r} starts both {other.name!r} and {flow.name!r}"
                    )
                if keyword in self._opt_out:
                    raise ValueError(f"keyword {keyword!r} of {flow.name!r} is an opt-out word")
                self._triggers[keyword] = flow
        self._active: dict[int, _Active] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._stale = 0
        self._seen: dict[str, _Seen] = {uuid_: _Seen() for uuid_ in self._flows}

    # -- inspection ----------------------------------------------------------------------

    @property
    def flows(self) -> Mapping[str, FlowDef]:
        return self._flows

    def flow_for_keyword(self, text: str) -> FlowDef | None:
        """The flow the first word of ``text`` would start, if any."""
        return self._triggers.get(first_word(text))

    def active_run(self, contact_id: int) -> FlowRun | None:
        active = self._active.get(contact_id)
        return active.run if active is not None else None

    @property
    def waiting(self) -> int:
        """How many runs are waiting for a reply."""
        return len(self._active)

    @property
    def scheduled(self) -> int:
        """Entries in the deadline heap, stale ones included (bounded by compaction)."""
        return len(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest time ``tick`` may have work (may be a stale entry's)."""
        return self._heap[0][0] if self._heap else None

    # -- the calls -----------------------------------------------------------------------

    def handle_message(self, contact: Contact, text: str, now: float) -> list[Effect]:
        """Route one incoming message: opt-out, the waiting run, a keyword, the catch-all
        flow, or the inbox."""
        cid = contact.id
        if contact.blocked:
            return [MsgHandled(cid, Handling.IGNORED)]
        effects: list[Effect] = []
        ctx = _Ctx(contact, now, text, effects)
        match = _WORD.search(text.translate(_NORMALISE).lower())
        word = match.group() if match else ""
        active = self._current(ctx)  # overdue timeouts / expiry first (their effects too)
        if word in self._opt_out:
            # MsgHandled goes first, ahead of anything the catch-up above produced
            effects.insert(0, MsgHandled(cid, Handling.OPTED_OUT))
            if active is not None:
                self._exit(ctx, active, "interrupted")
            if not contact.stopped:
                contact.stopped = True
                ctx.contact_dirty = True
                reply = self._opt_out_replies.get(contact.language)
                if reply is None:
                    reply = next(iter(self._opt_out_replies.values()), "")
                if reply:
                    effects.append(SendMsg(cid, reply, None))
            ctx.finish()
            return effects
        if contact.stopped:  # writing again is opting back in
            contact.stopped = False
            ctx.contact_dirty = True
        flow = self._triggers.get(word) if word else None
        if active is not None and (flow is None or flow is active.flow):
            effects.insert(0, MsgHandled(cid, Handling.RESUMED, active.flow.uuid))
            self._resume(ctx, active)
        elif flow is not None:
            effects.insert(0, MsgHandled(cid, Handling.TRIGGERED, flow.uuid))
            self._start(ctx, flow, active)
        elif self._catch_all is not None:
            effects.insert(0, MsgHandled(cid, Handling.CAUGHT, self._catch_all.uuid))
            self._start(ctx, self._catch_all, active)
        else:
            effects.insert(0, MsgHandled(cid, Handling.UNHANDLED))
        ctx.finish()
        return effects

    def start(
        self, contact: Contact, flow_uuid: str, now: float, restart_participants: bool = True
    ) -> list[Effect]:
        """Start a flow for a contact (API flow start, broadcast), interrupting its run.

        Stopped and blocked contacts are skipped, as RapidPro does; so are contacts who
        have been in this flow before when ``restart_participants`` is False.
        """
        flow = self._flows.get(flow_uuid)
        if flow is None:
            raise KeyError(f"no flow with uuid {flow_uuid}")
        if contact.stopped or contact.blocked:
            return []
        if not restart_participants and contact.id in self._seen[flow_uuid]:
            return []
        effects: list[Effect] = []
        ctx = _Ctx(contact, now, "", effects)
        self._start(ctx, flow, self._current(ctx))
        ctx.finish()
        return effects

    def interrupt(self, contact: Contact, now: float) -> list[Effect]:
        """End the contact's waiting run, if any (blocking, an API interrupt)."""
        effects: list[Effect] = []
        ctx = _Ctx(contact, now, "", effects)
        active = self._current(ctx)
        if active is not None:
            self._exit(ctx, active, "interrupted")
        ctx.finish()
        return effects

    def tick(self, now: float, limit: int | None = None) -> list[Effect]:
        """Fire the wait timeouts and expiries due by ``now`` (at most ``limit`` of them).

        Each acts as of its own deadline, so the outcome does not depend on how often
        tick is called; a contact's overdue deadlines are also applied before its next
        message or start.
        """
        heap = self._heap
        effects: list[Effect] = []
        fired = 0
        while heap and heap[0][0] <= now and (limit is None or fired < limit):
            when, cid, kind = heapq.heappop(heap)
            active = self._active.get(cid)
            if (
                active is None
                or (active.timeout_at if kind == _TIMEOUT else active.expiry_at) != when
            ):
                self._stale = max(0, self._stale - 1)
                continue
            if kind == _TIMEOUT:
                active.timeout_at = None
            else:
                active.expiry_at = None
                expires_on = active.run.expires_on
                if expires_on is not None and expires_on > when:  # the run waited again
                    self._schedule(active, expires_on, _EXPIRY)
                    continue
            fired += 1
            ctx = _Ctx(active.contact, when, "", effects)
            if kind == _TIMEOUT:
                self._timeout(ctx, active)
            else:
                self._exit(ctx, active, "expired")
            ctx.finish()
        return effects

    def restore(self, contact: Contact, run: FlowRun) -> None:
        """Put a persisted waiting run back (after a restart); exited runs are ignored."""
        flow = self._flows.get(run.flow_uuid)
        if flow is None:
            raise KeyError(f"run {run.uuid}: no flow with uuid {run.flow_uuid}")
        if run.exit_type is not None or run.waiting_node is None:
            return
        if run.waiting_node not in flow.nodes:
            raise KeyError(f"run {run.uuid}: flow {flow.name!r} has no node {run.waiting_node!r}")
        old = self._active.get(contact.id)
        if old is not None:
            self._drop(old)
        active = _Active(run, flow, contact)
        self._active[contact.id] = active
        self._seen[flow.uuid].add(contact.id)
        if run.wait_timeout_on is not None:
            self._schedule(active, run.wait_timeout_on, _TIMEOUT)
        if run.expires_on is not None:
            self._schedule(active, run.expires_on, _EXPIRY)

    # -- internals -----------------------------------------------------------------------

    def _current(self, ctx: _Ctx) -> _Active | None:
        """The contact's waiting run after applying its overdue timeouts / expiry."""
        active = self._active.get(ctx.contact.id)
        if active is None:
            return None
        active.contact = ctx.contact
        now = ctx.now
        while True:
            run = active.run
            timeout_on, expires_on = run.wait_timeout_on, run.expires_on
            if (
                timeout_on is not None
                and timeout_on <= now
                and (expires_on is None or timeout_on < expires_on)
            ):
                ctx.now = timeout_on
                self._timeout(ctx, active)
            elif expires_on is not None and expires_on <= now:
                ctx.now = expires_on
                self._exit(ctx, active, "expired")
            else:
                break
            ctx.now = now
            nxt = self._active.get(ctx.contact.id)
            if nxt is None:
                return None
            active = nxt
        ctx.now = now
        return active

    def _start(self, ctx: _Ctx, flow: FlowDef, active: _Active | None) -> None:
        if active is not None:
            self._exit(ctx, active, "interrupted")
        contact, now = ctx.contact, ctx.now
        bits = self._rng.getrandbits(128)
        run = FlowRun(
            uuid=str(uuid.UUID(int=bits, version=4)),
            flow_uuid=flow.uuid,
            contact_id=contact.id,
            created_on=now,
            modified_on=now,
        )
        self._seen[flow.uuid].add(contact.id)
        new = _Active(run, flow, contact)
        self._active[contact.id] = new
        self._advance(ctx, new, flow.start)

    def _resume(self, ctx: _Ctx, active: _Active) -> None:
        run = active.run
        node = active.flow.nodes[run.waiting_node or ""]
        run.responded = True
        self._unwait(active)
        router = node.router
        assert router is not None  # the loader gives every waiting node a router
        self._advance(ctx, active, self._route(ctx, run, router, _Input(ctx.input)))

    def _timeout(self, ctx: _Ctx, active: _Active) -> None:
        run = active.run
        wait = active.flow.nodes[run.waiting_node or ""].wait
        self._unwait(active)
        text, ctx.input = ctx.input, ""  # @input is empty for what a timeout runs
        self._advance(ctx, active, wait.timeout_next if wait is not None else None)
        ctx.input = text

    def _unwait(self, active: _Active) -> None:
        run = active.run
        run.waiting_node = None
        run.wait_timeout_on = None
        if active.timeout_at is not None:
            active.timeout_at = None
            self._stale += 1

    def _advance(self, ctx: _Ctx, active: _Active, node_id: str | None) -> None:
        run, nodes, now = active.run, active.flow.nodes, ctx.now
        run.modified_on = now
        steps = 0
        while node_id is not None:
            node = nodes[node_id]
            run.path.append((node_id, now))
            for action in node.actions:
                action.apply(ctx, run)
            if node.wait is not None:
                self._wait(active, node.wait, node_id, now)
                ctx.effects.append(RunChanged(run))
                return
            router = node.router
            if router is not None:
                operand = router.operand
                text = operand.render(ctx.contact, run, ctx.input) if operand else ctx.input
                node_id = self._route(ctx, run, router, _Input(text))
            else:
                node_id = node.next
            steps += 1
            if steps > _MAX_STEPS:
                raise RuntimeError(f"flow {active.flow.name!r} loops without a wait")
        self._exit(ctx, active, "completed")

    def _route(self, ctx: _Ctx, run: FlowRun, router: Router, inp: _Input) -> str | None:
        value: str | None = None
        nxt: str | None
        if router.random:
            case = router.cases[self._rng.randrange(len(router.cases))]
            category, nxt, value = case.category, case.next, inp.text
        else:
            for case in router.cases:
                value = case.test.match(inp) if case.test is not None else inp.text
                if value is not None:
                    category, nxt = case.category, case.next
                    break
            else:
                category, nxt, value = router.other_category, router.other_next, inp.text
        if router.result is not None:
            run.values[router.result] = _result(value, category, inp.text, run, ctx.now)
        return nxt

    def _wait(self, active: _Active, wait: Wait, node_id: str, now: float) -> None:
        run = active.run
        run.waiting_node = node_id
        if wait.timeout_seconds is not None:
            run.wait_timeout_on = now + wait.timeout_seconds
            if active.timeout_at is not None:
                self._stale += 1
            self._schedule(active, run.wait_timeout_on, _TIMEOUT)
        expires_on = now + active.flow.expire_after_minutes * 60.0
        run.expires_on = expires_on
        # One live expiry entry per run: a later expiry is re-armed when the entry pops.
        if active.expiry_at is None:
            self._schedule(active, expires_on, _EXPIRY)
        elif expires_on < active.expiry_at:
            self._stale += 1
            self._schedule(active, expires_on, _EXPIRY)

    def _schedule(self, active: _Active, when: float, kind: int) -> None:
        if kind == _TIMEOUT:
            active.timeout_at = when
        else:
            active.expiry_at = when
        heapq.heappush(self._heap, (when, active.run.contact_id, kind))
        if self._stale > _COMPACT_AT and self._stale * 2 > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heap from the live deadlines: stale entries pile up otherwise."""
        heap: list[tuple[float, int, int]] = []
        for cid, active in self._active.items():
            if active.timeout_at is not None:
                heap.append((active.timeout_at, cid, _TIMEOUT))
            if active.expiry_at is not None:
                heap.append((active.expiry_at, cid, _EXPIRY))
        heapq.heapify(heap)
        self._heap = heap
        self._stale = 0

    def _drop(self, active: _Active) -> None:
        del self._active[active.run.contact_id]
        self._stale += (active.timeout_at is not None) + (active.expiry_at is not None)

    def _exit(self, ctx: _Ctx, active: _Active, exit_type: str) -> None:
        run = active.run
        run.exit_type = exit_type
        run.exited_on = ctx.now
        run.modified_on = ctx.now
        run.waiting_node = None
        run.wait_timeout_on = None
        run.expires_on = None
        if self._active.get(run.contact_id) is active:
            self._drop(active)
        ctx.effects.append(RunChanged(run))


def reachable(flow: FlowDef) -> set[str]:
    """The nodes reachable from the flow's start."""
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        node = flow.nodes.get(todo.pop())
        if node is None:
            continue
        for nxt in node.exits():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
