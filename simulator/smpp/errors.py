"""The one exception the codec raises: it carries what a peer must be answered with."""

from __future__ import annotations

from .constants import status_name


class SmppError(Exception):
    """Bad SMPP input.

    ``status`` is the command_status the peer must be told; ``command_id`` and
    ``sequence_number`` are filled in when the header was readable so that the session can
    answer the right request; ``fatal`` means the byte stream can no longer be framed and
    the connection must close after the answer is sent.
    """

    __slots__ = ("command_id", "fatal", "sequence_number", "status")

    def __init__(
        self,
        status: int,
        message: str,
        *,
        command_id: int | None = None,
        sequence_number: int | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{status_name(self.status)}: {self.args[0]}"
