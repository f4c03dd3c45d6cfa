"""Message ids in the formats real SMSCs use (Kannel's msg-id-type must match them)."""

from __future__ import annotations

import time
import uuid

from simulator.config import MessageIdFormat, ReceiptIdFormat


class IdCounter:
    """The numbers behind message ids, started from the clock (so a restarted SMSC never
    reuses one that a gateway may still hold in its DLR store). One per SMSC process,
    shared by its operators: each operator's own counter, started a few milliseconds
    apart, would run into the next one's after some 10^4 messages."""

    __slots__ = ("next",)

    def __init__(self, start: int | None = None) -> None:
        self.next = int(time.time() * 1000) * 1000 if start is None else start


class MessageIds:
    """Unique ids in one operator's format, drawn from a (shared) ``IdCounter``."""

    __slots__ = ("_counter", "_fmt")

    def __init__(
        self,
        fmt: MessageIdFormat = MessageIdFormat.DECIMAL,
        start: int | None = None,
        *,
        counter: IdCounter | None = None,
    ):
        self._fmt = fmt
        self._counter = counter if counter is not None else IdCounter(start)

    def next(self) -> str:
        counter = self._counter
        n = counter.next
        counter.next = n + 1
        fmt = self._fmt
        if fmt is MessageIdFormat.DECIMAL:
            return str(n)
        if fmt is MessageIdFormat.HEX:
            return f"{n:x}"
        return str(uuid.UUID(int=n))


def receipt_id(message_id: str, id_format: MessageIdFormat, receipt_format: ReceiptIdFormat) -> str:
    """The id as it appears inside a receipt, converted when the operator says so."""
    if receipt_format is ReceiptIdFormat.SAME or id_format is MessageIdFormat.UUID:
        return message_id
    value = int(message_id, 16) if id_format is MessageIdFormat.HEX else int(message_id)
    return str(value) if receipt_format is ReceiptIdFormat.DECIMAL else f"{value:x}"
