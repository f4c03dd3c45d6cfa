"""One SMSC-side process of a partitioned run: the SMSC, its subscribers and a channel
for one range of the number space (``ranges.NumberRanges``, decision 0003).

Each part is a whole ``SmscServer`` (population, behaviour, receipts, USSD) with its own
SMPP listeners (one per operator, on free ports) and its own ``ChannelHub``: the platform
binds to every part and routes each MT by prefix to the part that owns the number, and
Locust workers send each MO to its owner's channel, so a reply is timed where its MO
was. Nothing is shared between parts; the runner reads each part's counters and
histograms over the channel (a STATS frame) and adds them up.

Started by ``smsim worker`` (one per Locust worker on that host) in a spawned process:
``shard_process`` reports its addresses on a pipe when it listens and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from pydantic import BaseModel, ConfigDict

from simulator.config import ControlConfig, OperatorConfig, SmscConfig
from simulator.logs import setup_logging
from simulator.scenario.spec import Scenario
from simulator.smsc.server import new_event_loop
from simulator.ussd.figures import screen_latency

from .smsc_side import SmscSide

log = logging.getLogger("smsim.shard")

#: Message ids of part ``k`` start ``k`` blocks above the clock: parts never share one
#: (the platform matches receipts by id), for 10^13 messages per part.
ID_BLOCK = 10**13


class ShardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: Scenario
    part: int
    parts: int
    #: Address the SMPP listeners and the channel listen on.
    host: str = "127.0.0.1"
    channel_port: int = 0
    #: First SMPP port (one per operator, in order); 0: free ports.
    smpp_port: int = 0
    token: str | None = None


class ShardReady(BaseModel):
    """What a part tells whoever started it once it listens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    part: int
    channel_port: int
    #: SMPP port of each operator's listener.
    smpp: dict[str, int]
    #: account (system_id, password, window) of each operator, for the platform's binds.
    accounts: dict[str, tuple[str, str, int]]


def shard_config(sc: Scenario, host: str, smpp_port: int = 0) -> SmscConfig:
    no_tls = {"port": None}
    operators = [
        op.model_copy(
            update={
                "host": host,
                "port": smpp_port + i if smpp_port else 0,
                "tls": op.tls.model_copy(update=no_tls),
            }
        )
        for i, op in enumerate(sc.operators or [OperatorConfig(port=0)])
    ]
    return SmscConfig(
        control=ControlConfig(enabled=False),
        operators=operators,
        population=sc.population,
        behaviour=sc.behaviour,
        delivery=sc.delivery,
        time_scale=sc.time.scale,
        mt_log_size=1000,
    )


def ussd_of(side: SmscSide) -> dict[str, Any]:
    """A part's USSD counters (every operator's networks) and per-screen latency buckets."""
    snap = side.ussd(0.0)
    screens = screen_latency(side.smsc.ussd_networks())
    return {
        "dialled": snap.dialled,
        "busy": snap.busy,
        "steps": snap.steps,
        "released": snap.released,
        "open": snap.open,
        "screen_latency": {"counts": screens.counts, "total": screens.total},
    }


def stats_of(part: int, side: SmscSide) -> dict[str, Any]:
    """A part's counters and histograms, JSON (what the runner adds up); with its USSD
    counters when the scenario dials."""
    smsc, hub = side.smsc, side.hub
    t = hub.tracker.stats
    return {
        **({"ussd": ussd_of(side)} if side.sc.ussd is not None else {}),
        "part": part,
        #: CPU seconds this process has used (the runner reports it per MO of the load).
        "cpu": time.process_time(),
        "sample": side.counts(),
        #: Each operator's SmscStats (counters by stat as objects): the runner adds them
        #: up per operator (the report's charts) and over operators (the summary).
        "operators": {name: s.as_dict() for name, s in side.operator_stats().items()},
        "faults": side.fault_hits(),
        "binds": smsc.stats().binds,
        "mo_from_locust": hub.mo_from_workers,
        "dials_from_locust": hub.dials_from_workers,
        "dials_refused": hub.dials_refused,
        "workers_seen": sorted(hub.workers_seen),
        "pending_replies": len(hub.tracker),
        "pending_deliveries": smsc.pending_deliveries(),
        #: The campaign manager's actions as this part saw their numbers' delivery.
        "delivery": hub.delivery.to_json() if hub.delivery is not None else [],
        "replies": {
            "sent": t.sent,
            "replies": t.replies,
            "timeouts": t.timeouts,
            "coalesced": t.coalesced,
            "histograms": {o.name: h.to_json() for o, h in t.histograms.items()},
        },
    }


async def serve(spec: ShardSpec, ready: Connection | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cfg = shard_config(spec.scenario, spec.host, spec.smpp_port)
    # The runner's START frame puts the scenario's chaos on, in every part at once.
    side = SmscSide(
        spec.scenario,
        cfg,
        token=spec.token,
        stats=lambda side: stats_of(spec.part, side),
        start_on_request=True,
    )
    smsc = side.smsc
    await side.start()
    # The part's one id sequence (all its operators draw from it), its own block.
    smsc.message_ids.next = int(time.time() * 1000) * 1000 + spec.part * ID_BLOCK
    try:
        port = await side.hub.start(spec.host, spec.channel_port)
        info = ShardReady(
            part=spec.part,
            channel_port=port,
            smpp={op.name: smsc.address(op.name)[1] for op in cfg.operators},
            accounts={
                op.name: (op.accounts[0].system_id, op.accounts[0].password, op.accounts[0].window)
                for op in cfg.operators
            },
        )
        log.info("shard_ready part=%d of %d channel=%s:%d", spec.part, spec.parts, spec.host, port)
        if ready is not None:
            ready.send(info.model_dump_json())
        await stop.wait()
    finally:
        await side.stop()


def shard_process(spec_json: str, ready: Connection, verbosity: int = 0) -> None:
    """Entry point of a spawned part: serve until SIGTERM."""
    setup_logging(verbosity)
    spec = ShardSpec.model_validate_json(spec_json)
    loop = new_event_loop(True)
    try:
        loop.run_until_complete(serve(spec, ready))
    finally:
        loop.close()
