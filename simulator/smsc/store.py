"""Accepted messages: the ones still pending (query/cancel/replace act on these) and a
bounded memory of recent final states, so query_sm keeps answering after delivery."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.smpp.constants import MessageState


@dataclass(slots=True)
class Message:
    """One accepted short message (one part of a concatenated one counts as one)."""

    message_id: str
    account: str
    source_addr: str
    source_ton: int
    source_npi: int
    destination_addr: str
    dest_ton: int
    dest_npi: int
    esm_class: int
    data_coding: int
    short_message: bytes
    registered_delivery: int
    #: Simulated Unix time of acceptance / of the final state.
    submit_time: float
    tlvs: dict[int, int | str | bytes] = field(default_factory=dict)
    state: int = MessageState.ENROUTE
    done_time: float = 0.0
    err: int = 0
    #: Bumped by replace_sm/cancel_sm so a stale scheduled outcome is ignored.
    version: int = 0
    #: As submitted (absolute or relative SMPP time, or empty for the SMSC default).
    validity_period: str = ""
    #: What the receipt policy decided, and when (simulated time) it takes effect: the
    #: handset side reacts to a message only once it is delivered.
    planned_state: int = 0
    planned_time: float = 0.0
    planned_err: int = 0
    #: The handset sink's own note while the message is on its way (the subscriber
    #: engine: where it stands, so cancel_sm and replace_sm reach what the handset sees).
    handset: object = None
    #: submit_multi: every destination's Message, in order, sharing one message_id (the
    #: first is the one the store holds); None for a single-destination submit.
    group: list[Message] | None = None

    @property
    def final(self) -> bool:
        return self.state not in (MessageState.ENROUTE, MessageState.ACCEPTED)

    def wants_receipt(self) -> bool:
        """SMSC delivery receipt asked for this outcome (registered_delivery bits 1-0)."""
        ask = self.registered_delivery & 0x03
        return ask == 1 or (ask == 2 and self.state != MessageState.DELIVERED)


class MessageStore:
    """Pending messages by id, plus the last ``history`` final ones in a ring.

    The ring (a fixed list and a cursor) evicts in O(1) without OrderedDict's
    bookkeeping, which the profile showed on every receipt.
    """

    __slots__ = ("_cursor", "_final", "_pending", "_ring", "history")

    def __init__(self, history: int = 100_000) -> None:
        self._pending: dict[str, Message] = {}
        self._final: dict[str, Message] = {}
        self._ring: list[str | None] = [None] * history
        self._cursor = 0
        self.history = history

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, msg: Message) -> None:
        self._pending[msg.message_id] = msg

    def get(self, message_id: str) -> Message | None:
        msg = self._pending.get(message_id)
        if msg is None:
            msg = self._final.get(message_id)
        return msg

    def pending(self, message_id: str) -> Message | None:
        return self._pending.get(message_id)

    def finish(self, msg: Message) -> None:
        """Move a message that reached a final state into the bounded history."""
        message_id = msg.message_id
        self._pending.pop(message_id, None)
        if not self.history:
            return
        ring = self._ring
        cursor = self._cursor
        old = ring[cursor]
        if old is not None:
            self._final.pop(old, None)
        ring[cursor] = message_id
        self._final[message_id] = msg
        self._cursor = cursor + 1 if cursor + 1 < self.history else 0

    def pending_messages(self) -> list[Message]:
        return list(self._pending.values())
