"""Per-worker state of a Locust run: settings, population, channel, pacing.

Created in ``test_start`` on every process that runs users (a worker, or the single
local process), never on the master; hung on the Locust ``Environment`` so user
classes reach it without module globals.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import gevent

from simulator.harness.delivery import REQUEST_TYPE, action_label, judge
from simulator.scenario.participants import Block, action_blocks, sender_slice, spontaneous_block
from simulator.scenario.rates import per_user_rate
from simulator.scenario.run_settings import RunSettings
from simulator.subscribers.population import Population

from .channel import ChannelClient

ATTR = "smsim_runtime"


class ReceiptsMissing(Exception):
    """Some of an action's numbers got no MT, or no receipt to the platform, in time."""


@dataclass(slots=True)
class DeliveryWatch:
    """One broadcast or flow start whose delivery is followed (``harness.delivery``)."""

    action: int
    kind: str
    numbers: int
    #: When its first API call went out (this process's monotonic clock).
    started: float
    #: When it must be complete (the receipt_completion_time gate, or shortly before the
    #: load's end); None: when the load ends.
    deadline: float | None
    reported: bool = False

    @property
    def label(self) -> str:
        return action_label(self.action, self.kind, self.numbers)


@dataclass(slots=True)
class Runtime:
    settings: RunSettings
    worker_index: int
    workers: int
    population: Population
    channel: ChannelClient
    t0: float
    blocks: list[Block]
    senders: Block
    rng: random.Random
    texts: list[str]
    weights: list[float]
    _cursor: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: The actions whose delivery is followed, and the greenlets following them.
    watches: list[DeliveryWatch] = field(default_factory=list)
    watchers: list[Any] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def my_rate(self, t: float) -> float:
        """MO/s one subscriber user offers at ``t``."""
        load = self.settings.scenario.load
        return per_user_rate(load, load.mo, t)

    def my_dial_rate(self, t: float) -> float:
        """USSD dials/s one dialler offers at ``t``."""
        ussd = self.settings.scenario.ussd
        return per_user_rate(self.settings.scenario.load, ussd.dials if ussd else None, t)

    def next_sender(self) -> str:
        """The next number of this worker's slice, in turn: no two workers share one."""
        i = self.senders.start + self._cursor % max(1, self.senders.count)
        self._cursor += 1
        return self.population.msisdn(i)

    def next_text(self) -> str:
        return self.rng.choices(self.texts, self.weights)[0]


def report_delivery(rt: Runtime, events: Any, w: DeliveryWatch, final: bool) -> bool:
    """Fire ``w``'s delivery requests when it is complete, or ``final``ly incomplete
    (failures naming what is missing); whether they were fired (now or before)."""
    if w.reported:
        return True
    now = time.monotonic()
    reports = judge(w.label, w.numbers, rt.channel.delivery.total(w.action), w.started, now, final)
    if reports is None:
        return False
    w.reported = True
    for r in reports:
        events.request.fire(
            request_type=REQUEST_TYPE,
            name=r.name,
            response_time=r.response_time,
            response_length=r.length,
            exception=ReceiptsMissing(r.error) if r.error is not None else None,
            context={},
        )
    return True


def start_runtime(environment: Any, settings: RunSettings) -> Runtime:
    runner = environment.runner
    worker_index = int(getattr(runner, "worker_index", 0) or 0)
    workers = max(1, settings.scenario.load.processes)
    scenario = settings.scenario
    population = Population(scenario.population)
    shape = scenario.load.mo
    texts = dict(shape.texts) if shape is not None else {"help": 1.0}
    rt = Runtime(
        settings=settings,
        worker_index=worker_index,
        workers=workers,
        population=population,
        channel=ChannelClient(
            settings.channels or settings.channel,
            environment.events,
            worker_index,
            workers,
            token=settings.channel_token,
        ),
        t0=time.monotonic(),
        blocks=action_blocks(scenario),
        senders=sender_slice(spontaneous_block(scenario), min(worker_index, workers - 1), workers),
        rng=random.Random(f"{scenario.population.seed}/{worker_index}"),
        texts=list(texts),
        weights=list(texts.values()),
    )
    setattr(environment, ATTR, rt)
    return rt


def runtime(environment: Any) -> Runtime:
    rt = getattr(environment, ATTR, None)
    if rt is None:
        raise RuntimeError("the smsim runtime starts in test_start; is this the master?")
    assert isinstance(rt, Runtime)
    return rt


def stop_runtime(environment: Any) -> None:
    rt = getattr(environment, ATTR, None)
    if isinstance(rt, Runtime):
        # The load ended: what has not completed by now fails (the drain is not Locust's).
        for w in rt.watches:
            report_delivery(rt, environment.events, w, final=True)
        gevent.killall(rt.watchers, block=False)
        rt.channel.close()
        setattr(environment, ATTR, None)
