"""The journal's record buffer: what the hooks on the event loop add to, and the journal's
thread takes as one frame's payload.

``new_buffer`` gives the C buffer (``_cjournal.c``, built by ``build_ctraits.py``): each
record is marshalled as it is added, in marshal's own encoding, so nothing of it stays
alive until the batch and the thread has no values to walk, only bytes to copy.
Without it (not built, or ``SMSIM_NO_CJOURNAL`` / ``SMSIM_NO_CTRAITS`` set) it is
``PyRecordBuffer``: the values in one flat list, marshalled by the thread. Both give
the same payload to ``marshal.loads``: the flat list of values of journal format 3
(``journal_files``).
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable
from typing import Any, Protocol

from .journal_files import count_records, marshalled, plain

#: marshal's format for a value the C buffer does not encode itself: one without
#: references (version 3 added them), so it can sit anywhere in the list.
FALLBACK_VERSION = 2


def fallback(value: Any) -> bytes:
    """``value`` marshalled on its own (an MO's parts, an enum member, a big int)."""
    try:
        return marshal.dumps(value, FALLBACK_VERSION)
    except ValueError:  # an enum member somewhere inside
        return marshal.dumps(plain(value), FALLBACK_VERSION)


class PyRecordBuffer:
    """The Python buffer: values kept in one flat list, marshalled when taken.

    ``add`` is one ``extend``, atomic under the GIL; ``take`` cuts the list at its length
    (a record boundary, then) rather than swapping it, so an ``add`` that read the list
    just before is not lost: it lands in the next batch."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: list[Any] = []

    def add(self, *values: Any) -> None:
        self._values.extend(values)

    def take(self) -> tuple[bytes, int] | None:
        values = self._values
        n = len(values)
        if not n:
            return None
        batch = values[:n]
        del values[:n]
        return marshalled(batch), count_records(batch)

    @property
    def records(self) -> int:
        return count_records(self._values[:])  # a copy: the thread may cut it meanwhile


class Records(Protocol):
    """What the journal needs of a buffer (both classes here)."""

    def add(self, *values: Any) -> None: ...

    def take(self) -> tuple[bytes, int] | None: ...

    @property
    def records(self) -> int: ...


#: The C buffer's class (called with ``fallback``), None when it is not built or
#: switched off.
CRecordBuffer: Callable[[Callable[[Any], bytes]], Records] | None = None
if not (os.environ.get("SMSIM_NO_CJOURNAL") or os.environ.get("SMSIM_NO_CTRAITS")):
    try:
        from ._cjournal import RecordBuffer as _CRecordBuffer

        CRecordBuffer = _CRecordBuffer
    except ImportError:
        pass


def new_buffer() -> Records:
    """The journal's buffer: the C one when built."""
    return PyRecordBuffer() if CRecordBuffer is None else CRecordBuffer(fallback)
