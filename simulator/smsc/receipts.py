"""Delivery receipts: what becomes of a message (a pluggable policy) and the deliver_sm
that says so, in SMPP 3.4 Appendix B text plus the TLVs gateways prefer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from simulator.config import MessageIdFormat, OperatorConfig, ReceiptIdFormat
from simulator.smpp.constants import RECEIPT_STAT, STAT_STATE, EsmClass, MessageState, Tag
from simulator.smpp.pdu import DeliverSm
from simulator.smpp.text import decode_text
from simulator.smpp.times import LocalClock

from .ids import receipt_id
from .store import Message


@dataclass(slots=True, frozen=True)
class Outcome:
    """The final state of a message and how long (simulated seconds) it takes to reach it."""

    state: MessageState
    delay: float
    err: int = 0


class ReceiptPolicy(Protocol):
    """Decides each accepted message's fate; the subscriber simulation plugs in here."""

    def outcome(self, msg: Message) -> Outcome: ...


class FixedPolicy:
    """Every message gets the same outcome: DELIVRD after a short delay by default."""

    __slots__ = ("_outcome",)

    def __init__(self, stat: str = "DELIVRD", delay: float = 0.2, err: int = 0) -> None:
        self._outcome = Outcome(STAT_STATE[stat], delay, err)

    def outcome(self, msg: Message) -> Outcome:
        return self._outcome


#: message_state -> the receipt's stat word, keyed by plain int for the hot path.
RECEIPT_STAT_TEXT = {int(k): v for k, v in RECEIPT_STAT.items()}
_UDHI = 0x40
_PRINTABLE = bytes(c if 32 <= c < 127 else ord("?") for c in range(256))


class ReceiptBuilder:
    """Builds receipt deliver_sm PDUs for one operator's addressing and id formats."""

    __slots__ = ("_addr", "_date_key", "_date_text", "_id_fmt", "_local", "_receipt_fmt", "_tlvs")

    def __init__(self, operator: OperatorConfig) -> None:
        self._addr = operator.addressing
        self._id_fmt: MessageIdFormat = operator.message_id_format
        self._receipt_fmt: ReceiptIdFormat = operator.receipt_id_format
        self._tlvs = operator.receipt.tlvs
        self._date_key = -1
        self._date_text = ""
        #: Appendix B dates are the SMSC's local time: the operator's time zone.
        self._local = LocalClock(operator.timezone)

    def _date(self, ts: float) -> str:
        key = int(ts // 60)
        if key == self._date_key:
            return self._date_text
        text = self._local.strftime("%y%m%d%H%M", ts)
        self._date_key, self._date_text = key, text
        return text

    def utc_offset_quarters(self, ts: float) -> int:
        """The SMSC's UTC offset at ``ts`` in quarter hours (SMPP absolute times)."""
        return self._local.offset(ts) // 900

    def build(self, msg: Message) -> DeliverSm:
        rid = receipt_id(msg.message_id, self._id_fmt, self._receipt_fmt)
        state = msg.state
        delivered = "001" if state == MessageState.DELIVERED else "000"
        body = msg.short_message
        if not body and msg.tlvs:
            # data_sm, or submit_sm with message_payload: the text is in the TLV.
            payload = msg.tlvs.get(Tag.MESSAGE_PAYLOAD)
            if isinstance(payload, bytes):
                body = payload
        if msg.esm_class & _UDHI and body:
            body = body[1 + body[0] :]  # Appendix B: the message's text, not its UDH
        if msg.data_coding in (0, 1, 3):
            sample = body[:20]
        else:
            sample = decode_text(body[:40], msg.data_coding)[:20].encode("ascii", "replace")
        text = (
            f"id:{rid} sub:001 dlvrd:{delivered} submit date:{self._date(msg.submit_time)}"
            f" done date:{self._date(msg.done_time)} stat:{RECEIPT_STAT_TEXT[state]}"
            f" err:{msg.err:03d} text:"
        ).encode("ascii") + sample.translate(_PRINTABLE)
        tlvs: dict[int, int | str | bytes] = {}
        if self._tlvs:
            tlvs[Tag.RECEIPTED_MESSAGE_ID] = rid
            tlvs[Tag.MESSAGE_STATE] = int(state)
            if msg.err:
                # network_error_code: type 3 (GSM) and the 2-octet error.
                tlvs[Tag.NETWORK_ERROR_CODE] = bytes((3,)) + msg.err.to_bytes(2, "big")
        return DeliverSm(
            tlvs=tlvs,
            source_addr_ton=msg.dest_ton,
            source_addr_npi=msg.dest_npi,
            source_addr=msg.destination_addr,
            dest_addr_ton=msg.source_ton,
            dest_addr_npi=msg.source_npi,
            destination_addr=msg.source_addr,
            esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=text,
        )
