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

from simulator.scenario.participants import Block, action_blocks, sender_slice, spontaneous_block
from simulator.scenario.rates import per_user_rate
from simulator.scenario.run_settings import RunSettings
from simulator.subscribers.population import Population

from .channel import ChannelClient

ATTR = "smsim_runtime"


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
        rt.channel.close()
        setattr(environment, ATTR, None)
