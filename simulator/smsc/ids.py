"""Message ids in the formats real SMSCs use (Kannel's msg-id-type must match them)."""

from __future__ import annotations

import time
import uuid

from simulator.config import MessageIdFormat, ReceiptIdFormat


class MessageIds:
    """Unique ids: a counter started from the clock, so a restarted SMSC never reuses one
    that a gateway may still hold in its DLR store."""

    __slots__ = ("_fmt", "_next")

    def __init__(self, fmt: MessageIdFormat = MessageIdFormat.DECIMAL, start: int | None = None):
        self._fmt = fmt
        self._next = int(time.time() * 1000) * 1000 if start is None else start

    def next(self) -> str:
        n = self._next
        self._next = n + 1
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
