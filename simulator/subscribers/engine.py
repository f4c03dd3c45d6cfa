"""The subscribers plugged into the SMSC: each MT's fate, and the people's replies.

``SubscriberEngine`` is both the SMSC's receipt policy (``outcome``: the fate of a
message from its recipient's handset and the retry schedule) and its handset sink
(``on_mt``: a whole, delivered message reaches a person, who may answer later). Replies
and spontaneous texts are scheduled on the SMSC's timer heap, on the simulated clock,
and injected as MO through the subscriber's serving operator.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from simulator.clock import SimClock
from simulator.config import SmscConfig
from simulator.smpp.constants import RECEIPT_STAT, MessageState
from simulator.smsc.handsets import MtRecorder, ReceivedMt
from simulator.smsc.receipts import Outcome
from simulator.smsc.store import Message

from .behaviour import BehaviourModel, Reply, is_stop
from .delivery import DeliveryModel, handset_on, local_hour
from .numbering import normalize
from .population import Population
from .profile import Availability, Subscriber
from .state import TouchedStore

log = logging.getLogger("smsim.subscribers")

#: Relative MO activity by Cairo hour: quiet at night, a peak after the evening TV slots.
DAILY_SHAPE = (
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.25, 0.6, 0.9, 1.0, 1.0, 1.0,
    1.0, 1.0, 0.95, 0.95, 1.0, 1.1, 1.2, 1.4, 1.8, 2.0, 1.5, 0.7,
)  # fmt: skip
_SHAPE_MEAN = sum(DAILY_SHAPE) / 24

Inject = Callable[..., Any]
Schedule = Callable[[float, Callable[[Any], None], Any], None]


class SubscriberEngine:
    def __init__(
        self,
        config: SmscConfig,
        clock: SimClock,
        *,
        population: Population | None = None,
        behaviour: BehaviourModel | None = None,
        store: TouchedStore | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.population = population or Population(config.population)
        self.behaviour = behaviour or BehaviourModel(config.behaviour)
        self.delivery = DeliveryModel(config.delivery)
        self.store = store or TouchedStore()
        self.recorder = MtRecorder(
            config.mt_log_size, config.reassembly_timeout, on_complete=self._on_whole
        )
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.replies: Counter[str] = Counter()
        self.spontaneous_sent = 0
        self._operators: list[str] = []
        self._schedule: Schedule | None = None
        self._loop_time: Callable[[], float] | None = None
        self._inject: Inject | None = None
        self._rng = random.Random(config.population.seed ^ 0x5EED)
        self._last_spontaneous: float | None = None

    def attach(
        self,
        *,
        schedule: Schedule,
        loop_time: Callable[[], float],
        inject: Inject,
        operators: list[str],
    ) -> None:
        """Connect to a running SMSC: its timer heap, loop clock, MO injector, operators."""
        self._schedule = schedule
        self._loop_time = loop_time
        self._inject = inject
        self._operators = operators

    # --- who -----------------------------------------------------------------------------

    def subscriber(self, address: str, ton: int | None = None) -> Subscriber:
        msisdn = normalize(address, ton) or address
        return self.population.profile(msisdn)

    def _operator_for(self, sub: Subscriber) -> str | None:
        name = sub.operator.value
        if name in self._operators:
            return name
        return self._operators[0] if self._operators else None

    # --- ReceiptPolicy ---------------------------------------------------------------------

    def outcome(self, msg: Message) -> Outcome:
        sub = self.subscriber(msg.destination_addr, msg.dest_ton)
        counters = self.store.counters(sub.msisdn)
        # The subscriber's MT count salts the draw: deterministic for a seed, and every
        # part of one concatenated message shares one fate.
        salt = counters.mt if counters else 0
        fate = self.delivery.fate(sub, msg.submit_time, msg.validity_period, salt)
        self.outcomes[(sub.operator.value, RECEIPT_STAT[fate.state])] += 1
        return Outcome(fate.state, fate.delay, fate.err)

    # --- MtSink ------------------------------------------------------------------------------

    def on_mt(self, msg: Message) -> None:
        self.recorder.on_mt(msg)

    def _on_whole(self, mt: ReceivedMt, last: Message) -> None:
        sub = self.subscriber(mt.destination_addr, last.dest_ton)
        store = self.store
        counters = store.counters(sub.msisdn)
        seq = counters.mt if counters else 0
        text = mt.text
        store.record_mt(sub.msisdn, last.submit_time, text, mt.message_ids[0])
        if last.planned_state != MessageState.DELIVERED:
            store.record_outcome(sub.msisdn, RECEIPT_STAT[MessageState(last.planned_state)])
            return
        store.record_outcome(sub.msisdn, "DELIVRD")
        if self._schedule is None:
            return
        opted = store.is_opted_out(sub.msisdn)
        if opted or (opted is None and sub.opted_out):
            return
        for reply in self.behaviour.react(sub, text, last.planned_time, seq):
            self._plan(sub, reply, last.planned_time + reply.delay)

    def _plan(self, sub: Subscriber, reply: Reply, sim_at: float) -> None:
        assert self._schedule is not None and self._loop_time is not None
        real_due = self._loop_time() + max(0.0, self.clock.to_real(sim_at - self.clock.now()))
        self._schedule(real_due, self._send_reply, (sub, reply))

    def _send_reply(self, item: tuple[Subscriber, Reply]) -> None:
        sub, reply = item
        self.replies[reply.kind.value] += 1
        self._send(sub, reply.text)

    def _send(self, sub: Subscriber, text: str) -> None:
        now = self.clock.now()
        self.store.record_mo(sub.msisdn, now, text)
        if is_stop(text):
            self.store.opt_out(sub.msisdn, now)
        if self._inject is not None:
            self._inject(sub.msisdn, text, operator=self._operator_for(sub))

    # --- spontaneous traffic ---------------------------------------------------------------

    def spontaneous_tick(self) -> int:
        """Send what people text 1442 unprompted since the last tick; returns how many."""
        per_day = self.config.behaviour.spontaneous_per_day
        now = self.clock.now()
        last, self._last_spontaneous = self._last_spontaneous, now
        if not per_day or last is None or now <= last:
            return 0
        shape = DAILY_SHAPE[int(local_hour(now)) % 24] / _SHAPE_MEAN
        expected = self.population.size * per_day / 86400 * (now - last) * shape
        sent = 0
        for _ in range(_poisson(self._rng, expected)):
            sub = self.population.profile_at(self._rng.randrange(self.population.size))
            if not sub.assigned or sub.barred or sub.availability is Availability.DEAD:
                continue
            if not handset_on(sub, now):
                continue
            self._send(sub, self.behaviour.spontaneous_text(sub, self._rng))
            sent += 1
        self.spontaneous_sent += sent
        return sent

    # --- observability ---------------------------------------------------------------------

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
