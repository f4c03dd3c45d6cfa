"""The platform itself: MO in, flows run, replies out; broadcasts and flow starts.

``PlatformService`` is what ``smsim platform`` runs and what the REST API calls
(``PlatformApi``). A channel hands it each incoming message (``receive``); it finds or
creates the contact, records the message, lets the ``FlowEngine`` decide, persists the
engine's effects in the store and queues the replies on the ``Sender``. Broadcasts and
flow starts from the API are queued in batches so one large request never holds the
event loop. Opt-out (STOP / إلغاء) and opting back in are the engine's rules; the service
only keeps stopped contacts out of broadcasts and flow starts, as RapidPro does.

The channels (SMPP binds or Kannel) are built by the caller and passed in, so this module
knows nothing of SMPP or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.config import PlatformConfig
from simulator.platform.api import FlowSummary, normalize_urn
from simulator.platform.flows import (
    ContactChanged,
    Effect,
    FlowDef,
    FlowEngine,
    Handling,
    MsgHandled,
    RunChanged,
    SendMsg,
)
from simulator.platform.model import Broadcast, Contact, Msg, MsgDirection, MsgStatus
from simulator.platform.sender import Sender
from simulator.platform.store import FlowStartRecord, PlatformStore

log = logging.getLogger("smsim.platform")


@dataclass(slots=True)
class ServiceStats:
    mo: int = 0
    mo_unparsable: int = 0
    replies: int = 0
    opt_outs: int = 0
    #: Incoming messages that only the catch-all flow took (nothing else understood them).
    caught: int = 0
    broadcasts: int = 0
    broadcast_msgs: int = 0
    flow_starts: int = 0
    runs_started: int = 0
    skipped_stopped: int = 0


class PlatformService:
    """RapidPro's message handling and outbox over a store, a flow engine and a sender."""

    def __init__(
        self,
        config: PlatformConfig,
        store: PlatformStore,
        flows: Sequence[FlowDef],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.engine = FlowEngine(flows, rng=random.Random(config.seed))
        self.sender: Sender | None = None
        self.stats = ServiceStats()
        self._flow_defs = {f.uuid: f for f in flows}
        self._summaries = [_summary(f, now()) for f in flows]
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        # Restore waiting runs a previous process left in the database.
        for run in store.active_runs():
            contact = store.contact(run.contact_id)
            if contact is not None and run.flow_uuid in self._flow_defs:
                try:
                    self.engine.restore(contact, run)
                except KeyError as exc:
                    log.warning("run_not_restored run=%s reason=%s", run.uuid, exc)

    # ------------------------------------------------------------------ lifecycle

    def attach(self, sender: Sender) -> None:
        self.sender = sender

    def start(self) -> None:
        self._tick_task = asyncio.create_task(self._tick_loop(), name="platform-tick")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        if self._tick_task is not None:
            tasks.append(self._tick_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval)
            self._apply(self.engine.tick(self.now()), None)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ MO

    def receive(self, sender: str, text: str, channel: str = "") -> Msg | None:
        """An incoming message from ``sender`` (an MSISDN or URN) on ``channel``."""
        urn = normalize_urn(sender if sender.startswith("tel:") else "tel:" + sender)
        if urn is None:
            self.stats.mo_unparsable += 1
            log.warning("mo_unparsable sender=%r", sender)
            return None
        now = self.now()
        store = self.store
        contact, created = store.get_or_create_contact(urn, now)
        contact.last_seen_on = now
        if not created:
            store.upsert_contact(contact)
        msg = store.new_msg(contact, MsgDirection.IN, text, now, channel=channel)
        self.stats.mo += 1
        self._apply(self.engine.handle_message(contact, text, now), msg)
        return msg

    # ------------------------------------------------------------------ effects

    def _apply(
        self, effects: list[Effect], incoming: Msg | None, start_uuid: str | None = None
    ) -> None:
        store = self.store
        for effect in effects:
            if isinstance(effect, SendMsg):
                self._send(effect)
            elif isinstance(effect, RunChanged):
                run = effect.run
                # the start owns only the runs it created, not the ones it interrupted
                owner = start_uuid if store.run_id(run.uuid) is None else None
                store.upsert_run(run, start_uuid=owner)
            elif isinstance(effect, ContactChanged):
                store.upsert_contact(effect.contact)
            elif isinstance(effect, MsgHandled) and incoming is not None:
                incoming.flow_uuid = effect.flow_uuid
                incoming.status = MsgStatus.HANDLED
                incoming.modified_on = self.now()
                store.upsert_msg(incoming)
                if effect.handling is Handling.OPTED_OUT:
                    self.stats.opt_outs += 1
                    log.info("opt_out urn=%s", incoming.urn)
                else:
                    if effect.handling is Handling.CAUGHT:
                        self.stats.caught += 1
                    log.debug(
                        "mo id=%d urn=%s handling=%s flow=%s",
                        incoming.id,
                        incoming.urn,
                        effect.handling.value,
                        effect.flow_uuid,
                    )

    def _send(self, effect: SendMsg) -> None:
        contact = self.store.contact(effect.contact_id)
        if contact is None:
            return
        self.stats.replies += 1
        self.queue_msg(contact, effect.text, flow_uuid=effect.flow_uuid)

    def queue_msg(
        self,
        contact: Contact,
        text: str,
        *,
        flow_uuid: str | None = None,
        broadcast_id: int | None = None,
    ) -> Msg:
        """Create an outgoing message and hand it to the sender."""
        sender = self.sender
        segments = sender.segments(text) if sender is not None else 1
        msg = self.store.new_msg(
            contact,
            MsgDirection.OUT,
            text,
            self.now(),
            broadcast_id=broadcast_id,
            flow_uuid=flow_uuid,
            segments=segments,
        )
        if sender is not None:
            sender.enqueue(msg)
        return msg

    # ------------------------------------------------------------------ PlatformApi

    def _recipients(self, urns: list[str], contact_uuids: list[str]) -> list[Contact]:
        store, now = self.store, self.now()
        seen: set[int] = set()
        out: list[Contact] = []
        for cu in contact_uuids:
            c = store.contact_by_uuid(cu)
            if c is not None and c.id not in seen:
                seen.add(c.id)
                out.append(c)
        for urn in urns:
            c, _ = store.get_or_create_contact(urn, now)
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
        return out

    def broadcast(self, text: str, urns: list[str], contact_uuids: list[str]) -> Broadcast:
        contacts = self._recipients(urns, contact_uuids)
        b = self.store.new_broadcast(text, [c.id for c in contacts], urns, self.now())
        self.stats.broadcasts += 1
        log.info("broadcast id=%d recipients=%d", b.id, len(contacts))
        self._spawn(self._run_broadcast(b, contacts))
        return b

    async def _run_broadcast(self, b: Broadcast, contacts: list[Contact]) -> None:
        batch = self.config.broadcast_batch
        for i in range(0, len(contacts), batch):
            for c in contacts[i : i + batch]:
                if c.stopped or c.blocked:
                    self.stats.skipped_stopped += 1
                    continue
                self.queue_msg(c, b.text, broadcast_id=b.id)
                self.stats.broadcast_msgs += 1
            await asyncio.sleep(0)
        b.status = "sent"
        self.store.add_broadcast(b)

    def start_flow(
        self,
        flow_uuid: str,
        urns: list[str],
        contact_uuids: list[str],
        restart_participants: bool,
        exclude_active: bool,
        params: dict[str, Any],
    ) -> FlowStartRecord:
        contacts = self._recipients(urns, contact_uuids)
        s = self.store.new_flow_start(
            flow_uuid,
            [c.id for c in contacts],
            urns,
            self.now(),
            restart_participants=restart_participants,
            exclude_active=exclude_active,
            params=params,
        )
        self.stats.flow_starts += 1
        log.info("flow_start uuid=%s flow=%s contacts=%d", s.uuid, flow_uuid, len(contacts))
        self._spawn(self._run_start(s, contacts))
        return s

    async def _run_start(self, s: FlowStartRecord, contacts: list[Contact]) -> None:
        s.status = "starting"
        s.modified_on = self.now()
        self.store.upsert_flow_start(s)
        batch = self.config.broadcast_batch
        try:
            for i in range(0, len(contacts), batch):
                for c in contacts[i : i + batch]:
                    if s.exclude_active and self.engine.active_run(c.id) is not None:
                        continue
                    if c.stopped or c.blocked:
                        self.stats.skipped_stopped += 1
                        continue
                    effects = self.engine.start(c, s.flow_uuid, self.now(), s.restart_participants)
                    if effects:
                        self.stats.runs_started += 1
                    self._apply(effects, None, start_uuid=s.uuid)
                await asyncio.sleep(0)
            s.status = "complete"
        except Exception:
            log.exception("flow_start_failed uuid=%s", s.uuid)
            s.status = "failed"
        s.modified_on = self.now()
        self.store.upsert_flow_start(s)

    def flows(self) -> Sequence[FlowSummary]:
        return self._summaries

    @property
    def busy(self) -> bool:
        """Broadcasts or flow starts still being queued."""
        return bool(self._tasks)


def _summary(flow: FlowDef, now: float) -> FlowSummary:
    """What flows.json shows: every result a router saves, with its categories."""
    results: dict[str, dict[str, Any]] = {}
    for node in flow.nodes.values():
        router = node.router
        if router is None or router.result is None:
            continue
        entry = results.setdefault(
            router.result,
            {"key": router.result, "name": router.result, "categories": [], "node_uuids": []},
        )
        categories: list[str] = entry["categories"]
        for category in [c.category for c in router.cases] + [router.other_category]:
            if category not in categories:
                categories.append(category)
        entry["node_uuids"].append(node.id)
    return FlowSummary(
        uuid=flow.uuid,
        name=flow.name,
        expires=round(flow.expire_after_minutes),
        results=list(results.values()),
        created_on=now,
        modified_on=now,
    )
