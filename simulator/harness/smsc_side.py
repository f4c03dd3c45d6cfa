"""The SMSC side of a scenario run: an ``SmscServer`` with its subscribers, the Locust
channel's ``ChannelHub`` observing it, and the scenario's chaos schedule.

``smsim run`` runs one in its own process; each part of a partitioned run
(``shard.py``) is one, for its range of the numbers. The hub injects Locust's MO through
the subscriber's serving operator and dials USSD codes on its network; ``start_load``
puts the scenario's ``chaos:`` faults on when the load starts (their times count from
then, as the actions' do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from simulator.clock import SimClock
from simulator.config import SmscConfig
from simulator.scenario.figures import Sample
from simulator.scenario.spec import Scenario
from simulator.smsc.faults import Fault
from simulator.smsc.server import SmscServer
from simulator.smsc.stats import SmscStats
from simulator.ussd.figures import UssdSnapshot
from simulator.ussd.figures import snapshot as ussd_snapshot

from .delivery import DeliveryTracker
from .hub import ChannelHub


class SmscSide:
    def __init__(
        self,
        sc: Scenario,
        cfg: SmscConfig,
        *,
        token: str | None = None,
        stats: Callable[[SmscSide], dict[str, Any]] | None = None,
        start_on_request: bool = False,
    ) -> None:
        """``stats``: what the channel's STATS frame is answered with (a part's);
        ``start_on_request``: the channel's START frame calls ``start_load``."""
        self.sc = sc
        self.hub = ChannelHub(
            self._send_mo,
            sc.load.reply_timeout,
            dial=self._dial if sc.ussd else None,
            token=token,
            stats=(lambda: stats(self)) if stats is not None else None,
            load_start=self.start_load if start_on_request else None,
        )
        start = sc.time.start.timestamp() if sc.time.start else None
        clock = SimClock(sc.time.scale, start=start)
        self.smsc = SmscServer(cfg, clock=clock, observers=[self.hub])
        engine = self.smsc.subscribers
        if engine is not None:
            # The campaign manager's actions are followed by population index.
            self.hub.delivery = DeliveryTracker(engine.population.index_of)
        #: The chaos schedule's faults, once the load started.
        self.chaos: list[Fault] = []
        self._load_started = False

    def _send_mo(self, msisdn: str, text: str) -> None:
        engine = self.smsc.subscribers
        operator = engine.listener_for(msisdn) if engine is not None else None
        # Through the server, so observers (the journal) see it; the hub ignores its own.
        self.smsc.inject_mo(msisdn, text, operator=operator)

    def _dial(self, msisdn: str, code: str) -> object:
        try:
            return self.smsc.ussd_dial(msisdn, code)
        except KeyError:  # the subscriber's operator has no USSD network
            return None

    async def start(self) -> None:
        await self.smsc.start()
        if self.sc.ussd is not None:
            from simulator.ussd.people import attach_people

            attach_people(self.smsc, asyncio.get_running_loop().time)

    def start_load(self) -> list[Fault]:
        """The load starts now: the chaos schedule on, on the same clock as the actions
        (once; a second call changes nothing)."""
        if not self._load_started:
            self._load_started = True
            self.chaos = [self.smsc.add_fault(step.rule()) for step in self.sc.chaos]
        return self.chaos

    async def stop(self) -> None:
        await self.hub.stop()
        await self.smsc.stop(drain_timeout=0.5)

    # --- what the runner samples ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """The ``Sample`` fields now (the SMSC's cumulative counters, the hub's receipts
        asked for)."""
        s = self.smsc.stats()
        receipts_on_the_wire, mo_on_the_wire = self.smsc.on_the_wire()
        return {
            "submits": s.submits,
            "accepted": s.accepted,
            "throttled": s.throttled,
            "refused": s.rejected + s.queue_full,
            "wants_receipt": self.hub.wants_receipt,
            "receipts_due": s.receipts_due,
            "receipts_delivered": s.receipts_delivered,
            "mo_queued": s.mo_queued,
            "mo_delivered": s.mo_delivered,
            "receipts_duplicated": s.receipts_duplicated,
            "receipts_on_the_wire": receipts_on_the_wire,
            "mo_on_the_wire": mo_on_the_wire,
        }

    def sample(self, t: float) -> Sample:
        return Sample(t=t, **self.counts())

    def operator_stats(self) -> dict[str, SmscStats]:
        return {name: op.stats for name, op in self.smsc.operators.items()}

    def ussd(self, now: float) -> UssdSnapshot:
        return ussd_snapshot(self.smsc.ussd_networks(), now)

    def fault_hits(self) -> dict[str, int]:
        return {f.name: f.hits for f in self.chaos}
