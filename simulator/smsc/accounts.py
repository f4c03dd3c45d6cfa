"""An account's live state: its binds, its TPS bucket and its queue of deliver_sm.

Receipts and MO for an account wait here, in order, until a receiver (or transceiver)
bind has window room; they are handed out round-robin across receivers. A deliver_sm in
flight on a connection that drops, times out or is refused temporarily goes back to the
front of the queue: nothing accepted is ever dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.config import AccountConfig
from simulator.smpp.constants import CommandId
from simulator.smpp.pdu import Pdu

from .stats import AccountStats
from .throttle import TokenBucket

_DELIVERIES = (CommandId.DELIVER_SM, CommandId.DATA_SM)

if TYPE_CHECKING:
    from .connection import SmppConnection


class Account:
    __slots__ = (
        "_rr",
        "binds",
        "bucket",
        "config",
        "outbox",
        "receivers",
        "stats",
        "system_id",
        "wants_receiver",
    )

    def __init__(self, config: AccountConfig) -> None:
        self.config = config
        self.system_id = config.system_id
        self.binds: list[SmppConnection] = []
        self.receivers: list[SmppConnection] = []
        self.outbox: deque[Pdu] = deque()
        self.bucket = TokenBucket(config.tps) if config.tps else None
        self.stats = AccountStats()
        self._rr = 0
        #: Called by ``pump`` when deliveries wait and no receiver is bound (outbind).
        self.wants_receiver: Callable[[Account], None] | None = None

    def set_tps(self, tps: float, now: float) -> None:
        """A new TPS limit from now on (0: none); the bucket starts full."""
        self.bucket = TokenBucket(tps, now=now) if tps else None

    @property
    def tps(self) -> float:
        return self.bucket.rate if self.bucket is not None else 0.0

    def attach(self, conn: SmppConnection) -> None:
        self.binds.append(conn)
        if conn.session.can_receive:
            self.receivers.append(conn)

    def detach(self, conn: SmppConnection) -> list[Pdu]:
        """Forget a closed connection; returns its unanswered deliver_sm, oldest first."""
        if conn in self.binds:
            self.binds.remove(conn)
        if conn in self.receivers:
            self.receivers.remove(conn)
        return [p for p in conn.session.outstanding if p.command_id in _DELIVERIES]

    def requeue_front(self, pdus: list[Pdu]) -> None:
        """Put undelivered PDUs back at the head of the queue, keeping their order."""
        for pdu in reversed(pdus):
            pdu.sequence_number = 0
            self.outbox.appendleft(pdu)

    def pump(self) -> None:
        """Hand queued deliver_sm to receivers with window room, round-robin."""
        outbox = self.outbox
        receivers = self.receivers
        if not receivers:
            if outbox and self.wants_receiver is not None:
                self.wants_receiver(self)
            return
        if not outbox:
            return
        n = len(receivers)
        idle = 0
        i = self._rr
        while outbox and idle < n:
            conn = receivers[i % n]
            i += 1
            session = conn.session
            # can_receive: an unbind read in the same batch as an answer that freed a slot
            # has unbound the session before connection_lost takes it off this list.
            if conn.writable and session.can_receive and session.window_free > 0:
                conn.send_request(outbox.popleft())
                idle = 0
            else:
                idle += 1
        self._rr = i % n
