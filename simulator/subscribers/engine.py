"""The subscribers plugged into the SMSC: each MT's fate, and the people's replies.

``SubscriberEngine`` is both the SMSC's receipt policy (``outcome``: the fate of a
message from its recipient's handset and the retry schedule) and its handset sink
(``on_mt``: a whole message is recorded when submitted and reaches the person when its
planned delivery time comes, who may answer later). A message cancelled before then is
never seen (``on_cancel``); a replaced one is seen with its new text, when its new plan
says (``on_replace``). Replies and spontaneous texts are scheduled on the SMSC's timer
heap, on the simulated clock, and injected as MO through the listener of the
subscriber's serving operator (a ported number's new one; ``population.listeners`` maps
other listener names). A set_dpf message that fails for want of the handset has the
SMSC's alert_notification sent when the handset is next on (``SmscServer.
handset_available``, at that real time).

What a scenario asks (``SmscServer.subscribers`` is the engine): ``received_by`` and
``sent_by`` (one subscriber's messages, bounded by ``population.history_per_subscriber``
and the history ring), ``summary`` (totals by operator, outcome, reply kind and
responsiveness), ``describe`` (profile, name, counters, history as plain data).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from simulator.clock import SimClock
from simulator.config import SHORT_CODE, SmscConfig
from simulator.smpp.constants import RECEIPT_STAT, EsmClass, MessageState, Tag
from simulator.smpp.text import decode_text
from simulator.smsc.handsets import MtRecorder, ReceivedMt, mt_part
from simulator.smsc.receipts import Outcome
from simulator.smsc.store import Message

from .behaviour import BehaviourModel, Prompt, Reply, ReplyKind, ReplyModel, is_stop
from .delivery import DeliveryModel, handset_on, local_hour, next_on
from .numbering import TON_NATIONAL, normalize
from .population import Population, Traits
from .profile import Availability, Operator, Responsiveness, Subscriber
from .state import HistoryEntry, TouchedStore

log = logging.getLogger("smsim.subscribers")

_DELIVERED = MessageState.DELIVERED
_DELETED = MessageState.DELETED
_ALWAYS = Availability.ALWAYS
_UDHI = int(EsmClass.UDHI)
_SET_DPF = int(Tag.SET_DPF)
_SAR = int(Tag.SAR_MSG_REF_NUM)
_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)
#: message_state (a plain int) -> the receipt's stat word.
_STAT = {int(k): v for k, v in RECEIPT_STAT.items()}
#: Serving operators as small ints: the planned-outcome counters' keys are
#: ``operator << 4 | state`` (MessageState values are below 16).
_OPERATORS = tuple(Operator)
_OP_CODE = {op: i for i, op in enumerate(_OPERATORS)}
#: Final states for want of the handset: a set_dpf message ending so gets an alert.
_ABSENT = frozenset({int(MessageState.EXPIRED), int(MessageState.UNDELIVERABLE)})
_REPLY_TEXT_CACHE = 4096  # distinct reply texts shared by pending replies, then reset
#: Arrivals due within this many real seconds keep the profile derived at submission
#: (a handset that is on: the common case, a few seconds of traffic at a time); later
#: ones (handsets off, waiting hours in numbers) derive it again. So do the replies
#: whose texts are written when due (most at x3600, few at x1).
_KEEP_PROFILE = 10.0

#: (serving operator, responsiveness) pairs: what a waiting reply keeps of its sender's
#: profile, one byte, so that sending it derives nothing again.
_WHO = tuple(itertools.product(Operator, Responsiveness))
_WHO_CODE = {who: i for i, who in enumerate(_WHO)}
#: Reply kinds as one byte in a waiting reply's column, their values by that byte.
_KIND_CODE = {kind: i for i, kind in enumerate(ReplyKind)}
_KIND_VALUES = tuple(kind._value_ for kind in ReplyKind)

Inject = Callable[..., Any]
Schedule = Callable[[float, Callable[[Any], None], Any], None]
#: What the MO kind counters call texts sent unprompted.
SPONTANEOUS = "spontaneous"


class _OutcomeDraft:
    """Same slots as ``Outcome``, not frozen: built with plain stores, then re-classed
    (a frozen dataclass's ``__init__`` costs ~0.4 µs, per message)."""

    __slots__ = Outcome.__slots__

    def __init__(self, state: MessageState, delay: float, err: int) -> None:
        self.state = state
        self.delay = delay
        self.err = err


if set(Outcome.__slots__) != {"state", "delay", "err"}:  # pragma: no cover - contract drift
    raise ImportError("engine._OutcomeDraft no longer matches receipts.Outcome's fields")


def _outcome(state: MessageState, delay: float, err: int) -> Outcome:
    draft = _OutcomeDraft(state, delay, err)
    draft.__class__ = Outcome  # type: ignore[assignment]
    return draft  # type: ignore[return-value]


@dataclass(slots=True)
class _DueSlot:
    """The replies due in one slot, in columns: MSISDNs as int64 (-1: the address is in
    ``others`` by position), the sender's (operator, responsiveness) as a ``_WHO``
    index, a text, a byte, a seed, destinations. A reply decided whole (a model with
    only ``react``) keeps its text (shared) and its kind's ``_KIND_CODE``, seed 0; one
    whose text waits keeps the ``Prompt`` of the message it answers (shared by the
    model), the part and the seed ``reply_text`` takes, and ``model`` writes it when due
    (the model that drew its delays), from the sender's profile in ``subs`` by position
    when it was due within ``_KEEP_PROFILE`` real seconds, else derived again."""

    numbers: array[int]
    who: array[int]
    texts: list[str | Prompt]
    kinds: array[int]
    seeds: array[int]
    tos: list[str]
    others: dict[int, str]
    subs: dict[int, Subscriber]
    model: BehaviourModel | None = None


@dataclass(slots=True)
class _Whole:
    """A concatenated message on its way: its parts (in the order they came), its text
    as reassembled, and the subscriber's message number; replace_sm rebuilds ``payload``
    from the parts."""

    parts: tuple[Message, ...]
    payload: bytes
    seq: int
    msisdn: str

    def version(self) -> int:
        return sum(p.version for p in self.parts)

    def done(self) -> float:
        return max(p.planned_time for p in self.parts)

    def fate(self) -> int:
        """The whole's planned state: delivered when every part is (and none cancelled)."""
        for p in self.parts:
            if p.state == _DELETED:
                return _DELETED
            if p.planned_state != _DELIVERED:
                return p.planned_state
        return _DELIVERED


@dataclass(slots=True)
class _ArrivalSlot:
    """Messages reaching handsets in one slot, in columns: the message (its last part),
    its version when planned (a changed one: cancelled or replaced since), its text
    (shared with equal ones), the profile when kept, the whole for a concatenated one."""

    msgs: list[Message]
    versions: array[int]
    texts: list[str]
    subs: list[Subscriber | None]
    wholes: dict[int, _Whole]


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals since the engine started (not bounded by the history ring).

    ``outcomes``: serving operator -> receipt stat -> MT parts, as planned (the receipt
    may still be due; replace_sm plans again, cancel_sm makes it DELETED). ``replies``:
    serving operator -> reply kind (or ``spontaneous``) -> MO texts sent.
    ``replies_by_responsiveness``: the senders' responsiveness -> MO texts sent.
    ``received``: whole (reassembled) MT messages.
    ``pending_replies``: replies decided but not yet due.
    """

    population: int
    touched: int
    received: int
    sent: int
    outcomes: dict[str, dict[str, int]]
    replies: dict[str, dict[str, int]]
    replies_by_responsiveness: dict[str, int]
    spontaneous: int
    pending_replies: int
    opted_out: int

    def outcome_total(self, stat: str) -> int:
        """MT parts with ``stat`` over all operators."""
        return sum(by_stat.get(stat, 0) for by_stat in self.outcomes.values())

    def reply_total(self, kind: str) -> int:
        """MO texts of ``kind`` (a ReplyKind value or ``spontaneous``), all operators."""
        return sum(by_kind.get(kind, 0) for by_kind in self.replies.values())


class SubscriberEngine:
    def __init__(
        self,
        config: SmscConfig,
        clock: SimClock,
        *,
        population: Population | None = None,
        behaviour: ReplyModel | None = None,
        store: TouchedStore | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        pop_cfg = config.population
        self.population = population or Population(pop_cfg)
        self._silent: Callable[[Subscriber, str, int], bool] | None = None
        self._lazy: BehaviourModel | None = None
        self._answers: Callable[[int, bool, Responsiveness, str, int], bool] | None = None
        self.behaviour = behaviour or BehaviourModel(config.behaviour)
        self.delivery = DeliveryModel(config.delivery)
        self.store = store or TouchedStore(pop_cfg.history_size, pop_cfg.history_per_subscriber)
        self.recorder = MtRecorder(
            config.mt_log_size, config.reassembly_timeout, on_complete=self._on_whole
        )
        #: ``operator code << 4 | state`` -> MT parts planned so (see ``outcomes``).
        self._planned: dict[int, int] = {}
        self._traits = self.population.traits
        self._delay_for = self.delivery.delay_function
        #: (serving operator, responsiveness, reply kind or "spontaneous") -> MO texts.
        self.mo_counts: Counter[tuple[Operator, Responsiveness, str]] = Counter()
        #: The message ``outcome`` saw last, its recipient's traits and, when the fate
        #: needed it, profile: the SMSC hands the same message to ``on_mt`` next.
        self._last: tuple[Message | None, Traits, Subscriber | None] = (
            None,
            self.population.traits(self.population.msisdn(0)),
            None,
        )
        self.spontaneous_sent = 0
        self.received = 0
        self._pending_replies = 0
        self._operators: list[str] = []
        self._routes: dict[Operator, str | None] = {}
        self._reply_texts: dict[str, str] = {}
        self._mt_texts: dict[str, str] = {}
        #: (data_coding, payload) -> text: a broadcast's parts decode once, not per MT.
        self._decoded: dict[tuple[int, bytes], str] = {}
        #: Reply texts -> whether they opt out (replies repeat: read each once).
        self._stops: dict[str, bool] = {}
        hourly = config.behaviour.spontaneous_shape
        mean = sum(hourly) / len(hourly)
        #: The spontaneous rate's factor for each Cairo hour (mean 1 over the day).
        self._shape = tuple(h / mean for h in hourly)
        #: Replies waiting, by slot (see ``_plan``).
        self._due: dict[int, _DueSlot] = {}
        #: Messages on their way to handsets, by slot (see ``_arrival``).
        self._arriving: dict[int, _ArrivalSlot] = {}
        self._slot = min(1.0, max(0.001, 1.0 / clock.time_scale))
        self._send_due_fn = self._send_due
        self._arrive_fn = self._arrive
        self._dpf_fn = self._dpf_due
        self._schedule: Schedule | None = None
        self._loop_time: Callable[[], float] | None = None
        self._inject: Inject | None = None
        self._alert: Callable[[str], object] | None = None
        #: Alerts scheduled for set_dpf messages failing for want of the handset.
        self.alerts_planned = 0
        self._rng = random.Random(config.population.seed ^ 0x5EED)
        self._last_spontaneous: float | None = None

    @property
    def behaviour(self) -> ReplyModel:
        """Who decides the replies (another model may be set at any time)."""
        return self._behaviour

    @behaviour.setter
    def behaviour(self, model: ReplyModel) -> None:
        self._behaviour = model
        #: The model's "nobody answers this" at submission, when it has one (see
        #: ``BehaviourModel.silent``): such a message needs no arrival at the handset.
        self._silent = getattr(model, "silent", None)
        #: The same draw from the attributes it reads, for the model whose ``silent``
        #: is ``BehaviourModel``'s (no profile object for who will not answer).
        same = getattr(type(model), "silent", None) is BehaviourModel.silent
        self._answers = getattr(model, "answers", None) if same else None
        #: A model whose ``react`` is ``BehaviourModel``'s is ``timing`` + ``reply_text``:
        #: its replies' delays are drawn at arrival, their texts when due (``_plan_lazy``);
        #: any other model's replies are decided whole by its ``react``.
        self._lazy = None
        if isinstance(model, BehaviourModel) and type(model).react is BehaviourModel.react:
            self._lazy = model

    @property
    def outcomes(self) -> Counter[tuple[Operator, str]]:
        """(serving operator, receipt stat) -> MT parts, as planned (see ``Summary``)."""
        return Counter({
            (_OPERATORS[key >> 4], _STAT[key & 15]): n for key, n in self._planned.items()
        })  # fmt: skip

    def attach(
        self,
        *,
        schedule: Schedule,
        loop_time: Callable[[], float],
        inject: Inject,
        operators: list[str],
        alert: Callable[[str], object] | None = None,
    ) -> None:
        """Connect to a running SMSC: its timer heap, loop clock, MO injector, operators,
        and what to call when a handset with a delivery pending flag is on again."""
        self._schedule = schedule
        self._loop_time = loop_time
        self._inject = inject
        self._alert = alert
        self._operators = operators
        listeners = self.config.population.listeners
        for op in Operator:
            name = listeners.get(op.value, op.value)
            self._routes[op] = name if name in operators else (operators[0] if operators else None)

    # --- who -----------------------------------------------------------------------------

    def subscriber(self, address: str, ton: int | None = None) -> Subscriber:
        """Who is behind ``address`` (any form; a bare national significant number only
        with ``ton`` 2, national)."""
        if ton == TON_NATIONAL:
            address = normalize(address, ton) or address
        return self.population.profile(address)

    def listener_for(self, address: str) -> str | None:
        """The SMSC listener (operator name) whose binds get this subscriber's MO: the one
        named after the serving operator (a ported number's new one), or mapped to it in
        ``population.listeners``, else the first; None before the engine is attached."""
        return self._routes.get(self.subscriber(address).operator)

    # --- ReceiptPolicy ---------------------------------------------------------------------

    def _traits_of(self, address: str, ton: int) -> Traits:
        if ton == TON_NATIONAL:
            address = normalize(address, ton) or address
        return self._traits(address)

    def outcome(self, msg: Message) -> Outcome:
        address = msg.destination_addr
        if msg.dest_ton == TON_NATIONAL:
            address = normalize(address, TON_NATIONAL) or address
        traits = self._traits(address)
        msisdn, _, line, person, entropy = traits
        # The subscriber's MT count salts the draw: deterministic for a seed, and every
        # part of one concatenated message shares one fate.
        salt = self.store.mt_count(msisdn)
        sub = None
        if person[5] is _ALWAYS and line[2] and not line[3]:
            # DeliveryModel.decide's first case, from the three attributes it reads
            # (availability, assigned, barred): the whole profile only for the others.
            state, delay, err = _DELIVERED, self._delay_for(entropy, salt), 0
        else:
            sub = Population.subscriber(traits)
            state, delay, err, _ = self.delivery.decide(
                sub, msg.submit_time, msg.validity_period, salt
            )
        # The SMSC hands the same message to on_mt next: derive the traits once.
        self._last = (msg, traits, sub)
        planned = self._planned
        op = _OP_CODE[line[0]] << 4
        if msg.version:  # replace_sm plans it again: the old plan no longer counts
            key = op | msg.planned_state
            planned[key] = planned.get(key, 0) - 1
        key = op | state
        planned[key] = planned.get(key, 0) + 1
        if state is not _DELIVERED:
            tlvs = msg.tlvs
            if tlvs and tlvs.get(_SET_DPF) == 1:
                sub = sub or Population.subscriber(traits)
                self._plan_alert(msg, sub, msg.submit_time + delay)
        return _outcome(state, delay, err)

    def _plan_alert(self, msg: Message, sub: Subscriber, failed_at: float) -> None:
        """The SMSC sets a delivery pending flag when this set_dpf message fails for want
        of the handset (at ``failed_at``): call ``alert`` when the handset is next on,
        at that real time (never for a dead SIM or an unassigned number)."""
        if self._schedule is None or self._loop_time is None or self._alert is None:
            return
        back = next_on(sub, failed_at)
        if back is None:
            return
        self.alerts_planned += 1
        real = self._loop_time() + max(0.0, self.clock.to_real(back - self.clock.now()))
        self._schedule(real, self._dpf_fn, (msg, msg.version))

    def _dpf_due(self, item: tuple[Message, int]) -> None:
        msg, version = item
        if msg.version != version or self._alert is None:
            return  # replaced (planned again) or cancelled since
        if not msg.final:
            # Due the instant the message fails: let the SMSC finish it (and flag) first.
            assert self._schedule is not None and self._loop_time is not None
            self._schedule(self._loop_time() + 0.001, self._dpf_fn, item)
            return
        if msg.state in _ABSENT:
            self._alert(msg.destination_addr)

    # --- MtSink ------------------------------------------------------------------------------

    def on_mt(self, msg: Message) -> None:
        tlvs = msg.tlvs
        if msg.esm_class & _UDHI or (tlvs and (_SAR in tlvs or _PAYLOAD in tlvs)):
            self.recorder.on_mt(msg)  # a part (or message_payload): ``_on_whole``
            return
        # A one-part message, the common case: logged and read here, no ReceivedMt.
        payload = msg.short_message
        self.recorder.record_one(msg, payload)
        cached, traits, sub = self._last
        if cached is not msg:
            traits, sub = self._traits_of(msg.destination_addr, msg.dest_ton), None
        self.received += 1
        key = (msg.data_coding, payload)
        decoded = self._decoded
        text = decoded.get(key)
        if text is None:
            if len(decoded) >= _REPLY_TEXT_CACHE:
                decoded.clear()
            text = decoded[key] = decode_text(payload, msg.data_coding)
        state = msg.planned_state
        delivered = state == _DELIVERED
        stat = "DELIVRD" if delivered else _STAT[state]
        done = msg.planned_time
        seq = self.store.record_mt(traits[0], msg.submit_time, text, msg.message_id, stat, done)
        msg.handset = seq
        if delivered and self._schedule is not None:
            answers = self._answers
            if answers is not None:
                if not answers(traits[4], traits[2][6], traits[3][3], text, seq):
                    return
                sub = sub or Population.subscriber(traits)
            else:
                sub = sub or Population.subscriber(traits)
                silent = self._silent
                if silent is not None and silent(sub, text, seq):
                    return
            self._arrival(msg, sub, done, None, text)

    def _who(self, msg: Message) -> Subscriber:
        """The profile of ``msg``'s recipient, from what ``outcome`` derived when it is
        the same message."""
        cached, traits, sub = self._last
        if cached is not msg:
            return self.subscriber(msg.destination_addr, msg.dest_ton)
        return sub or Population.subscriber(traits)

    def _on_whole(self, mt: ReceivedMt, last: Message, parts: tuple[Message, ...]) -> None:
        """A whole message reached the SMSC: recorded now, seen by the person when its
        planned delivery time comes (``_arrival``)."""
        sub = self._who(last)
        self.received += 1
        msisdn = sub.msisdn
        key = (mt.data_coding, mt.payload)
        decoded = self._decoded
        text = decoded.get(key)
        if text is None:
            if len(decoded) >= _REPLY_TEXT_CACHE:
                decoded.clear()
            text = decoded[key] = mt.text
        whole = None
        if parts:
            payload = mt.payload
            if any(p.version for p in parts):
                # A part replaced before the last one came: shown as it is now.
                payload = _reassemble(parts)
                text = decode_text(payload, mt.data_coding)
            whole = _Whole(parts, payload, 0, msisdn)
            done, state = whole.done(), whole.fate()
        else:
            done, state = last.planned_time, last.planned_state
        delivered = state == _DELIVERED
        stat = "DELIVRD" if delivered else _STAT[state]
        seq = self.store.record_mt(msisdn, last.submit_time, text, mt.message_ids[0], stat, done)
        if whole is None:
            last.handset = seq
        else:
            whole.seq = seq
            for p in parts:
                p.handset = whole
        if delivered and self._schedule is not None:
            silent = self._silent
            if silent is None or not silent(sub, text, seq):
                self._arrival(last, sub, done, whole, text)

    def _arrival(
        self, msg: Message, sub: Subscriber, done: float, whole: _Whole | None, text: str
    ) -> None:
        """Keep a message until it reaches the handset at ``done`` (simulated), in
        columns per slot with one timer per slot as replies wait (``_plan``); the
        version then tells whether cancel_sm or replace_sm changed it meanwhile."""
        assert self._schedule is not None and self._loop_time is not None
        wait = max(0.0, self.clock.to_real(done - self.clock.now()))
        width = self._slot
        key = math.ceil((self._loop_time() + wait) / width)
        slot = self._arriving.get(key)
        if slot is None:
            slot = self._arriving[key] = _ArrivalSlot([], array("q"), [], [], {})
            self._schedule(key * width, self._arrive_fn, key)
        if whole is not None:
            slot.wholes[len(slot.msgs)] = whole
            slot.versions.append(whole.version())
        else:
            slot.versions.append(msg.version)
        slot.msgs.append(msg)
        texts = self._mt_texts
        shared = texts.get(text)
        if shared is None:
            if len(texts) >= _REPLY_TEXT_CACHE:
                texts.clear()
            texts[text] = shared = text
        slot.texts.append(shared)
        slot.subs.append(sub if wait < _KEEP_PROFILE else None)

    def _arrive(self, key: int) -> None:
        slot = self._arriving.pop(key, None)
        if slot is None:
            return
        wholes, versions, texts, subs = slot.wholes, slot.versions, slot.texts, slot.subs
        for i, msg in enumerate(slot.msgs):
            whole = wholes.get(i) if wholes else None
            if whole is None:
                seq = msg.handset
                if msg.version != versions[i] or not isinstance(seq, int):
                    continue  # cancelled or replaced (the replacement has its own)
                done = msg.planned_time
                msg.handset = None  # seen: a late replace_sm no longer reaches it
            else:
                if whole.version() != versions[i]:
                    continue
                seq, done = whole.seq, whole.done()
                for p in whole.parts:
                    p.handset = None
            sub = subs[i] or self.subscriber(msg.destination_addr, msg.dest_ton)
            self._react(sub, msg, texts[i], done, seq)

    def _react(self, sub: Subscriber, msg: Message, text: str, done: float, seq: int) -> None:
        """The person reads ``text`` (delivered at ``done``) and may answer."""
        store = self.store
        msisdn = sub.msisdn
        opted = store.is_opted_out(msisdn) if store.opt_decisions else None
        if opted or (opted is None and sub.opted_out):
            return
        lazy = self._lazy
        if lazy is not None:
            when = lazy.timing(sub, text, done, seq)
            if when is None:
                return
            prompt, seed, delays = when
            to = _reply_to(msg.source_addr)
            if len(delays) == 1:
                self._plan_lazy(lazy, sub, done + delays[0], to, prompt, seed, 0)
            else:
                for part, delay in enumerate(delays, 1):
                    self._plan_lazy(lazy, sub, done + delay, to, prompt, seed, part)
            return
        replies = self._behaviour.react(sub, text, done, seq)
        if replies:
            to = _reply_to(msg.source_addr)
            for reply in replies:
                self._plan(sub, reply, done + reply.delay, to)

    def on_cancel(self, msg: Message) -> None:
        """cancel_sm took the message before it reached the handset: never seen (its
        arrival is stale by its version) and recorded as DELETED."""
        note = msg.handset
        sub = self.subscriber(msg.destination_addr, msg.dest_ton)
        counts, op = self._planned, _OP_CODE[sub.operator] << 4
        if msg.planned_state:
            key = op | msg.planned_state
            counts[key] = counts.get(key, 0) - 1
        counts[op | _DELETED] = counts.get(op | _DELETED, 0) + 1
        if isinstance(note, _Whole):
            first = note.parts[0].message_id
        elif isinstance(note, int):
            first = msg.message_id
        else:
            return  # a part of a message still incomplete, or seen already
        self.store.amend_mt(sub.msisdn, first, outcome="DELETED", done_time=msg.done_time)

    def on_replace(self, msg: Message) -> None:
        """replace_sm changed the message (and the SMSC planned it again) before it
        reached the handset: it arrives as planned now, with its new text."""
        sub = self._who(msg)
        note = msg.handset
        whole = None
        if isinstance(note, _Whole):
            whole = note
            whole.payload = _reassemble(whole.parts)
            first, text = whole.parts[0].message_id, decode_text(whole.payload, msg.data_coding)
            done, state = whole.done(), whole.fate()
            last, seq = whole.parts[-1], whole.seq
        elif isinstance(note, int):
            first, text = msg.message_id, decode_text(mt_part(msg)[1], msg.data_coding)
            done, state, last, seq = msg.planned_time, msg.planned_state, msg, note
        else:
            return  # seen already, or a part of a message still incomplete
        delivered = state == _DELIVERED
        stat = "DELIVRD" if delivered else _STAT[state]
        self.store.amend_mt(sub.msisdn, first, text=text, outcome=stat, done_time=done)
        if delivered and self._schedule is not None:
            silent = self._silent
            if silent is None or not silent(sub, text, seq):
                self._arrival(last, sub, done, whole, text)

    def _keep(self, sub: Subscriber, sim_at: float, to: str, profile: bool = False) -> _DueSlot:
        """Keep a reply until due (its sender and destination; the caller adds what it
        says). A quiz to millions leaves millions of replies waiting for hours, so they
        wait in columns, per slot of one simulated second (at least 1 ms and at most 1 s
        of real time) with one timer per slot: the number as an int and what sending
        needs of the profile as a byte, the destination as a shared string. A slot runs
        at its end, so a reply goes out at most one slot late, never early. ``profile``:
        keep ``sub`` too when due within ``_KEEP_PROFILE`` (at x3600, most replies)."""
        assert self._schedule is not None and self._loop_time is not None
        wait = max(0.0, self.clock.to_real(sim_at - self.clock.now()))
        real_due = self._loop_time() + wait
        self._pending_replies += 1
        width = self._slot
        key = math.ceil(real_due / width)
        due = self._due.get(key)
        if due is None:
            due = self._due[key] = _DueSlot(
                array("q"), array("B"), [], array("B"), array("Q"), [], {}, {}
            )
            self._schedule(key * width, self._send_due_fn, key)
        if profile and wait < _KEEP_PROFILE:
            due.subs[len(due.numbers)] = sub
        msisdn = sub.msisdn
        due.who.append(_WHO_CODE[(sub.operator, sub.responsiveness)])
        if msisdn.isascii() and msisdn.isdigit() and msisdn[0] != "0":
            due.numbers.append(int(msisdn))
        else:
            due.others[len(due.numbers)] = msisdn
            due.numbers.append(-1)
        due.tos.append(to)
        return due

    def _plan(self, sub: Subscriber, reply: Reply, sim_at: float, to: str) -> None:
        """Keep a reply decided whole: its text shared with equal replies, its kind."""
        due = self._keep(sub, sim_at, to)
        texts = self._reply_texts
        shared = texts.get(reply.text)
        if shared is None:
            if len(texts) >= _REPLY_TEXT_CACHE:
                texts.clear()
            texts[reply.text] = shared = reply.text
        due.texts.append(shared)
        due.kinds.append(_KIND_CODE[reply.kind])
        due.seeds.append(0)

    def _plan_lazy(
        self,
        model: BehaviourModel,
        sub: Subscriber,
        sim_at: float,
        to: str,
        prompt: Prompt,
        seed: int,
        part: int,
    ) -> None:
        """Keep a reply whose text ``model`` writes when due: what its ``reply_text``
        takes (the message's ``prompt``, shared; ``seed``; ``part``). At x1 few replies
        come due within a run: the texts of the others are never drawn."""
        due = self._keep(sub, sim_at, to, True)
        if due.model is not model:
            if due.model is not None:  # another model's in this slot: written now
                out, kind = model.reply_text(sub, prompt, seed, part)
                due.texts.append(out)
                due.kinds.append(_KIND_CODE[kind])
                due.seeds.append(0)
                return
            due.model = model
        due.texts.append(prompt)
        due.kinds.append(part)
        due.seeds.append(seed)

    def _send_due(self, key: int) -> None:
        due = self._due.pop(key, None)
        if due is None:
            return
        others, who, texts, kinds, tos = due.others, due.who, due.texts, due.kinds, due.tos
        seeds, model, subs = due.seeds, due.model, due.subs
        send = self._send
        traits, subscriber = self._traits, Population.subscriber
        for i, number in enumerate(due.numbers):
            self._pending_replies -= 1
            msisdn = others[i] if number < 0 else str(number)
            text = texts[i]
            if isinstance(text, str):
                send(msisdn, *_WHO[who[i]], text, _KIND_VALUES[kinds[i]], tos[i])
                continue
            assert model is not None
            # The profile kept, or derived again (the reply kept a byte of it).
            sub = subs.get(i) if subs else None
            if sub is None:
                sub = subscriber(traits(msisdn))
            out, kind = model.reply_text(sub, text, seeds[i], kinds[i])
            send(msisdn, *_WHO[who[i]], out, kind._value_, tos[i])

    def _send(
        self,
        msisdn: str,
        operator: Operator,
        responsiveness: Responsiveness,
        text: str,
        kind: str,
        to: str = SHORT_CODE,
    ) -> None:
        """``msisdn`` (served by ``operator``) texts ``text`` to ``to``."""
        now = self.clock.now()
        self.store.record_mo(msisdn, now, text)
        counts, key = self.mo_counts, (operator, responsiveness, kind)
        counts[key] = counts.get(key, 0) + 1  # dict's own: Counter's += costs twice this
        stops = self._stops
        stop = stops.get(text)
        if stop is None:
            if len(stops) >= _REPLY_TEXT_CACHE:
                stops.clear()
            stop = stops[text] = is_stop(text)
        if stop:
            self.store.opt_out(msisdn, now)
        if self._inject is not None:
            self._inject(msisdn, text, operator=self._routes.get(operator), destination=to)

    # --- spontaneous traffic ---------------------------------------------------------------

    def spontaneous_tick(self) -> int:
        """Send what people text 1442 unprompted since the last tick; returns how many."""
        per_day = self.config.behaviour.spontaneous_per_day
        now = self.clock.now()
        last, self._last_spontaneous = self._last_spontaneous, now
        if not per_day or last is None or now <= last:
            return 0
        shape = self._shape[int(local_hour(now)) % 24]
        expected = self.population.size * per_day / 86400 * (now - last) * shape
        sent = 0
        for _ in range(_poisson(self._rng, expected)):
            sub = self.population.profile_at(self._rng.randrange(self.population.size))
            if not sub.assigned or sub.barred or sub.availability is Availability.DEAD:
                continue
            if not handset_on(sub, now):
                continue
            text = self._behaviour.spontaneous_text(sub, self._rng)
            self._send(sub.msisdn, sub.operator, sub.responsiveness, text, SPONTANEOUS)
            sent += 1
        self.spontaneous_sent += sent
        return sent

    # --- observability ---------------------------------------------------------------------

    def received_by(self, address: str, limit: int | None = None) -> list[HistoryEntry]:
        """The whole MT messages the subscriber received (any number form), oldest first:
        the newest of their last ``population.history_per_subscriber`` messages (MT and MO
        together) still in the history ring. ``time`` is the submission, ``done_time``
        when it reached the handset (or failed, ``outcome``), on the simulated clock."""
        return self._history(address, "mt", limit)

    def sent_by(self, address: str, limit: int | None = None) -> list[HistoryEntry]:
        """The texts the subscriber sent to the platform (replies and unprompted), oldest
        first, bounded as ``received_by``; ``time`` is when each left the handset."""
        return self._history(address, "mo", limit)

    def _history(self, address: str, direction: str, limit: int | None) -> list[HistoryEntry]:
        per = self.store.per_subscriber
        entries = self.store.history(self.subscriber(address).msisdn, per)
        entries = [e for e in entries if e.direction == direction]
        if limit is None:
            return entries
        return entries[-limit:] if limit > 0 else []

    def summary(self) -> Summary:
        """Counts by operator, outcome and behaviour since the engine started."""
        outcomes: dict[str, dict[str, int]] = {}
        for key, n in sorted(self._planned.items()):
            outcomes.setdefault(_OPERATORS[key >> 4].value, {})[_STAT[key & 15]] = n
        replies: dict[str, dict[str, int]] = {}
        by_resp: Counter[str] = Counter()
        for (op, resp, kind), n in self.mo_counts.items():
            by_op = replies.setdefault(op.value, {})
            by_op[kind] = by_op.get(kind, 0) + n
            by_resp[resp.value] += n
        agg = self.store.aggregate()
        return Summary(
            population=self.population.size,
            touched=agg.touched,
            received=self.received,
            sent=agg.mo,
            outcomes=outcomes,
            replies=replies,
            replies_by_responsiveness=dict(by_resp),
            spontaneous=self.spontaneous_sent,
            pending_replies=self._pending_replies,
            opted_out=agg.opted_out,
        )

    def describe(self, address: str) -> dict[str, Any]:
        """A subscriber's attributes, counters and recent history (for tests and the API)."""
        sub = self.subscriber(address)
        counters = self.store.counters(sub.msisdn)
        return {
            "profile": {k: getattr(v, "value", v) for k, v in asdict(sub).items()},
            "name": self.population.name(sub.msisdn),
            "counters": asdict(counters) if counters is not None else None,
            "history": [asdict(e) for e in self.store.history(sub.msisdn)],
        }


def _reply_to(source: str) -> str:
    """Where replies to a message from ``source`` go: whoever sent it when it came from
    a short code, else 1442."""
    if source == SHORT_CODE:
        return SHORT_CODE  # the shared constant, not this PDU's copy
    return source if source.isdigit() and len(source) <= 8 else SHORT_CODE


def _reassemble(parts: tuple[Message, ...]) -> bytes:
    """A concatenated message's text from its parts as they are now, in their order."""
    numbered = []
    for i, part in enumerate(parts):
        concat, body = mt_part(part)
        numbered.append((concat[2] if concat is not None else i, body))
    numbered.sort(key=lambda item: item[0])
    return b"".join(body for _, body in numbered)


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw; normal approximation for large means (one draw a tick)."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
