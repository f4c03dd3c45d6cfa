"""The platform's records, shaped like RapidPro's so the REST API can mirror its JSON.

Shared by the flow engine (which changes them and says so with effects), the store
(which persists them to SQLite) and the channels (which send and receipt messages).
Times are simulated Unix seconds; ids are the platform's own integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MsgDirection(StrEnum):
    IN = "in"
    OUT = "out"


class MsgStatus(StrEnum):
    """RapidPro's message statuses (API v2 ``status``)."""

    QUEUED = "queued"  # waiting for the channel's TPS
    WIRED = "wired"  # handed to the gateway / SMSC (submit_sm_resp OK, Kannel status 8)
    SENT = "sent"  # the network accepted it (Kannel status 4/8)
    DELIVERED = "delivered"  # receipt DELIVRD (Kannel status 1)
    ERRORED = "errored"  # failed, will be retried (up to 3 attempts)
    FAILED = "failed"  # failed for good
    HANDLED = "handled"  # an incoming message the platform processed


@dataclass(slots=True)
class Contact:
    id: int
    uuid: str
    urn: str  # "tel:+201001234567"
    name: str = ""
    language: str = "ara"
    fields: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    #: Opted out (STOP / إلغاء): nothing is sent until the contact writes again.
    stopped: bool = False
    blocked: bool = False
    created_on: float = 0.0
    modified_on: float = 0.0
    last_seen_on: float | None = None

    @property
    def msisdn(self) -> str:
        """The number as the SMSC knows it: international without '+'."""
        return self.urn.removeprefix("tel:").removeprefix("+")


@dataclass(slots=True)
class Msg:
    id: int
    uuid: str
    contact_id: int
    urn: str
    direction: MsgDirection
    text: str
    status: MsgStatus
    created_on: float
    modified_on: float
    sent_on: float | None = None
    broadcast_id: int | None = None
    flow_uuid: str | None = None
    #: Send attempts so far (RapidPro re-sends an errored message up to 3 times).
    attempts: int = 0
    #: The id the SMSC gave it (submit_sm_resp), to match receipts.
    external_id: str | None = None
    #: SMS parts it takes (each counts against the channel's TPS).
    segments: int = 1
    #: The operator / channel it went through.
    channel: str = ""


@dataclass(slots=True)
class Broadcast:
    id: int
    text: str
    contact_ids: list[int]
    urns: list[str]
    created_on: float
    status: str = "queued"  # queued -> sent (all handed to the channel)


@dataclass(slots=True)
class FlowRun:
    uuid: str
    flow_uuid: str
    contact_id: int
    created_on: float
    modified_on: float
    #: Node ids visited, in order, with the time: [(node_id, time), ...]
    path: list[tuple[str, float]] = field(default_factory=list)
    #: Results by name: {"q1": {"value": "2", "category": "correct", "time": ...}}
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    responded: bool = False
    exited_on: float | None = None
    #: None while active; "completed", "interrupted" or "expired" once exited.
    exit_type: str | None = None
    #: The node waiting for a reply, and when the wait times out / the run expires.
    waiting_node: str | None = None
    wait_timeout_on: float | None = None
    expires_on: float | None = None
