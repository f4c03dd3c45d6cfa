"""USSD on SMPP 3.4: ussd_service_op (0x0501) and its_session_info (0x1383), per the
operator's convention (``UssdConfig``). Pure functions: PDUs in, PDUs out.

its_session_info is two octets (SMPP 3.4 5.3.2.43): the session number, then the
dialogue unit's sequence number in bits 7..1 and the end-of-session flag in bit 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from simulator.config import AddressingConfig, UssdConfig, UssdDialIn, UssdEndBy
from simulator.smpp.constants import Status, Tag, UssdServiceOp
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smpp.text import choose_coding, decode_text
from simulator.smpp.tlv import TlvValue

#: What an application may send in submit_sm.
_APP_OPS: Final = frozenset(
    {
        UssdServiceOp.USSR_REQUEST,
        UssdServiceOp.USSN_REQUEST,
        UssdServiceOp.PSSD_RESPONSE,
        UssdServiceOp.PSSR_RESPONSE,
    }
)
_ENDING_OPS: Final = frozenset({UssdServiceOp.PSSD_RESPONSE, UssdServiceOp.PSSR_RESPONSE})


def encode_session_info(number: int, seq: int, end: bool) -> bytes:
    return bytes((number & 0xFF, (seq & 0x7F) << 1 | int(end)))


def decode_session_info(raw: bytes) -> tuple[int, int, bool]:
    """(session number, sequence, end); ESME_RINVPARLEN unless two octets."""
    if len(raw) != 2:
        raise SmppError(Status.ESME_RINVPARLEN, f"its_session_info has {len(raw)} octets, not 2")
    return raw[0], raw[1] >> 1, bool(raw[1] & 1)


def short_code_of(service_code: str) -> str:
    """``*1442#`` -> ``1442`` (the account routing key); ``*1442*3#`` -> ``1442``."""
    return service_code.strip("*#").split("*", 1)[0]


@dataclass(frozen=True, slots=True)
class AppScreen:
    """A screen the application submitted: its text, whether it ends the session, the
    session number it quoted (None when the convention carries none)."""

    op: int
    text: str
    final: bool
    number: int | None


def read_submit(pdu: SubmitSm, cfg: UssdConfig) -> AppScreen:
    """A USSD submit_sm as a screen; SmppError with the status to answer otherwise."""
    op = pdu.tlvs.get(Tag.USSD_SERVICE_OP)
    if not isinstance(op, int):
        raise SmppError(Status.ESME_RMISSINGOPTPARAM, "no ussd_service_op")
    if op not in _APP_OPS:
        raise SmppError(Status.ESME_RINVOPTPARAMVAL, f"ussd_service_op {op} is not for a submit")
    number: int | None = None
    end_bit = False
    raw = pdu.tlvs.get(Tag.ITS_SESSION_INFO)
    if raw is not None:
        if not isinstance(raw, bytes):
            raise SmppError(Status.ESME_RINVOPTPARAMVAL, "its_session_info is not octets")
        number, _, end_bit = decode_session_info(raw)
    elif cfg.session_info:
        raise SmppError(Status.ESME_RMISSINGOPTPARAM, "no its_session_info")
    payload = pdu.tlv_bytes(Tag.MESSAGE_PAYLOAD) or pdu.short_message
    try:
        text = decode_text(payload, pdu.data_coding)
    except ValueError as exc:
        raise SmppError(Status.ESME_RINVMSGLEN, f"undecodable screen: {exc}") from exc
    by_op = op in _ENDING_OPS
    if cfg.end_by is UssdEndBy.SERVICE_OP:
        final = by_op
    elif cfg.end_by is UssdEndBy.SESSION_INFO:
        final = end_bit
    else:
        final = by_op or end_bit
    return AppScreen(op, text, final, number)


def network_pdu(
    cfg: UssdConfig,
    addressing: AddressingConfig,
    *,
    msisdn: str,
    service_code: str,
    op: int,
    text: str,
    number: int,
    seq: int,
    end: bool = False,
) -> DeliverSm:
    """The deliver_sm carrying a dial (PSSR indication), an input (``reply_op``) or a
    release (``end``), addressed as the operator addresses MO."""
    tlvs: dict[int, TlvValue] = {Tag.USSD_SERVICE_OP: op}
    if cfg.session_info:
        tlvs[Tag.ITS_SESSION_INFO] = encode_session_info(number, seq, end)
    if cfg.dial_in is UssdDialIn.DESTINATION:
        destination = service_code
    else:
        destination = short_code_of(service_code)
    data_coding, body = choose_coding(text) if text else (0, b"")
    return DeliverSm(
        tlvs=tlvs,
        service_type=cfg.service_type,
        source_addr_ton=addressing.handset_ton,
        source_addr_npi=addressing.handset_npi,
        source_addr=msisdn,
        dest_addr_ton=addressing.short_code_ton,
        dest_addr_npi=addressing.short_code_npi,
        destination_addr=destination,
        data_coding=data_coding,
        short_message=body,
    )
